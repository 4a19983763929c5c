/* fuzz_pool.c - a fuzzing harness for the malloc-family semantics (alloc.h)
 * over a pool, checked against a reference model.
 *
 * Two builds:
 *   - libFuzzer (scripts/fuzz): clang -fsanitize=fuzzer,address,undefined;
 *     LLVMFuzzerTestOneInput runs one input;
 *   - standalone (-DFUZZ_STANDALONE, the meson test 'fuzz_pool'): main()
 *     runs N pseudo-random inputs from a seed, or replays the files named
 *     on the command line (a libFuzzer crash-* file, or a file this program
 *     wrote when a check failed).
 *
 * Three pools live in the process, all on "anon" memory (pages are touched
 * only when used), opened once:
 *   - a 1 MiB pool served by ranges only;
 *   - a 16 MiB pool with mp_pool_enable_small (spans and the thread cache up
 *     to MP_HIT_MAX; the medium sizes are range blocks in a region this small);
 *   - a pool of MP_MEDIUM_MIN_REGION + 40 KiB + 48 bytes (a partial 64 KiB
 *     unit at its end) with small objects: the medium classes up to
 *     MP_SMALL_MAX too. A thread's cache belongs to one pool (tcache.h: the
 *     hit paths take no pool), so this pool's inputs run on a thread of
 *     their own, which lives as long as the process (its cache with it), the
 *     calling thread waiting for each.
 * Bit 0 of an input's first byte picks the 1 MiB pool (clear: the cheapest
 * inputs, half of them) or one with small objects, bit 2 then the medium
 * (set) or the 16 MiB pool; bit 1 asks for a check after every operation
 * (otherwise every CHECK_EVERY operations): the statistics against the
 * model, and mp_pool_check after every operation, in the medium pool after
 * every 8 (it costs about 1 ms there: it visits every span's granules).
 *
 * The rest of the input is a sequence of operations on 128 slots (see
 * run_op): malloc, calloc (and its overflow), realloc (grow, shrink, to 0,
 * reallocarray), aligned allocations (posix_memalign, aligned_alloc,
 * memalign, valloc, pvalloc; alignments 1 B .. 64 KiB and non powers of
 * two), free, malloc_usable_size (and a write of the usable slack), sizes
 * above PTRDIFF_MAX; realloc across MP_HIT_MAX and MP_SMALL_MAX, and by
 * halves and doublings. Sizes are biased small, often in the medium range
 * (8 KiB .. 256 KiB and above) and at the classes' edges (a class size, one
 * byte or a granule either side), sometimes up to twice the region,
 * sometimes at its edges.
 *
 * Model and checks:
 *   - every block holds a pattern derived from its id (dense up to 64 KiB,
 *     sampled above: the first and last 4 KiB and 64 bytes every 64 KiB),
 *     verified before free and realloc, and realloc preserves it;
 *   - calloc memory reads as zero; usable size >= requested, and for pool
 *     blocks exactly the granule-rounded size (ranges) or the class size
 *     (spans); the alignment asked for;
 *   - which class serves a request (the model's: the smallest class that
 *     holds the size and whose size is a multiple of the alignment, up to
 *     MP_HIT_MAX, or MP_SMALL_MAX in a region of MP_MEDIUM_MIN_REGION, and
 *     no class for an alignment above 4 KiB): a block in a span (judged by
 *     the pool's span table) is of that class; a fresh block outside the
 *     spans where a class was due only when no span of it could have been
 *     had (no free range that surely holds one, unless the exhaustion path
 *     released spans meanwhile); realloc: a small object stays exactly when
 *     the size still belongs near its class, a range block when it shrinks
 *     or stays within its last quarter, and a block the pool moves while
 *     growing is of class(size), class(size + size / 4) (its extra room)
 *     or a range block, never a medium object (pool.c: GROWS);
 *   - no two live blocks overlap ([p, p + usable)); pool blocks lie inside
 *     the region; mp_pool_owns is consistent (fallback blocks in neither
 *     region, blocks larger than the region never in it);
 *   - a pool with no live block serves every request that fits (after the
 *     exhaustion path flushed the thread cache and released empty spans);
 *   - mp_pool_check == 0 and the statistics match the model (pool_bytes,
 *     pool_allocs - pool_frees, small_bytes, small_allocs - small_frees,
 *     region_used == used_bytes, span bytes a multiple of 64 KiB);
 *   - at the end of each input everything is freed, and then a block of the
 *     whole region comes from the pool; once it is freed the pool is one
 *     free range again (so that inputs do not depend on each other).
 *
 * A failed check prints one line and aborts (standalone: after writing the
 * input to fuzz_pool-failure-*.bin for replay).
 *
 * Known deviation left out of the default checks: a jemalloc fallback block
 * of 8 bytes or less is only 8-aligned (README promises 16 for every block);
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "pool.h"
#include "span.h"

#define SLOTS       128
#define MAX_OPS     4096
#define CHECK_EVERY 64
#define DENSE       (64u << 10)   /* blocks up to this size are checked byte by byte */
#define LIVE_CAP    (96ull << 20) /* keep the live requested bytes below this */
#define PLAIN_SIZE  (1u << 20)
#define SMALL_SIZE  (16u << 20)
#define MEDIUM_SIZE (MP_MEDIUM_MIN_REGION + (40u << 10) + 48u)

typedef struct block {
  uint8_t *p;
  size_t req;    /* bytes requested */
  size_t usable; /* mp_malloc_usable_size at the last check */
  size_t align;  /* alignment asked for */
  uint64_t id;   /* pattern seed */
  bool owned;    /* in the pool's region */
  bool small;    /* in a small-object span */
} block;

enum { PLAIN, SMALL, MEDIUM, NPOOLS };
static const struct pool_def {
  const char *name;
  size_t size;
  bool small;      /* mp_pool_enable_small */
  bool own_thread; /* its inputs run on the worker thread (its cache's owner) */
  int full_every;  /* with the check after every operation: mp_pool_check after every this many */
} pool_def[NPOOLS] = {
    [PLAIN] = {"1 MiB plain", PLAIN_SIZE, false, false, 1},
    [SMALL] = {"16 MiB small", SMALL_SIZE, true, false, 1},
    [MEDIUM] = {"128 MiB medium", MEDIUM_SIZE, true, true, 8},
};
static mp_pool g_pool[NPOOLS];
static bool g_open;

/* Per input. */
static mp_pool *P;
static int cur_pool;
static uint64_t used_before; /* P's region_used before the allocation being made */
static block slots[SLOTS];
static uint64_t next_id;
static int op_no;
static unsigned long total_ops;
static size_t live_bytes;
static const uint8_t *cur_data;
static size_t cur_size;

/* ---- failure -------------------------------------------------------------- */

static void save_input(void) {
#ifdef FUZZ_STANDALONE
  char name[128];
  snprintf(name, sizeof name, "fuzz_pool-failure-%ld.bin", (long)getpid());
  FILE *f = fopen(name, "wb");
  if (f) {
    fwrite(cur_data, 1, cur_size, f);
    fclose(f);
    fprintf(stderr, "fuzz_pool: input (%zu bytes) written to %s (replay: fuzz_pool %s)\n", cur_size, name, name);
  }
#endif
}

static _Noreturn __attribute__((format(printf, 1, 2))) void fail(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "fuzz_pool: FAIL at op %d (%s pool): ", op_no, pool_def[cur_pool].name);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  save_input();
  abort();
}

#define REQUIRE(cond, ...)          \
  do {                              \
    if (!(cond)) fail(__VA_ARGS__); \
  } while (0)

/* ---- pool setup ------------------------------------------------------------ */

static void open_pools(void) {
  if (g_open) return;
  for (int k = 0; k < NPOOLS; k++) {
    char err[320];
    const struct pool_def *d = &pool_def[k];
    mp_config c = {.device = "anon", .base = 0, .high = d->size - 1, .sync = true};
    if (mp_pool_open(&g_pool[k], &c, err, sizeof err) != 0) {
      fprintf(stderr, "fuzz_pool: cannot open the %s pool: %s\n", d->name, err);
      abort();
    }
    if (d->small && mp_pool_enable_small(&g_pool[k]) != 0) {
      fprintf(stderr, "fuzz_pool: mp_pool_enable_small failed for the %s pool\n", d->name);
      abort();
    }
  }
  g_open = true;
}

/* ---- content patterns ------------------------------------------------------ */

static inline uint64_t pat_word(uint64_t id, size_t w) {
  uint64_t x = id * 0x9E3779B97F4A7C15ull + (uint64_t)w * 0xC2B2AE3D27D4EB4Full + 0x165667B19E3779F9ull;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 32);
}
static inline uint8_t pat_byte(uint64_t id, size_t i) { return (uint8_t)(pat_word(id, i >> 3) >> ((i & 7) * 8)); }

/* Writes (or checks) the pattern of id over [lo, hi). Returns the first bad
 * offset, or SIZE_MAX. zero: check for zero bytes instead. */
enum { DO_FILL, DO_CHECK, DO_ZERO };
static size_t pattern_range(uint8_t *p, uint64_t id, size_t lo, size_t hi, int what) {
  size_t i = lo;
  while (i < hi) {
    if ((i & 7) == 0 && i + 8 <= hi) {
      uint64_t w = what == DO_ZERO ? 0 : pat_word(id, i >> 3), have;
      if (what == DO_FILL) {
        memcpy(p + i, &w, 8);
      } else {
        memcpy(&have, p + i, 8);
        if (have != w) {
          for (size_t k = i; k < i + 8; k++)
            if (p[k] != (what == DO_ZERO ? 0 : pat_byte(id, k))) return k;
        }
      }
      i += 8;
    } else {
      uint8_t b = what == DO_ZERO ? 0 : pat_byte(id, i);
      if (what == DO_FILL)
        p[i] = b;
      else if (p[i] != b)
        return i;
      i++;
    }
  }
  return SIZE_MAX;
}

/* The tracked positions of a block of size bytes, clipped to [0, upto). */
static size_t pattern(uint8_t *p, uint64_t id, size_t size, size_t upto, int what) {
  size_t r;
#define RANGE(a, b)                                                                    \
  do {                                                                                 \
    size_t lo_ = (a), hi_ = (b) < upto ? (b) : upto;                                   \
    if (lo_ < hi_ && (r = pattern_range(p, id, lo_, hi_, what)) != SIZE_MAX) return r; \
  } while (0)
  if (size <= DENSE) {
    RANGE(0, size);
    return SIZE_MAX;
  }
  RANGE(0, 4096);
  for (size_t k = 65536; k + 64 <= size - 4096; k += 65536) RANGE(k, k + 64);
  RANGE(size - 4096, size);
#undef RANGE
  return SIZE_MAX;
}

static void fill_block(block *b) { pattern(b->p, b->id, b->req, b->req, DO_FILL); }

static void verify_block(const block *b, size_t upto, const char *when) {
  size_t bad = pattern(b->p, b->id, b->req, upto, DO_CHECK);
  REQUIRE(bad == SIZE_MAX, "%s: block id %lu at %p (%zu bytes, %s) has a wrong byte at offset %zu: %#x, want %#x", when,
          (unsigned long)b->id, (void *)b->p, b->req, b->owned ? "pool" : "jemalloc", bad, b->p[bad],
          pat_byte(b->id, bad));
}

/* ---- the model's checks ---------------------------------------------------- */

static size_t round16(size_t n) { return n ? (n + 15) & ~(size_t)15 : 16; }

static size_t live_owned(void) {
  size_t n = 0;
  for (int i = 0; i < SLOTS; i++) n += slots[i].p && slots[i].owned;
  return n;
}

/* The model of which class serves size bytes at alignment align (pool.c
 * small_class): the smallest class holding max(size, align) whose size is a
 * multiple of align, up to the pool's largest class; -1 for a range block. */
static size_t model_small_max(const mp_pool *p) {
  if (!p->small.enabled) return 0;
  return p->region.size >= MP_MEDIUM_MIN_REGION ? MP_SMALL_MAX : MP_HIT_MAX;
}
static int model_class(size_t size, size_t align) {
  size_t n = size < align ? align : size;
  if (n > model_small_max(P) || align > 4096) return -1;
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++)
    if (mp_class_size[c] >= n && mp_class_size[c] % align == 0) return (int)c;
  return -1;
}

/* Does a small object of class c stay in place when realloc'd to n bytes?
 * (pool.c small_stays: while n still belongs near its class.) */
static bool model_stays(int c, size_t n) {
  size_t cs = mp_class_size[c];
  return n <= cs && (n > cs / 2 || model_class(n, 16) == c);
}

static void snap_used(void) { used_before = P->stats.region_used; }

/* Fills in owned/small/usable of a new or moved block and checks them;
 * returns the block's class (-1: not in a span). */
static int check_placement(block *b, int self) {
  uintptr_t a = (uintptr_t)b->p;
  int cls = -1;
  b->owned = mp_pool_owns(P, b->p);
  for (int k = 0; k < NPOOLS; k++)
    REQUIRE(&g_pool[k] == P || !mp_pool_owns(&g_pool[k], b->p), "block %p lies in the %s pool's region", (void *)b->p,
            pool_def[k].name);
  /* 16 for every block (README), jemalloc's blocks included. */
  size_t need = b->align;
  REQUIRE(a % need == 0, "block %p (%zu bytes, %s) not aligned to %zu", (void *)b->p, b->req,
          b->owned ? "pool" : "jemalloc", need);
  b->usable = mp_malloc_usable_size(P, b->p);
  REQUIRE(b->usable >= b->req, "usable size %zu < %zu requested (block %p)", b->usable, b->req, (void *)b->p);
  b->small = false;
  if (b->owned) {
    uintptr_t off = a - P->region.base;
    REQUIRE(b->req <= P->region.size, "a block of %zu bytes (more than the region) came from the pool", b->req);
    REQUIRE(off + b->usable <= P->region.size, "pool block %p + %zu runs past the region", (void *)b->p, b->usable);
    unsigned c = mp_small_class_at(P, off);
    if (c) {
      b->small = true;
      cls = (int)mp_span_cls(c);
      REQUIRE(!(c & MP_SPAN_INHERITED), "small block %p in an inherited span (byte %#x)", (void *)b->p, c);
      REQUIRE(b->usable == mp_class_size[cls], "small block %p: usable %zu, class size %u", (void *)b->p, b->usable,
              (unsigned)mp_class_size[cls]);
      REQUIRE(b->req <= model_small_max(P), "a %zu-byte block in a span of class %d (the pool's classes end at %zu)",
              b->req, cls, model_small_max(P));
      size_t in_span = off - ((size_t)P->small.spans[off >> MP_SPAN_SHIFT].head << MP_SPAN_SHIFT);
      REQUIRE(in_span % mp_class_size[cls] == 0 && in_span + b->usable <= mp_class_span_bytes((unsigned)cls),
              "small block %p: offset %zu in its span of class %d (%u bytes a span) is not an object's", (void *)b->p,
              in_span, cls, (unsigned)mp_class_span_bytes((unsigned)cls));
    } else {
      /* Exact, but for a block realloc moved while growing (1/4 more room)
       * or left as it was (the request within its last quarter). */
      size_t most = round16(b->req) + round16(b->req) / 3 + MP_GRANULE;
      REQUIRE(b->usable >= round16(b->req) && b->usable <= most,
              "range block %p: usable %zu for %zu bytes (want %zu..%zu)", (void *)b->p, b->usable, b->req,
              round16(b->req), most);
    }
  }
  /* No overlap with any other live block. */
  for (int i = 0; i < SLOTS; i++) {
    const block *o = &slots[i];
    if (i == self || !o->p) continue;
    REQUIRE((uintptr_t)o->p + o->usable <= a || a + b->usable <= (uintptr_t)o->p,
            "block %p+%zu overlaps live block %p+%zu (slot %d)", (void *)b->p, b->usable, (void *)o->p, o->usable, i);
  }
  return cls;
}

/* A fresh pool block of class got (-1: a range block) for req bytes at
 * align: the model's class, or a range block where no span of the model's
 * class could be had: its refill found no free object and no room for a
 * new span (a free range of the good fit's size for 64 KiB-aligned span
 * bytes, with 1/8 for its size classes' rounding: ranges.c find_free),
 * unless the exhaustion path released spans meanwhile (region_used grew
 * by less than the block). */
static void check_class(const block *b, int got) {
  if (!b->owned) return;
  int want = model_class(b->req, b->align);
  if (got >= 0) {
    REQUIRE(got == want, "%zu bytes aligned to %zu: an object of class %d (%u bytes), want %s %d", b->req, b->align,
            got, (unsigned)mp_class_size[got], want < 0 ? "a range block, not class" : "class", want);
    return;
  }
  if (want < 0 || P->stats.region_used != used_before + b->usable) return;
  mp_pool_info in;
  mp_pool_get_info(P, &in);
  uint64_t fit = ((uint64_t)mp_class_span_bytes((unsigned)want) + MP_SPAN_SIZE - MP_GRANULE) * 9 / 8;
  REQUIRE(in.largest_free < fit,
          "%zu bytes aligned to %zu: a range block %p, not an object of class %d (%u bytes), yet a free range of %lu "
          "bytes holds a span of it (%u bytes)",
          b->req, b->align, (void *)b->p, want, (unsigned)mp_class_size[want], (unsigned long)in.largest_free,
          (unsigned)mp_class_span_bytes((unsigned)want));
}

/* A fresh block in slot i (from an allocation, not a realloc). */
static void adopt(int i, void *p, size_t req, size_t align, bool zeroed) {
  block *b = &slots[i];
  /* Must the pool have served it? With no live pool block, a request that
   * fits in the region (granule-rounded, plus the worst alignment lead). */
  bool must = P->region.size >= round16(req) + (align > 16 ? align - 16 : 0) && live_owned() == 0;
  *b = (block){.p = p, .req = req, .align = align, .id = ++next_id};
  check_class(b, check_placement(b, i));
  REQUIRE(b->owned || !must, "the empty pool did not serve %zu bytes aligned to %zu (got %p)", req, align, p);
  if (zeroed) {
    size_t bad = pattern(b->p, 0, req, req, DO_ZERO);
    REQUIRE(bad == SIZE_MAX, "calloc block %p (%zu bytes, %s) not zero at %zu", p, req, b->owned ? "pool" : "jemalloc",
            bad);
  }
  fill_block(b);
  live_bytes += req;
}

static void release(int i, const char *why) {
  block *b = &slots[i];
  verify_block(b, b->req, why);
  REQUIRE(mp_pool_owns(P, b->p) == b->owned, "ownership of %p changed", (void *)b->p);
  int e = errno = 1234;
  mp_free(P, b->p);
  REQUIRE(errno == e, "free changed errno to %d", errno);
  live_bytes -= b->req;
  memset(b, 0, sizeof *b);
}

/* The statistics against the model, and with full the invariants
 * (mp_pool_check: O(region) with spans, about 1 ms in the medium pool). */
static void check_pool_as(const char *when, bool full) {
  char why[512] = "";
  int rc = full ? mp_pool_check(P, why, sizeof why) : 0;
  REQUIRE(rc == 0, "%s: mp_pool_check = %d: %s", when, rc, why);
  mp_pool_info in;
  mp_pool_get_info(P, &in);
  uint64_t range_bytes = 0, range_n = 0, small_bytes = 0, small_n = 0;
  for (int i = 0; i < SLOTS; i++) {
    const block *b = &slots[i];
    if (!b->p) continue;
    REQUIRE(mp_pool_owns(P, b->p) == b->owned, "%s: ownership of %p changed", when, (void *)b->p);
    if (!b->owned) continue;
    if (b->small)
      small_bytes += b->usable, small_n++;
    else
      range_bytes += b->usable, range_n++;
  }
  REQUIRE(in.used_bytes + in.free_bytes == in.region_bytes && in.region_bytes == P->region.size,
          "%s: used %lu + free %lu != region %lu", when, (unsigned long)in.used_bytes, (unsigned long)in.free_bytes,
          (unsigned long)in.region_bytes);
  REQUIRE(in.stats.region_used == in.used_bytes, "%s: stats.region_used %lu, ranges in use %lu bytes", when,
          (unsigned long)in.stats.region_used, (unsigned long)in.used_bytes);
  REQUIRE(in.stats.pool_bytes == range_bytes, "%s: stats.pool_bytes %lu, model %lu", when,
          (unsigned long)in.stats.pool_bytes, (unsigned long)range_bytes);
  REQUIRE(in.stats.pool_allocs - in.stats.pool_frees == range_n, "%s: pool_allocs - pool_frees = %lu, model %lu", when,
          (unsigned long)(in.stats.pool_allocs - in.stats.pool_frees), (unsigned long)range_n);
  REQUIRE(in.small_bytes == small_bytes, "%s: small_bytes %lu, model %lu", when, (unsigned long)in.small_bytes,
          (unsigned long)small_bytes);
  REQUIRE(in.small_allocs - in.small_frees == small_n, "%s: small_allocs - small_frees = %lu, model %lu", when,
          (unsigned long)(in.small_allocs - in.small_frees), (unsigned long)small_n);
  uint64_t span_bytes = in.used_bytes - range_bytes;
  REQUIRE(in.used_bytes >= range_bytes && span_bytes % MP_SPAN_SIZE == 0,
          "%s: %lu bytes in use beyond range blocks, not whole spans", when, (unsigned long)span_bytes);
  REQUIRE(span_bytes == 0 || P->small.enabled, "%s: span bytes in a pool without small objects", when);
  REQUIRE(in.used_ranges >= range_n, "%s: %lu in-use ranges for %lu range blocks", when, (unsigned long)in.used_ranges,
          (unsigned long)range_n);
  REQUIRE(in.largest_free <= in.free_bytes, "%s: largest free %lu > free %lu", when, (unsigned long)in.largest_free,
          (unsigned long)in.free_bytes);
}

static void check_pool(const char *when) { check_pool_as(when, true); }

/* ---- input decoding -------------------------------------------------------- */

typedef struct reader {
  const uint8_t *d;
  size_t n, i;
} reader;

static bool more(const reader *r) { return r->i < r->n; }
static unsigned u8(reader *r) { return r->i < r->n ? r->d[r->i++] : 0; }
static unsigned u16(reader *r) { return u8(r) | u8(r) << 8; }
static unsigned u24(reader *r) { return u16(r) | u8(r) << 16; }

/* A size in the medium range or at a class's edge: a class size (of the
 * last hit classes or a medium one), a byte or a granule either side; an
 * edge of the hit or the medium sizes; or any size from MP_HIT_MAX to 32 KiB
 * past MP_SMALL_MAX. */
static size_t dec_medium(reader *r) {
  unsigned k = u8(r);
  if (k < 112) {
    static const int delta[8] = {-16, -1, 0, 0, 0, 1, 16, 17};
    unsigned c = MP_HIT_CLASSES - 4 + u8(r) % (MP_MEDIUM_CLASSES + 4);
    return (size_t)((long)mp_class_size[c] + delta[k & 7]);
  }
  if (k < 144) {
    static const size_t edge[8] = {MP_HIT_MAX - 1,   MP_HIT_MAX,   MP_HIT_MAX + 1,   MP_HIT_MAX + 16,
                                   MP_SMALL_MAX - 1, MP_SMALL_MAX, MP_SMALL_MAX + 1, MP_SMALL_MAX + 16};
    return edge[k & 7];
  }
  return MP_HIT_MAX + u24(r) % (MP_SMALL_MAX - MP_HIT_MAX + (32u << 10));
}

/* A size: mostly small, sometimes up to 8 KiB / 64 KiB, often medium (see
 * dec_medium), log-uniform up to the region, at an edge of the region or of
 * the small classes, rarely from half the region to twice it or the largest
 * free range but up to 23 units of 64 KiB (a region then tight for spans: the
 * exhaustion path, range blocks where a class was due). Large blocks
 * are costly (fills, copies, page faults): 1 in 8 sizes is log-uniform, 1
 * in 256 above half the region. */
static size_t dec_size(reader *r) {
  size_t R = P->region.size;
  unsigned b = u8(r);
  size_t n;
  switch (b >> 5) {
    case 0:
    case 1: n = u8(r); break;
    case 2: n = dec_medium(r); break;
    case 3: n = u8(r) | (u8(r) & 0x1f) << 8; break; /* < 8 KiB */
    case 4: n = u16(r); break;                      /* < 64 KiB */
    case 5: {                                       /* log-uniform, up to the region */
      unsigned sh = u8(r) % (unsigned)(64 - __builtin_clzl(R));
      n = ((size_t)1 << sh) + (u24(r) & (((size_t)1 << sh) - 1));
      if (n > R) n = R;
      break;
    }
    case 6: {
      const size_t edge[] = {0,          1,     8,          9,         15,       16,        17,     128,
                             129,        4096,  8191,       8192,      8193,     65535,     65536,  65537,
                             R / 2 - 16, R / 2, R / 2 + 16, R - 65536, R - 4096, R - 32,    R - 16, R - 1,
                             R,          R + 1, R + 16,     R + 4096,  2 * R,    3 * R / 2, R / 4,  R / 3};
      n = edge[b & 31];
      break;
    }
    default:
      if (b == 0xFF) {
        n = R / 2 + u24(r) % (3 * R / 2 + 1); /* half the region .. twice it */
      } else if (b == 0xFE) {                 /* the largest free range but a few spans' worth: what is left is tight */
        mp_pool_info in;
        mp_pool_get_info(P, &in);
        size_t less = (size_t)(u8(r) % 24) * MP_SPAN_SIZE + (size_t)(u8(r) % 4) * 16;
        return in.largest_free > less ? in.largest_free - less : 0; /* from the pool: not held to LIVE_CAP */
      } else if (b & 1)
        n = dec_medium(r);
      else
        n = u8(r) | (u8(r) & 0x3f) << 8; /* < 16 KiB */
      break;
  }
  if (n > DENSE && live_bytes + n > LIVE_CAP) n %= DENSE;
  return n;
}

static size_t dec_align(reader *r) { return (size_t)1 << (u8(r) % 17); } /* 1 B .. 64 KiB */

static int pick_live(reader *r) {
  int s = (int)(u8(r) % SLOTS);
  for (int k = 0; k < SLOTS; k++) {
    int i = (s + k) % SLOTS;
    if (slots[i].p) return i;
  }
  return -1;
}

/* A slot for a new block: the one named, its occupant freed first. */
static int pick_slot(reader *r) {
  int i = (int)(u8(r) % SLOTS);
  if (slots[i].p) release(i, "replaced");
  snap_used();
  return i;
}

/* Where realloc put old (class old_cls, -1: not in a span) resized to b->req
 * bytes: b, of class cls (pool.c mp_pool_realloc; see the top). */
static void check_realloc(const block *old, int old_cls, const block *b, int cls) {
  size_t n = b->req;
  bool grows = n > old->usable, moved = b->p != old->p;
  if (old->owned && old_cls >= 0) {
    bool stays = model_stays(old_cls, n);
    REQUIRE(stays == !moved, "realloc of a %u-byte object %p to %zu bytes %s (want %s)",
            (unsigned)mp_class_size[old_cls], (void *)old->p, n, moved ? "moved" : "stayed",
            stays ? "in place" : "a move");
  } else if (old->owned) {
    size_t g = n ? (n + MP_GRANULE - 1) / MP_GRANULE : 1, og = old->usable / MP_GRANULE;
    if (g <= og) /* shrinks in place, or stays within its last quarter */
      REQUIRE(!moved, "realloc of a %zu-byte range block %p to %zu bytes moved it to %p", old->usable, (void *)old->p,
              n, (void *)b->p);
  }
  if (cls < 0 || !moved) return;
  int want = model_class(n, 16);
  size_t n2 = n + n / 4;
  int roomy = old->owned && grows && n2 <= MP_HIT_MAX ? model_class(n2, 16) : -1;
  REQUIRE(cls == want || cls == roomy,
          "realloc %p (%zu bytes, %s) -> %zu bytes: an object of class %d (%u bytes), want class %d or %d",
          (void *)old->p, old->req, old->owned ? "pool" : "jemalloc", n, cls, (unsigned)mp_class_size[cls], want,
          roomy);
  REQUIRE(!(old->owned && grows) || mp_class_size[cls] <= MP_HIT_MAX,
          "realloc %p (%zu usable) grew to %zu bytes into a medium object (class %d, %u bytes), not a range block",
          (void *)old->p, old->usable, n, cls, (unsigned)mp_class_size[cls]);
}

static void do_realloc(int i, size_t n, bool array, size_t nmemb) {
  block *b = &slots[i];
  verify_block(b, b->req, "before realloc");
  block old = *b;
  int old_cls = old.small ? (int)mp_span_cls(mp_small_class_at(P, (uintptr_t)old.p - P->region.base)) : -1;
  errno = 0;
  void *q = array ? mp_reallocarray(P, b->p, nmemb, n / nmemb) : mp_realloc(P, b->p, n);
  if (array) n = nmemb * (n / nmemb);
  if (n == 0) { /* glibc: frees, returns NULL */
    REQUIRE(q == NULL, "realloc(%p, 0) returned %p", (void *)old.p, q);
    live_bytes -= old.req;
    memset(b, 0, sizeof *b);
    return;
  }
  REQUIRE(q != NULL, "realloc(%p, %zu) failed (errno %d)", (void *)old.p, n, errno);
  b->p = q;
  b->req = n;
  b->align = 16;
  live_bytes = live_bytes - old.req + n;
  int cls = check_placement(b, i);
  if (q == old.p) REQUIRE(b->owned == old.owned, "realloc in place changed the owner");
  check_realloc(&old, old_cls, b, cls);
  /* The old content (what the old block tracked) is preserved up to min. */
  size_t keep = old.req < n ? old.req : n;
  size_t bad = pattern(b->p, b->id, old.req, keep, DO_CHECK);
  REQUIRE(bad == SIZE_MAX, "realloc %p (%zu, %s) -> %p (%zu, %s) lost content at offset %zu", (void *)old.p, old.req,
          old.owned ? "pool" : "jemalloc", q, n, b->owned ? "pool" : "jemalloc", bad);
  fill_block(b);
}

static void run_op(reader *r) {
  unsigned op = u8(r) % 16;
  switch (op) {
    case 0:
    case 1:
    case 2: { /* malloc */
      int i = pick_slot(r);
      size_t n = dec_size(r);
      void *p = mp_malloc(P, n);
      REQUIRE(p != NULL, "malloc(%zu) failed", n);
      adopt(i, p, n, 16, false);
      break;
    }
    case 3: { /* calloc, sometimes overflowing */
      int i = pick_slot(r);
      unsigned m = u8(r);
      size_t n = dec_size(r);
      if (m == 255) {
        errno = 0;
        REQUIRE(mp_calloc(P, SIZE_MAX / 2, 3 + (n & 7)) == NULL && errno == ENOMEM, "calloc overflow not refused");
        break;
      }
      size_t nmemb = 1 + m % 16, size = n / nmemb;
      void *p = mp_calloc(P, nmemb, size);
      REQUIRE(p != NULL, "calloc(%zu, %zu) failed", nmemb, size);
      adopt(i, p, nmemb * size, 16, true);
      break;
    }
    case 4:
    case 5: { /* realloc of a live block (or of NULL) */
      int i = (int)(u8(r) % SLOTS);
      size_t n = dec_size(r);
      if (!slots[i].p) {
        snap_used();
        void *p = mp_realloc(P, NULL, n);
        REQUIRE(p != NULL, "realloc(NULL, %zu) failed", n);
        adopt(i, p, n, 16, false);
      } else {
        do_realloc(i, n, false, 1);
      }
      break;
    }
    case 6: { /* realloc to 0, reallocarray, realloc to a size near the current one, or across an edge */
      int i = pick_live(r);
      unsigned k = u8(r);
      if (i < 0) break;
      size_t cur = slots[i].req, n;
      if (k % 8 == 0) {
        do_realloc(i, 0, false, 1);
        break;
      } else if (k % 8 < 3) {
        do_realloc(i, dec_size(r), true, 1 + k % 4);
        break;
      } else if (k % 8 < 6) { /* small steps: in-place growth and shrink */
        size_t d = (k >> 3) * 16;
        n = (k & 4) ? cur + d : (cur > d ? cur - d : 1);
      } else { /* to either side of MP_HIT_MAX or MP_SMALL_MAX, or by a half or a double */
        unsigned e = u8(r);
        size_t d = (size_t)(e >> 3) * 64, base = (e & 3) == 0   ? MP_HIT_MAX
                                                 : (e & 3) == 1 ? MP_SMALL_MAX
                                                 : (e & 3) == 2 ? 2 * cur
                                                                : cur / 2;
        n = (e & 4) ? base + d + 1 : (base > d ? base - d : 1);
      }
      if (n > DENSE && live_bytes + n - cur > LIVE_CAP) n = cur;
      do_realloc(i, n, false, 1);
      break;
    }
    case 7:
    case 8: { /* aligned allocations */
      int i = pick_slot(r);
      unsigned kind = u8(r) % 6;
      size_t align = dec_align(r), n = dec_size(r);
      void *p = NULL;
      size_t want = align < 16 ? 16 : align;
      switch (kind) {
        case 0:
        case 1: {
          void *out = (void *)0x1;
          int rc = mp_posix_memalign(P, &out, align, n);
          if (align < sizeof(void *)) {
            REQUIRE(rc == EINVAL && out == (void *)0x1, "posix_memalign(%zu) gave %d", align, rc);
            return;
          }
          REQUIRE(rc == 0, "posix_memalign(%zu, %zu) = %d", align, n, rc);
          p = out;
          break;
        }
        case 2: p = mp_aligned_alloc(P, align, n); break;
        case 3: { /* memalign, also with an alignment that is not a power of two */
          size_t a = align;
          if (align > 16 && (n & 1)) a = align - align / 4; /* rounded up to align */
          p = mp_memalign(P, a, n);
          break;
        }
        case 4:
          p = mp_valloc(P, n);
          want = 4096;
          break;
        default: {
          p = mp_pvalloc(P, n);
          want = 4096;
          n = n ? (n + 4095) & ~(size_t)4095 : 4096;
          break;
        }
      }
      REQUIRE(p != NULL, "aligned allocation (kind %u, align %zu, %zu bytes) failed", kind, align, n);
      adopt(i, p, n, want, false);
      break;
    }
    case 9:
    case 10:
    case 11: { /* free */
      int i = pick_live(r);
      if (i >= 0) release(i, "before free");
      break;
    }
    case 12: { /* usable size, and the slack is writable without harm */
      int i = pick_live(r);
      if (i < 0) break;
      block *b = &slots[i];
      size_t u = mp_malloc_usable_size(P, b->p);
      REQUIRE(u == b->usable, "usable size of %p changed: %zu, was %zu", (void *)b->p, u, b->usable);
      if (u - b->req <= DENSE) memset(b->p + b->req, 0xA5, u - b->req);
      verify_block(b, b->req, "usable size");
      break;
    }
    case 13: { /* refused sizes; a live block survives a refused realloc */
      unsigned k = u8(r);
      size_t huge = (size_t)PTRDIFF_MAX + 1 + (k & 15);
      errno = 0;
      REQUIRE(mp_malloc(P, huge) == NULL && errno == ENOMEM, "malloc(%zu) not refused", huge);
      errno = 0;
      REQUIRE(mp_pvalloc(P, SIZE_MAX - k) == NULL && errno == ENOMEM, "pvalloc(%zu) not refused", SIZE_MAX - k);
      errno = 0;
      REQUIRE(mp_aligned_alloc(P, 48 + 32 * (k & 7), 10) == NULL && errno == EINVAL,
              "aligned_alloc(%u, 10) not refused", 48 + 32 * (k & 7));
      errno = 0;
      REQUIRE(mp_memalign(P, SIZE_MAX - k, 10) == NULL && errno == EINVAL, "memalign(%zu) not refused", SIZE_MAX - k);
      int i = pick_live(r);
      if (i >= 0) {
        errno = 0;
        void *q = (k & 1) ? mp_reallocarray(P, slots[i].p, SIZE_MAX / 2, 3 + (k & 6))
                          : mp_realloc(P, slots[i].p, SIZE_MAX - k);
        REQUIRE(q == NULL && errno == ENOMEM, "realloc%s to a huge size not refused", (k & 1) ? "array" : "");
        verify_block(&slots[i], slots[i].req, "after a refused realloc");
      }
      break;
    }
    case 14: check_pool("check op"); break;
    default: {         /* free everything, oldest id first */
      if (u8(r) % 4) { /* mostly: verify one block */
        int i = pick_live(r);
        if (i >= 0) verify_block(&slots[i], slots[i].req, "verify op");
        break;
      }
      for (int i = 0; i < SLOTS; i++)
        if (slots[i].p) release(i, "free all");
      break;
    }
  }
}

static void end_of_input(void) {
  for (int i = 0; i < SLOTS; i++)
    if (slots[i].p) release(i, "end of input");
  op_no = -1;
  check_pool("end of input");
  mp_pool_info in;
  mp_pool_get_info(P, &in);
  REQUIRE(in.stats.pool_bytes == 0 && in.small_bytes == 0, "all freed, yet %lu range bytes and %lu small bytes in use",
          (unsigned long)in.stats.pool_bytes, (unsigned long)in.small_bytes);
  /* Nothing stranded: after the exhaustion path (flush the thread cache,
   * release empty spans) a block of the whole region comes from the pool. */
  void *whole = mp_malloc(P, P->region.size);
  REQUIRE(whole != NULL && mp_pool_owns(P, whole), "all freed, yet a block of the whole region (%zu) came from %s",
          P->region.size, whole ? "jemalloc" : "nowhere");
  REQUIRE(whole == (void *)P->region.base, "the whole-region block is at %p, not the base %p", whole,
          (void *)P->region.base);
  REQUIRE(mp_malloc_usable_size(P, whole) == P->region.size, "whole-region block usable %zu",
          mp_malloc_usable_size(P, whole));
  mp_free(P, whole);
  mp_pool_get_info(P, &in);
  REQUIRE(in.used_ranges == 0 && in.free_ranges == 1 && in.used_bytes == 0 && in.stats.region_used == 0 &&
              in.largest_free == P->region.size,
          "after the whole-region block: %lu used ranges, %lu free ranges, %lu used bytes, region_used %lu, "
          "largest free %lu",
          (unsigned long)in.used_ranges, (unsigned long)in.free_ranges, (unsigned long)in.used_bytes,
          (unsigned long)in.stats.region_used, (unsigned long)in.largest_free);
  char why[512] = "";
  REQUIRE(mp_pool_check(P, why, sizeof why) == 0, "after the whole-region block: %s", why);
}

/* One input on the pool its first byte picks, on the calling thread. */
static void run_input(const uint8_t *data, size_t size, int pool, bool paranoid) {
  reader r = {data, size, 1};
  P = &g_pool[pool];
  cur_pool = pool;
  memset(slots, 0, sizeof slots);
  next_id = 0;
  live_bytes = 0;
  op_no = 0;
  static bool first[NPOOLS] = {true, true, true}; /* later inputs start where the last one's end checks left the pool */
  if (first[pool]) {
    if (model_small_max(P) != (P->small.enabled ? P->small.max_size : 0))
      fail("the pool's classes end at %u bytes, the model's at %zu", (unsigned)P->small.max_size, model_small_max(P));
    check_pool("start of the first input");
  }
  first[pool] = false;
  while (more(&r) && op_no < MAX_OPS) {
    run_op(&r);
    op_no++;
    total_ops++;
    if (paranoid || op_no % CHECK_EVERY == 0)
      check_pool_as("periodic", !paranoid || op_no % pool_def[pool].full_every == 0);
  }
  end_of_input();
}

/* The worker thread: the medium pool's inputs, one at a time. */
static pthread_mutex_t w_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t w_cond = PTHREAD_COND_INITIALIZER;
static struct {
  const uint8_t *data;
  size_t size;
  int pool;
  bool paranoid, busy;
} w_job;

static void *worker(void *arg) {
  (void)arg;
  pthread_mutex_lock(&w_lock);
  for (;;) {
    while (!w_job.busy) pthread_cond_wait(&w_cond, &w_lock);
    pthread_mutex_unlock(&w_lock);
    run_input(w_job.data, w_job.size, w_job.pool, w_job.paranoid);
    pthread_mutex_lock(&w_lock);
    w_job.busy = false;
    pthread_cond_broadcast(&w_cond);
  }
  return NULL;
}

static void run_on_worker(const uint8_t *data, size_t size, int pool, bool paranoid) {
  static bool started;
  if (!started) {
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) {
      fprintf(stderr, "fuzz_pool: cannot start the worker thread\n");
      abort();
    }
    pthread_detach(t);
    started = true;
  }
  pthread_mutex_lock(&w_lock);
  w_job.data = data;
  w_job.size = size;
  w_job.pool = pool;
  w_job.paranoid = paranoid;
  w_job.busy = true;
  pthread_cond_broadcast(&w_cond);
  while (w_job.busy) pthread_cond_wait(&w_cond, &w_lock);
  pthread_mutex_unlock(&w_lock);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  open_pools();
  cur_data = data;
  cur_size = size;
  if (size == 0) return 0;
  unsigned flags = data[0];
  int pool = !(flags & 1) ? PLAIN : (flags & 4) ? MEDIUM : SMALL;
  bool paranoid = flags & 2;
  if (pool_def[pool].own_thread)
    run_on_worker(data, size, pool, paranoid);
  else
    run_input(data, size, pool, paranoid);
  return 0;
}

/* ---- standalone ------------------------------------------------------------ */

#ifdef FUZZ_STANDALONE
static uint64_t rng;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static int replay(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return 1;
  }
  static uint8_t buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  LLVMFuzzerTestOneInput(buf, n);
  printf("fuzz_pool: %s (%zu bytes): ok\n", path, n);
  return 0;
}

int main(int argc, char **argv) {
  long iters = 2000, maxlen = 2048, flags = -1;
  double seconds = 0;
  uint64_t seed = 1;
  int opt;
  while ((opt = getopt(argc, argv, "n:s:l:t:f:")) != -1) {
    switch (opt) {
      case 'n': iters = strtol(optarg, NULL, 0); break;
      case 's': seed = strtoull(optarg, NULL, 0); break;
      case 'l': maxlen = strtol(optarg, NULL, 0); break;
      case 't': seconds = strtod(optarg, NULL); break;
      case 'f': flags = strtol(optarg, NULL, 0) & 7; break;
      default:
        fprintf(stderr,
                "usage: %s [-n INPUTS] [-s SEED] [-l MAXLEN] [-t SECONDS] [-f FLAGS] [FILE...]\n"
                "  -f FLAGS: the low 3 bits of every input's first byte (the pool, the check after each operation)\n",
                argv[0]);
        return 2;
    }
  }
  if (optind < argc) {
    int rc = 0;
    for (int k = optind; k < argc; k++) rc |= replay(argv[k]);
    return rc;
  }
  if (maxlen < 1) maxlen = 1;
  static uint8_t buf[1 << 16];
  if ((size_t)maxlen > sizeof buf) maxlen = sizeof buf;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long done = 0;
  for (long it = 0; it < iters; it++) {
    rng = seed * 0x9E3779B97F4A7C15ull + (uint64_t)it * 0xD1B54A32D192ED03ull + 1;
    for (int k = 0; k < 4; k++) next_rand();
    size_t len = 1 + next_rand() % (uint64_t)maxlen;
    for (size_t k = 0; k < len; k++) buf[k] = (uint8_t)(next_rand() >> 24);
    if (flags >= 0) buf[0] = (uint8_t)((buf[0] & ~7) | flags);
    LLVMFuzzerTestOneInput(buf, len);
    done++;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (seconds > 0 && (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9 > seconds) break;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("fuzz_pool: %ld inputs (seed %lu), %lu operations, %.1f s: all checks passed\n", done, (unsigned long)seed,
         total_ops, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
  return 0;
}
#endif
