/* common.h - shared helpers for the libmempool benchmark workloads.
 *
 * Every workload prints exactly one line starting with "RESULT " followed by
 * space-separated key=value pairs; scripts/bench parses that line.  Anything
 * else (progress, diagnostics) goes to stderr.
 *
 * Content checks: every block gets a fresh random 8-byte tag at its start and
 * end (and one byte on every 4 KiB of its body, so that its pages are really
 * touched); the workload keeps the tag beside the pointer and checks it before
 * the block is freed, so two live blocks that overlap overwrite each other's
 * tags.  A mismatch prints "CORRUPT ..." and exits with status 3.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* splitmix64: tiny, fast, good enough for picking slots and sizes */
typedef struct {
  uint64_t s;
} rng_t;

static inline uint64_t rng_next(rng_t *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static inline uint64_t rng_below(rng_t *r, uint64_t n) {
  return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* Log-uniform sizes in [min, max]: every power-of-two band is equally
 * likely.  Drawn from a precomputed table so that pow() stays off the timed
 * path.  Mean for 16 B..4 KiB is about 740 B; for 16 B..256 KiB about 27 KiB;
 * for 1..64 MiB about 15 MiB. */
#define SIZE_TABLE_BITS 16
typedef struct {
  uint32_t v[1u << SIZE_TABLE_BITS];
} size_table;

static inline void size_table_init(size_table *t, size_t min, size_t max, uint64_t seed) {
  rng_t r = {seed ^ 0x5151u};
  double lmin = log((double)min), lmax = log((double)max + 1.0);
  for (size_t i = 0; i < (1u << SIZE_TABLE_BITS); i++) {
    double u = (double)(rng_next(&r) >> 11) * (1.0 / 9007199254740992.0);
    size_t s = (size_t)exp(lmin + u * (lmax - lmin));
    if (s < min) s = min;
    if (s > max) s = max;
    t->v[i] = (uint32_t)s;
  }
}

static inline size_t size_pick(const size_table *t, rng_t *r) { return t->v[rng_next(r) >> (64 - SIZE_TABLE_BITS)]; }

/* Write the tag at both ends and one byte on every 4 KiB of the body. */
static inline void block_fill(void *p, size_t n, uint64_t tag) {
  unsigned char *b = (unsigned char *)p;
  if (n >= 8) {
    memcpy(b, &tag, 8);
    memcpy(b + n - 8, &tag, 8);
  } else {
    memset(b, (int)(tag & 0xff), n);
  }
  for (size_t off = 4096; off + 8 < n; off += 4096) b[off] = (unsigned char)tag;
}

static void corrupt(const char *what, const void *p, size_t n) {
  fprintf(stderr, "CORRUPT %s: block %p size %zu does not hold its pattern\n", what, p, n);
  fflush(stderr);
  _Exit(3);
}

static inline void block_check(const void *p, size_t n, uint64_t tag, const char *what) {
  const unsigned char *b = (const unsigned char *)p;
  uint64_t a, z;
  if (n >= 8) {
    memcpy(&a, b, 8);
    memcpy(&z, b + n - 8, 8);
    if (a != tag || z != tag) corrupt(what, p, n);
  } else {
    for (size_t i = 0; i < n; i++)
      if (b[i] != (unsigned char)(tag & 0xff)) corrupt(what, p, n);
  }
}

static inline void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) {
    fprintf(stderr, "malloc(%zu) returned NULL\n", n);
    _Exit(4);
  }
  return p;
}

/* A live block as the workloads keep it: pointer, size and its tag. */
typedef struct {
  void *p;
  uint32_t n, tag;
} slot_t;

static inline uint64_t tag64(uint32_t t) { return ((uint64_t)t << 32) | (uint32_t)~t; }

static inline void slot_set(slot_t *s, void *p, size_t n, rng_t *r) {
  s->p = p;
  s->n = (uint32_t)n;
  s->tag = (uint32_t)rng_next(r);
  block_fill(p, n, tag64(s->tag));
}

static inline void slot_new(slot_t *s, size_t n, rng_t *r) { slot_set(s, xmalloc(n), n, r); }

static inline void slot_check(const slot_t *s, const char *what) { block_check(s->p, s->n, tag64(s->tag), what); }

static inline unsigned long long arg_ull(int argc, char **argv, int i, unsigned long long dflt) {
  if (i >= argc) return dflt;
  char *end;
  unsigned long long v = strtoull(argv[i], &end, 0);
  if (*end == 'k' || *end == 'K')
    v <<= 10;
  else if (*end == 'm' || *end == 'M')
    v <<= 20;
  else if (*end == 'g' || *end == 'G')
    v <<= 30;
  return v;
}

/* Keep the compiler from eliding a malloc/free pair whose block is unused. */
#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

#endif
