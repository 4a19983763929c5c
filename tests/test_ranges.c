/* test_ranges.c - unit tests for the hierarchical bitmap (bitmap.h) and the
 * range allocator (ranges.h): brute-force references for the bitmap,
 * deterministic scenarios and a randomized reference model for the ranges.
 *
 * Deterministic: every random choice comes from a fixed-seed xorshift64*.
 * Hot loops use REQUIRE (check's ck_assert records a location per call,
 * which is far too slow for millions of assertions).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bitmap.h"
#include "ranges.h"

#define REQUIRE(cond, ...)                  \
  do {                                      \
    if (!(cond)) ck_abort_msg(__VA_ARGS__); \
  } while (0)

/* ---- PRNG ---------------------------------------------------------------- */

typedef struct {
  uint64_t s;
} rng_t;

static void rng_seed(rng_t *r, uint64_t seed) {
  r->s = seed * 0x9E3779B97F4A7C15ull + 0x1234567ull;
  if (!r->s) r->s = 1;
}

static uint64_t rng_next(rng_t *r) {
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t rng_below(rng_t *r, uint64_t n) { return n ? rng_next(r) % n : 0; }

static void *xcalloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz);
  ck_assert_ptr_nonnull(p);
  return p;
}

/* ======================================================================== */
/* Bitmap                                                                    */
/* ======================================================================== */

static const uint64_t bm_sizes[] = {1, 63, 64, 65, 4096, 262145, 5000000};
#define N_BM_SIZES (sizeof bm_sizes / sizeof bm_sizes[0])

typedef struct {
  uint64_t n;
  mp_bitmap b;
  void *mem;
  uint8_t *ref;       /* one byte per bit */
  uint32_t *next_ref; /* smallest set >= i, UINT32_MAX if none */
  uint32_t *prev_ref; /* largest set <= i, UINT32_MAX if none */
} bm_fixture;

static void bm_open(bm_fixture *f, uint64_t n) {
  f->n = n;
  f->mem = xcalloc(1, mp_bitmap_bytes(n));
  mp_bitmap_init(&f->b, n, f->mem);
  f->ref = xcalloc(n, 1);
  f->next_ref = xcalloc(n, sizeof(uint32_t));
  f->prev_ref = xcalloc(n, sizeof(uint32_t));
  ck_assert_uint_ge(f->b.nlevels, 1);
  ck_assert_uint_le(f->b.nlevels, MP_BITMAP_MAX_LEVELS);
  ck_assert_uint_eq(f->b.nbits[0], n);
  /* The top level is one word. */
  ck_assert_uint_le(f->b.nbits[f->b.nlevels - 1], 64);
}

static void bm_close(bm_fixture *f) {
  free(f->mem);
  free(f->ref);
  free(f->next_ref);
  free(f->prev_ref);
}

static void bm_set(bm_fixture *f, uint64_t i) {
  mp_bitmap_set(&f->b, i);
  f->ref[i] = 1;
}
static void bm_clear(bm_fixture *f, uint64_t i) {
  mp_bitmap_clear(&f->b, i);
  f->ref[i] = 0;
}

static uint64_t u32_to_u64(uint32_t v) { return v == UINT32_MAX ? UINT64_MAX : v; }

/* Full comparison: every index, plus queries past the end. */
static void bm_verify_all(bm_fixture *f, const char *what) {
  uint64_t n = f->n;
  REQUIRE(mp_bitmap_check(&f->b) == 0, "n=%lu %s: mp_bitmap_check failed", (unsigned long)n, what);
  uint32_t last = UINT32_MAX;
  for (uint64_t i = 0; i < n; i++) {
    if (f->ref[i]) last = (uint32_t)i;
    f->prev_ref[i] = last;
  }
  last = UINT32_MAX;
  for (uint64_t i = n; i-- > 0;) {
    if (f->ref[i]) last = (uint32_t)i;
    f->next_ref[i] = last;
  }
  for (uint64_t i = 0; i < n; i++) {
    REQUIRE(mp_bitmap_test(&f->b, i) == (bool)f->ref[i], "n=%lu %s: test(%lu) wrong", (unsigned long)n, what,
            (unsigned long)i);
    uint64_t nx = mp_bitmap_next_set(&f->b, i), pv = mp_bitmap_prev_set(&f->b, i);
    REQUIRE(nx == u32_to_u64(f->next_ref[i]), "n=%lu %s: next_set(%lu) = %lu, want %lu", (unsigned long)n, what,
            (unsigned long)i, (unsigned long)nx, (unsigned long)u32_to_u64(f->next_ref[i]));
    REQUIRE(pv == u32_to_u64(f->prev_ref[i]), "n=%lu %s: prev_set(%lu) = %lu, want %lu", (unsigned long)n, what,
            (unsigned long)i, (unsigned long)pv, (unsigned long)u32_to_u64(f->prev_ref[i]));
  }
  /* Past the end: next finds nothing, prev clamps to n - 1. */
  uint64_t beyond[] = {n, n + 1, n + 63, n + 64, n * 2 + 1000};
  for (size_t k = 0; k < sizeof beyond / sizeof beyond[0]; k++) {
    REQUIRE(mp_bitmap_next_set(&f->b, beyond[k]) == UINT64_MAX, "n=%lu %s: next_set(%lu) past end", (unsigned long)n,
            what, (unsigned long)beyond[k]);
    REQUIRE(mp_bitmap_prev_set(&f->b, beyond[k]) == u32_to_u64(f->prev_ref[n - 1]), "n=%lu %s: prev_set(%lu) past end",
            (unsigned long)n, what, (unsigned long)beyond[k]);
  }
}

/* Random patterns at one size, set then clear. */
START_TEST(test_bitmap_random_patterns) {
  uint64_t n = bm_sizes[_i];
  bm_fixture f;
  rng_t rng;
  rng_seed(&rng, 1000 + (uint64_t)_i);
  bm_open(&f, n);
  bm_verify_all(&f, "empty");

  /* Sparse: a handful of random bits (some at word edges). */
  uint64_t k = n / 5000 + 3;
  for (uint64_t j = 0; j < k; j++) bm_set(&f, rng_below(&rng, n));
  bm_set(&f, n - 1);
  bm_verify_all(&f, "sparse");
  bm_clear(&f, n - 1);
  if (n > 1) bm_set(&f, 0);
  bm_verify_all(&f, "sparse, first bit");

  /* Clustered: runs of set bits separated by long gaps (whole empty words
   * and empty summary words). */
  for (uint64_t at = rng_below(&rng, 200); at < n; at += 1 + rng_below(&rng, n / 8 + 2)) {
    uint64_t len = 1 + rng_below(&rng, 130);
    for (uint64_t j = at; j < at + len && j < n; j++) bm_set(&f, j);
  }
  bm_verify_all(&f, "clustered");

  /* Dense: ~90% of bits set. */
  for (uint64_t i = 0; i < n; i++)
    if (rng_below(&rng, 10) != 0) bm_set(&f, i);
  bm_verify_all(&f, "dense 90%");

  /* All set. */
  for (uint64_t i = 0; i < n; i++) bm_set(&f, i);
  bm_verify_all(&f, "full");

  /* Clear back to ~50%, then to ~0.2%, then to nothing. */
  for (uint64_t i = 0; i < n; i++)
    if (rng_below(&rng, 2) == 0) bm_clear(&f, i);
  bm_verify_all(&f, "cleared to 50%");
  for (uint64_t i = 0; i < n; i++)
    if (f.ref[i] && rng_below(&rng, 250) != 0) bm_clear(&f, i);
  bm_verify_all(&f, "cleared to sparse");
  /* Clearing an already clear bit must not disturb the summaries. */
  for (uint64_t j = 0; j < 1000; j++) {
    uint64_t i = rng_below(&rng, n);
    if (!f.ref[i]) bm_clear(&f, i);
  }
  /* Setting an already set bit neither. */
  for (uint64_t i = 0; i < n; i++)
    if (f.ref[i]) bm_set(&f, i);
  bm_verify_all(&f, "idempotent set/clear");
  for (uint64_t i = 0; i < n; i++)
    if (f.ref[i]) bm_clear(&f, i);
  bm_verify_all(&f, "cleared to empty");
  for (unsigned l = 0; l < f.b.nlevels; l++)
    for (uint64_t w = 0; w < (f.b.nbits[l] + 63) / 64; w++)
      REQUIRE(f.b.level[l][w] == 0, "n=%lu: level %u word %lu not zero after clearing all", (unsigned long)n, l,
              (unsigned long)w);

  /* A single bit at interesting positions: exact answers at its edges. */
  uint64_t pos[] = {0, 1, 62, 63, 64, 65, 127, 128, 4095, 4096, 4097, 262143, 262144, 262145, n / 2, n - 2, n - 1};
  for (size_t p = 0; p < sizeof pos / sizeof pos[0]; p++) {
    uint64_t b = pos[p];
    if (b >= n) continue;
    mp_bitmap_set(&f.b, b);
    REQUIRE(mp_bitmap_check(&f.b) == 0, "single bit %lu: check", (unsigned long)b);
    uint64_t probes[] = {0, b ? b - 1 : 0, b, b + 1, n - 1, rng_below(&rng, n)};
    for (size_t q = 0; q < sizeof probes / sizeof probes[0]; q++) {
      uint64_t i = probes[q];
      if (i >= n) continue;
      uint64_t want_next = i <= b ? b : UINT64_MAX, want_prev = i >= b ? b : UINT64_MAX;
      REQUIRE(mp_bitmap_next_set(&f.b, i) == want_next, "single bit %lu: next_set(%lu)", (unsigned long)b,
              (unsigned long)i);
      REQUIRE(mp_bitmap_prev_set(&f.b, i) == want_prev, "single bit %lu: prev_set(%lu)", (unsigned long)b,
              (unsigned long)i);
    }
    mp_bitmap_clear(&f.b, b);
    REQUIRE(mp_bitmap_next_set(&f.b, 0) == UINT64_MAX, "single bit %lu: not cleared", (unsigned long)b);
    REQUIRE(mp_bitmap_check(&f.b) == 0, "single bit %lu: check after clear", (unsigned long)b);
  }
  bm_close(&f);
}
END_TEST

/* Interleaved random set/clear at random positions, verified in batches. */
START_TEST(test_bitmap_interleaved) {
  uint64_t n = bm_sizes[_i];
  bm_fixture f;
  rng_t rng;
  rng_seed(&rng, 2000 + (uint64_t)_i);
  bm_open(&f, n);
  uint64_t ops = n < 100000 ? 20000 : n / 4;
  for (int batch = 0; batch < 4; batch++) {
    for (uint64_t j = 0; j < ops; j++) {
      uint64_t i = rng_below(&rng, n);
      /* Toggle, biased towards locality so words fill and empty. */
      if (rng_below(&rng, 4) == 0) i = (i & ~(uint64_t)63) + rng_below(&rng, 64), i = i < n ? i : n - 1;
      if (f.ref[i])
        bm_clear(&f, i);
      else
        bm_set(&f, i);
    }
    bm_verify_all(&f, "interleaved batch");
  }
  bm_close(&f);
}
END_TEST

START_TEST(test_bitmap_layout) {
  /* Level counts: each summary level has a bit per word below; 5M needs 4. */
  struct {
    uint64_t n;
    unsigned levels;
  } cases[] = {
      {1, 1}, {64, 1}, {65, 2}, {4096, 2}, {4097, 3}, {262144, 3}, {262145, 4}, {5000000, 4},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    uint64_t n = cases[c].n;
    size_t bytes = mp_bitmap_bytes(n);
    void *mem = xcalloc(1, bytes);
    mp_bitmap b;
    mp_bitmap_init(&b, n, mem);
    ck_assert_uint_eq(b.nlevels, cases[c].levels);
    /* The levels are laid out back to back and fit in mp_bitmap_bytes(n). */
    uint64_t words = 0;
    for (unsigned l = 0; l < b.nlevels; l++) {
      ck_assert_ptr_eq(b.level[l], (uint64_t *)mem + words);
      words += (b.nbits[l] + 63) / 64;
      if (l) ck_assert_uint_eq(b.nbits[l], (b.nbits[l - 1] + 63) / 64);
    }
    ck_assert_uint_eq(words * 8, bytes);
    free(mem);
  }
}
END_TEST

/* ======================================================================== */
/* Ranges: helpers                                                           */
/* ======================================================================== */

typedef struct {
  uint32_t start, size;
  bool in_use;
} seen_range;
typedef struct {
  seen_range *v;
  size_t n, cap;
} range_list;

static void collect(void *ctx, uint32_t start, uint32_t size, bool in_use) {
  range_list *l = ctx;
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 64;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    if (!l->v) abort();
  }
  l->v[l->n++] = (seen_range){start, size, in_use};
}

/* Walks r, checks tiling and returns the list (caller frees .v). */
static range_list walk_list(const mp_ranges *r) {
  range_list l = {0};
  mp_ranges_walk(r, collect, &l);
  uint64_t at = 0;
  for (size_t k = 0; k < l.n; k++) {
    REQUIRE(l.v[k].start == at, "walk: range %zu starts at %lu, expected %lu", k, (unsigned long)l.v[k].start,
            (unsigned long)at);
    REQUIRE(l.v[k].size > 0, "walk: empty range at %lu", (unsigned long)at);
    REQUIRE(!(k && !l.v[k].in_use && !l.v[k - 1].in_use), "walk: adjacent free ranges at %lu", (unsigned long)at);
    at += l.v[k].size;
  }
  REQUIRE(at == r->granules, "walk: sizes sum to %lu, region has %lu", (unsigned long)at, (unsigned long)r->granules);
  return l;
}

static void require_check(const mp_ranges *r, const char *ctx, unsigned long op) {
  char why[256] = "";
  int rc = mp_ranges_check(r, why, sizeof why);
  REQUIRE(rc == 0, "%s (op %lu): mp_ranges_check = I%d: %s", ctx, op, rc, why);
}

static void require_pristine(const mp_ranges *r, const char *ctx) {
  require_check(r, ctx, 0);
  REQUIRE(r->free_ranges == 1, "%s: %lu free ranges, want 1", ctx, (unsigned long)r->free_ranges);
  REQUIRE(r->inuse_ranges == 0, "%s: %lu in-use ranges, want 0", ctx, (unsigned long)r->inuse_ranges);
  REQUIRE(r->free_granules == r->granules, "%s: free granules %lu of %lu", ctx, (unsigned long)r->free_granules,
          (unsigned long)r->granules);
  REQUIRE(mp_ranges_largest_free(r) == r->granules, "%s: largest free %lu of %lu", ctx,
          (unsigned long)mp_ranges_largest_free(r), (unsigned long)r->granules);
  REQUIRE(mp_ranges_size(r, 0) == r->granules, "%s: size(0) = %lu", ctx, (unsigned long)mp_ranges_size(r, 0));
  REQUIRE(mp_ranges_classify(r, 0) == MP_RANGES_NOT_IN_USE, "%s: classify(0)", ctx);
}

static void ranges_open(mp_ranges *r, uint32_t granules) {
  ck_assert_int_eq(mp_ranges_init(r, granules), 0);
  ck_assert_uint_eq(r->granules, granules);
}

/* ======================================================================== */
/* Ranges: deterministic                                                     */
/* ======================================================================== */

static const uint32_t fresh_sizes[] = {1, 2, 15, 16, 17, 31, 33, 127, 128, 129, 1000, 12345, 65536, 65537, 1u << 22};

START_TEST(test_ranges_fresh_and_whole) {
  uint32_t G = fresh_sizes[_i];
  mp_ranges r;
  ranges_open(&r, G);
  require_pristine(&r, "fresh");
  ck_assert_uint_gt(mp_ranges_meta_bytes(&r), 0);

  /* More than the region never fits. */
  ck_assert_uint_eq(mp_ranges_alloc(&r, G + 1, 1, 0), MP_NONE);
  ck_assert_uint_eq(mp_ranges_alloc(&r, 0, 1, 0), MP_NONE);
  require_pristine(&r, "after failed allocs");

  /* The whole region, exactly. */
  uint32_t g = mp_ranges_alloc(&r, G, 1, 0);
  ck_assert_uint_eq(g, 0);
  ck_assert_uint_eq(mp_ranges_size(&r, 0), G);
  ck_assert_int_eq(mp_ranges_classify(&r, 0), MP_RANGES_OK);
  ck_assert_uint_eq(r.free_granules, 0);
  ck_assert_uint_eq(r.free_ranges, 0);
  ck_assert_uint_eq(r.inuse_ranges, 1);
  ck_assert_uint_eq(mp_ranges_largest_free(&r), 0);
  require_check(&r, "whole region in use", 0);
  ck_assert_uint_eq(mp_ranges_alloc(&r, 1, 1, 0), MP_NONE);
  ck_assert_uint_eq(mp_ranges_alloc(&r, 1, 1, 7), MP_NONE);
  /* Growing the last range fails (nothing follows it). */
  ck_assert(!mp_ranges_resize(&r, 0, G + 1));
  ck_assert(mp_ranges_resize(&r, 0, G));
  ck_assert_int_eq(mp_ranges_free(&r, 0), MP_RANGES_OK);
  require_pristine(&r, "whole region freed");
  ck_assert_int_eq(mp_ranges_free(&r, 0), MP_RANGES_NOT_IN_USE);

  /* Whole region minus one, then the last granule, then free both orders. */
  if (G > 1) {
    ck_assert_uint_eq(mp_ranges_alloc(&r, G - 1, 1, 0), 0);
    ck_assert_uint_eq(mp_ranges_alloc(&r, 1, 1, 0), G - 1);
    ck_assert_uint_eq(mp_ranges_alloc(&r, 1, 1, 0), MP_NONE);
    require_check(&r, "G-1 + 1", 0);
    ck_assert_int_eq(mp_ranges_free(&r, G - 1), MP_RANGES_OK);
    ck_assert_int_eq(mp_ranges_free(&r, 0), MP_RANGES_OK);
    require_pristine(&r, "G-1 + 1 freed");
  }
  mp_ranges_destroy(&r);
}
END_TEST

START_TEST(test_ranges_coalesce) {
  const uint32_t G = 1000;
  mp_ranges r;
  ranges_open(&r, G);

  /* A, B, C then the free tail: free A, C, B -> one range. */
  uint32_t a = mp_ranges_alloc(&r, 10, 1, 0);
  uint32_t b = mp_ranges_alloc(&r, 20, 1, 0);
  uint32_t c = mp_ranges_alloc(&r, 30, 1, 0);
  ck_assert_uint_ne(a, MP_NONE);
  ck_assert_uint_ne(b, MP_NONE);
  ck_assert_uint_ne(c, MP_NONE);
  ck_assert_uint_eq(a, 0); /* a fresh region serves from its start */
  ck_assert_uint_eq(b, 10);
  ck_assert_uint_eq(c, 30);
  ck_assert_uint_eq(r.free_ranges, 1);
  ck_assert_uint_eq(r.inuse_ranges, 3);
  ck_assert_uint_eq(r.free_granules, G - 60);
  ck_assert_int_eq(mp_ranges_free(&r, a), MP_RANGES_OK);
  ck_assert_uint_eq(r.free_ranges, 2);
  require_check(&r, "free A", 0);
  ck_assert_int_eq(mp_ranges_free(&r, c), MP_RANGES_OK); /* merges with the tail */
  ck_assert_uint_eq(r.free_ranges, 2);
  ck_assert_uint_eq(mp_ranges_size(&r, c), G - 30);
  ck_assert_uint_eq(mp_ranges_largest_free(&r), G - 30);
  require_check(&r, "free C", 0);
  ck_assert_int_eq(mp_ranges_free(&r, b), MP_RANGES_OK); /* merges both ways */
  require_pristine(&r, "free B");

  /* Same with an in-use block D after C: the merged range ends at D. */
  a = mp_ranges_alloc(&r, 10, 1, 0);
  b = mp_ranges_alloc(&r, 20, 1, 0);
  c = mp_ranges_alloc(&r, 30, 1, 0);
  uint32_t d = mp_ranges_alloc(&r, G - 60, 1, 0);
  ck_assert_uint_eq(d, 60);
  ck_assert_uint_eq(r.free_ranges, 0);
  ck_assert_int_eq(mp_ranges_free(&r, c), MP_RANGES_OK);
  ck_assert_int_eq(mp_ranges_free(&r, a), MP_RANGES_OK);
  ck_assert_uint_eq(r.free_ranges, 2);
  ck_assert_int_eq(mp_ranges_free(&r, b), MP_RANGES_OK);
  ck_assert_uint_eq(r.free_ranges, 1);
  ck_assert_uint_eq(mp_ranges_size(&r, 0), 60);
  ck_assert_uint_eq(mp_ranges_largest_free(&r), 60);
  ck_assert_int_eq(mp_ranges_classify(&r, 10), MP_RANGES_NOT_A_START);
  ck_assert_int_eq(mp_ranges_classify(&r, 30), MP_RANGES_NOT_A_START);
  require_check(&r, "A,B,C freed before D", 0);
  /* The freed hole is reusable exactly. */
  ck_assert_uint_eq(mp_ranges_alloc(&r, 60, 1, 0), 0);
  ck_assert_uint_eq(r.free_ranges, 0);
  ck_assert_int_eq(mp_ranges_free(&r, 0), MP_RANGES_OK);
  ck_assert_int_eq(mp_ranges_free(&r, d), MP_RANGES_OK);
  require_pristine(&r, "D freed");
  mp_ranges_destroy(&r);
}
END_TEST

/* Densest fragmentation: 64 free ranges per 128-granule bucket. */
START_TEST(test_ranges_full_bucket) {
  const uint32_t G = 1024;
  mp_ranges r;
  rng_t rng;
  rng_seed(&rng, 77);
  ranges_open(&r, G);
  for (uint32_t g = 0; g < G; g++) ck_assert_uint_eq(mp_ranges_alloc(&r, 1, 1, 0), g);
  ck_assert_uint_eq(r.free_ranges, 0);
  for (uint32_t g = 0; g < G; g += 2) ck_assert_int_eq(mp_ranges_free(&r, g), MP_RANGES_OK);
  ck_assert_uint_eq(r.free_ranges, G / 2);
  ck_assert_uint_eq(r.free_granules, G / 2);
  require_check(&r, "alternating", 0);
  /* Each hole is reused exactly by a 1-granule request; 2 granules fit nowhere. */
  ck_assert_uint_eq(mp_ranges_alloc(&r, 2, 1, 0), MP_NONE);
  uint32_t g = mp_ranges_alloc(&r, 1, 1, 0);
  ck_assert_uint_ne(g, MP_NONE);
  ck_assert_uint_eq(g % 2, 0);
  ck_assert_int_eq(mp_ranges_free(&r, g), MP_RANGES_OK);
  /* Free the odd ones in random order. */
  uint32_t odd[G / 2];
  for (uint32_t k = 0; k < G / 2; k++) odd[k] = 2 * k + 1;
  for (uint32_t k = G / 2; k > 1; k--) {
    uint32_t j = (uint32_t)rng_below(&rng, k), t = odd[k - 1];
    odd[k - 1] = odd[j];
    odd[j] = t;
  }
  for (uint32_t k = 0; k < G / 2; k++) {
    ck_assert_int_eq(mp_ranges_free(&r, odd[k]), MP_RANGES_OK);
    if (k % 16 == 0) require_check(&r, "odd frees", k);
  }
  require_pristine(&r, "all freed");
  mp_ranges_destroy(&r);
}
END_TEST

/* A request equal to a free range's size, in a class that also holds smaller
 * ranges: the good-fit class search cannot serve it, the scan of its own
 * class must look past a too-small node at the head of the list. */
START_TEST(test_ranges_exact_fit_scan) {
  const uint32_t G = 200;
  mp_ranges r;
  ranges_open(&r, G);
  /* 32 and 33 share a class (32..33). Layout: A(32) x(1) C(33) D(rest). */
  uint32_t a = mp_ranges_alloc(&r, 32, 1, 0), x = mp_ranges_alloc(&r, 1, 1, 0);
  uint32_t c = mp_ranges_alloc(&r, 33, 1, 0), d = mp_ranges_alloc(&r, G - 66, 1, 0);
  ck_assert_uint_eq(a, 0);
  ck_assert_uint_eq(x, 32);
  ck_assert_uint_eq(c, 33);
  ck_assert_uint_eq(d, 66);
  ck_assert_int_eq(mp_ranges_free(&r, c), MP_RANGES_OK);
  ck_assert_int_eq(mp_ranges_free(&r, a), MP_RANGES_OK); /* list head: the 32 */
  ck_assert_uint_eq(mp_ranges_largest_free(&r), 33);
  ck_assert_uint_eq(mp_ranges_alloc(&r, 34, 1, 0), MP_NONE);
  ck_assert_uint_eq(mp_ranges_alloc(&r, 33, 1, 0), c);
  ck_assert_uint_eq(mp_ranges_alloc(&r, 32, 1, 0), a);
  ck_assert_uint_eq(r.free_ranges, 0);
  require_check(&r, "exact fits", 0);
  ck_assert_int_eq(mp_ranges_free(&r, a), MP_RANGES_OK);
  ck_assert_int_eq(mp_ranges_free(&r, c), MP_RANGES_OK);
  ck_assert_int_eq(mp_ranges_free(&r, x), MP_RANGES_OK);
  ck_assert_int_eq(mp_ranges_free(&r, d), MP_RANGES_OK);
  require_pristine(&r, "exact fits freed");
  mp_ranges_destroy(&r);
}
END_TEST

START_TEST(test_ranges_alignment) {
  const uint32_t G = 1u << 16;
  mp_ranges r;
  ranges_open(&r, G);
  for (uint32_t align = 1; align <= 4096; align <<= 1) {
    uint32_t phases[] = {0, 1, 3, align - 1, align / 2, 12345, 0xFFFFFFFFu, 0x80000001u};
    for (size_t p = 0; p < sizeof phases / sizeof phases[0]; p++) {
      uint32_t phase = phases[p];
      for (uint32_t pad = 1; pad <= 3; pad++) {
        /* A pad so the free range starts at `pad`, then an aligned block. */
        ck_assert_uint_eq(mp_ranges_alloc(&r, pad, 1, 0), 0);
        uint32_t n = 1 + (align * 3 + pad) % 37;
        uint32_t g = mp_ranges_alloc(&r, n, align, phase);
        REQUIRE(g != MP_NONE, "align %lu phase %lu pad %lu: alloc failed", (unsigned long)align, (unsigned long)phase,
                (unsigned long)pad);
        REQUIRE((uint32_t)(phase + g) % align == 0, "align %lu phase %lu: got %lu", (unsigned long)align,
                (unsigned long)phase, (unsigned long)g);
        REQUIRE(g >= pad && g - pad < align, "align %lu phase %lu pad %lu: start %lu is not the first fit",
                (unsigned long)align, (unsigned long)phase, (unsigned long)pad, (unsigned long)g);
        ck_assert_uint_eq(mp_ranges_size(&r, g), n);
        ck_assert_int_eq(mp_ranges_classify(&r, g), MP_RANGES_OK);
        uint32_t lead = g - pad;
        if (lead) {
          /* The lead stays a free range of its own. */
          ck_assert_int_eq(mp_ranges_classify(&r, pad), MP_RANGES_NOT_IN_USE);
          ck_assert_uint_eq(mp_ranges_size(&r, pad), lead);
          ck_assert_uint_eq(r.free_ranges, 2);
        } else {
          ck_assert_uint_eq(r.free_ranges, 1);
        }
        ck_assert_uint_eq(r.free_granules, G - pad - n);
        ck_assert_int_eq(mp_ranges_classify(&r, g + n), MP_RANGES_NOT_IN_USE);
        ck_assert_uint_eq(mp_ranges_size(&r, g + n), G - g - n);
        require_check(&r, "aligned alloc", align);
        /* A small block fits the lead when it is big enough. */
        if (lead >= 1) {
          uint32_t h = mp_ranges_alloc(&r, 1, 1, 0);
          ck_assert_uint_ne(h, MP_NONE);
          ck_assert_int_eq(mp_ranges_free(&r, h), MP_RANGES_OK);
        }
        ck_assert_int_eq(mp_ranges_free(&r, g), MP_RANGES_OK);
        ck_assert_int_eq(mp_ranges_free(&r, 0), MP_RANGES_OK);
        require_pristine(&r, "aligned alloc freed");
      }
    }
  }

  /* Many aligned blocks in a row without freeing, all phases respected. */
  uint32_t starts[512], nb = 0;
  for (uint32_t k = 0; k < 512; k++) {
    uint32_t align = 1u << (k % 13), phase = k * 2654435761u;
    uint32_t g = mp_ranges_alloc(&r, 1 + k % 5, align, phase);
    if (g == MP_NONE) break;
    REQUIRE((uint32_t)(phase + g) % align == 0, "row %lu: misaligned", (unsigned long)k);
    starts[nb++] = g;
  }
  ck_assert_uint_gt(nb, 100);
  require_check(&r, "row of aligned blocks", nb);
  range_list l = walk_list(&r);
  free(l.v);
  for (uint32_t k = 0; k < nb; k++) ck_assert_int_eq(mp_ranges_free(&r, starts[k]), MP_RANGES_OK);
  require_pristine(&r, "row freed");
  mp_ranges_destroy(&r);
}
END_TEST

START_TEST(test_ranges_resize) {
  const uint32_t G = 1000;
  mp_ranges r;
  ranges_open(&r, G);
  uint32_t a = mp_ranges_alloc(&r, 10, 1, 0), b = mp_ranges_alloc(&r, 10, 1, 0);
  ck_assert_uint_eq(a, 0);
  ck_assert_uint_eq(b, 10);

  /* Shrink B: the tail coalesces with the free successor. */
  ck_assert(mp_ranges_resize(&r, b, 4));
  ck_assert_uint_eq(mp_ranges_size(&r, b), 4);
  ck_assert_uint_eq(r.free_ranges, 1);
  ck_assert_uint_eq(r.inuse_ranges, 2);
  ck_assert_uint_eq(r.free_granules, G - 14);
  ck_assert_uint_eq(mp_ranges_size(&r, 14), G - 14);
  ck_assert_int_eq(mp_ranges_classify(&r, 20), MP_RANGES_NOT_A_START);
  require_check(&r, "shrink B", 0);

  /* Same size and zero. */
  ck_assert(mp_ranges_resize(&r, b, 4));
  ck_assert(!mp_ranges_resize(&r, b, 0));
  ck_assert_uint_eq(mp_ranges_size(&r, b), 4);

  /* Grow B into the free tail, exactly to the end, then beyond. */
  ck_assert(mp_ranges_resize(&r, b, 10));
  ck_assert_uint_eq(mp_ranges_size(&r, b), 10);
  ck_assert_uint_eq(r.free_granules, G - 20);
  require_check(&r, "grow B", 0);
  ck_assert(mp_ranges_resize(&r, b, G - 10));
  ck_assert_uint_eq(r.free_ranges, 0);
  ck_assert_uint_eq(r.free_granules, 0);
  require_check(&r, "grow B to the end", 0);
  ck_assert(!mp_ranges_resize(&r, b, G - 9));
  ck_assert(mp_ranges_resize(&r, b, 10));
  ck_assert_uint_eq(r.free_granules, G - 20);

  /* Shrink A: its tail is free but does not merge with in-use B. */
  ck_assert(mp_ranges_resize(&r, a, 3));
  ck_assert_uint_eq(r.free_ranges, 2);
  ck_assert_uint_eq(mp_ranges_size(&r, 3), 7);
  ck_assert_int_eq(mp_ranges_classify(&r, 3), MP_RANGES_NOT_IN_USE);
  require_check(&r, "shrink A", 0);
  /* Grow A by more than the hole: the successor is too small. */
  ck_assert(!mp_ranges_resize(&r, a, 11));
  ck_assert_uint_eq(mp_ranges_size(&r, a), 3);
  /* Partly into the hole, then exactly fill it. */
  ck_assert(mp_ranges_resize(&r, a, 5));
  ck_assert_uint_eq(mp_ranges_size(&r, 5), 5);
  ck_assert(mp_ranges_resize(&r, a, 10));
  ck_assert_uint_eq(r.free_ranges, 1);
  require_check(&r, "grow A into the hole", 0);
  /* Now A's successor is B, in use. */
  ck_assert(!mp_ranges_resize(&r, a, 11));
  ck_assert_uint_eq(mp_ranges_size(&r, a), 10);
  ck_assert_uint_eq(r.free_granules, G - 20);

  /* Shrink to 1 and grow back; size 1 cannot shrink. */
  ck_assert(mp_ranges_resize(&r, b, 1));
  ck_assert_uint_eq(mp_ranges_size(&r, 11), G - 11);
  ck_assert(mp_ranges_resize(&r, b, 1));
  ck_assert(mp_ranges_resize(&r, b, 600));
  ck_assert_uint_eq(mp_ranges_size(&r, b), 600);
  require_check(&r, "B 1 -> 600", 0);

  ck_assert_int_eq(mp_ranges_free(&r, a), MP_RANGES_OK);
  ck_assert_int_eq(mp_ranges_free(&r, b), MP_RANGES_OK);
  require_pristine(&r, "resize freed");
  mp_ranges_destroy(&r);
}
END_TEST

START_TEST(test_ranges_classify_errors) {
  const uint32_t G = 1000;
  mp_ranges r;
  ranges_open(&r, G);
  uint32_t a = mp_ranges_alloc(&r, 10, 1, 0), b = mp_ranges_alloc(&r, 20, 1, 0), c = mp_ranges_alloc(&r, 5, 1, 0);
  ck_assert_uint_eq(a, 0);
  ck_assert_uint_eq(b, 10);
  ck_assert_uint_eq(c, 30);
  ck_assert_int_eq(mp_ranges_classify(&r, a), MP_RANGES_OK);
  ck_assert_int_eq(mp_ranges_classify(&r, b), MP_RANGES_OK);
  ck_assert_uint_eq(mp_ranges_size(&r, a), 10);
  ck_assert_uint_eq(mp_ranges_size(&r, b), 20);
  ck_assert_uint_eq(mp_ranges_size(&r, c), 5);

  /* Interior granules of in-use ranges. */
  ck_assert_int_eq(mp_ranges_classify(&r, 5), MP_RANGES_NOT_A_START);
  ck_assert_int_eq(mp_ranges_classify(&r, 29), MP_RANGES_NOT_A_START);
  ck_assert_int_eq(mp_ranges_free(&r, 5), MP_RANGES_NOT_A_START);
  ck_assert_int_eq(mp_ranges_free(&r, 29), MP_RANGES_NOT_A_START);
  /* Never allocated: inside the free tail, and out of the region. */
  ck_assert_int_eq(mp_ranges_classify(&r, 500), MP_RANGES_NOT_A_START);
  ck_assert_int_eq(mp_ranges_free(&r, 500), MP_RANGES_NOT_A_START);
  ck_assert_int_eq(mp_ranges_free(&r, G - 1), MP_RANGES_NOT_A_START);
  ck_assert_int_eq(mp_ranges_classify(&r, G), MP_RANGES_NOT_A_START);
  ck_assert_int_eq(mp_ranges_free(&r, G), MP_RANGES_NOT_A_START);
  ck_assert_int_eq(mp_ranges_free(&r, UINT32_MAX), MP_RANGES_NOT_A_START);
  /* The free tail's start is a range, but not in use. */
  ck_assert_int_eq(mp_ranges_free(&r, 35), MP_RANGES_NOT_IN_USE);
  require_check(&r, "after rejected frees", 0);
  ck_assert_uint_eq(r.inuse_ranges, 3);
  ck_assert_uint_eq(r.free_granules, G - 35);

  /* Double free of a range whose predecessor is in use (start kept). */
  ck_assert_int_eq(mp_ranges_free(&r, b), MP_RANGES_OK);
  ck_assert_int_eq(mp_ranges_classify(&r, b), MP_RANGES_NOT_IN_USE);
  ck_assert_int_eq(mp_ranges_free(&r, b), MP_RANGES_NOT_IN_USE);
  /* Double free of the first range. */
  ck_assert_int_eq(mp_ranges_free(&r, a), MP_RANGES_OK);
  ck_assert_int_eq(mp_ranges_free(&r, a), MP_RANGES_NOT_IN_USE);
  /* b merged into a's free range: b is no longer a start, so this double
   * free can only be reported as NOT_A_START (no record of freed blocks). */
  ck_assert_int_ne(mp_ranges_free(&r, b), MP_RANGES_OK);
  ck_assert_uint_eq(mp_ranges_size(&r, a), 30);
  /* Double free of a range that merged with the free tail. */
  ck_assert_int_eq(mp_ranges_free(&r, c), MP_RANGES_OK);
  ck_assert_int_ne(mp_ranges_free(&r, c), MP_RANGES_OK);
  require_pristine(&r, "after double frees");
  mp_ranges_destroy(&r);
}
END_TEST

typedef struct {
  uint32_t start, size;
} blk;

START_TEST(test_ranges_walk_order) {
  const uint32_t G = 5000;
  mp_ranges r;
  rng_t rng;
  rng_seed(&rng, 99);
  ranges_open(&r, G);
  blk live[400];
  uint32_t nlive = 0;
  for (int k = 0; k < 400; k++) {
    uint32_t n = 1 + (uint32_t)rng_below(&rng, 20);
    uint32_t g = mp_ranges_alloc(&r, n, 1u << rng_below(&rng, 4), 0);
    if (g != MP_NONE) live[nlive++] = (blk){g, n};
  }
  ck_assert_uint_gt(nlive, 200);
  /* Free every third. */
  uint32_t kept = 0;
  for (uint32_t k = 0; k < nlive; k++) {
    if (k % 3 == 0)
      ck_assert_int_eq(mp_ranges_free(&r, live[k].start), MP_RANGES_OK);
    else
      live[kept++] = live[k];
  }
  nlive = kept;
  require_check(&r, "walk setup", 0);
  range_list l = walk_list(&r); /* order, tiling, no adjacent free */
  uint32_t nused = 0, nfree = 0;
  uint64_t free_sum = 0;
  for (size_t k = 0; k < l.n; k++) {
    if (l.v[k].in_use) {
      nused++;
      ck_assert_uint_eq(mp_ranges_size(&r, l.v[k].start), l.v[k].size);
      bool found = false;
      for (uint32_t j = 0; j < nlive; j++)
        if (live[j].start == l.v[k].start) {
          ck_assert_uint_eq(live[j].size, l.v[k].size);
          found = true;
        }
      ck_assert_msg(found, "walk reports in-use range at %u that was not allocated", l.v[k].start);
    } else {
      nfree++;
      free_sum += l.v[k].size;
    }
  }
  ck_assert_uint_eq(nused, nlive);
  ck_assert_uint_eq(nused, r.inuse_ranges);
  ck_assert_uint_eq(nfree, r.free_ranges);
  ck_assert_uint_eq(free_sum, r.free_granules);
  free(l.v);
  for (uint32_t k = 0; k < nlive; k++) ck_assert_int_eq(mp_ranges_free(&r, live[k].start), MP_RANGES_OK);
  require_pristine(&r, "walk freed");
  mp_ranges_destroy(&r);
}
END_TEST

/* ======================================================================== */
/* Ranges: randomized against a reference model                              */
/* ======================================================================== */

typedef struct {
  uint32_t G;
  blk *live;
  uint32_t nlive;
  uint8_t *owned;    /* granule -> in a live block */
  uint32_t *size_at; /* granule -> size of the live block starting there, 0 */
  uint64_t live_sum;
} model;

static void model_mark(model *m, uint32_t from, uint32_t to, uint8_t v, const char *ctx, unsigned long op) {
  for (uint32_t x = from; x < to; x++) {
    REQUIRE(m->owned[x] != v, "%s (op %lu): granule %lu is %s", ctx, op, (unsigned long)x,
            v ? "already owned: overlapping blocks" : "not owned");
    m->owned[x] = v;
  }
}

/* Full comparison of the walk with the model. */
static void model_verify(const mp_ranges *r, const model *m, unsigned long op) {
  range_list l = walk_list(r);
  uint32_t nused = 0;
  for (size_t k = 0; k < l.n; k++) {
    seen_range s = l.v[k];
    if (s.in_use) {
      nused++;
      REQUIRE(m->size_at[s.start] == s.size, "op %lu: walk has in-use %lu+%lu, model size %lu", op,
              (unsigned long)s.start, (unsigned long)s.size, (unsigned long)m->size_at[s.start]);
    } else {
      for (uint32_t x = s.start; x < s.start + s.size; x++)
        REQUIRE(!m->owned[x], "op %lu: granule %lu owned by the model, free in the allocator", op, (unsigned long)x);
    }
  }
  REQUIRE(nused == m->nlive, "op %lu: walk has %lu in-use ranges, model %lu", op, (unsigned long)nused,
          (unsigned long)m->nlive);
  free(l.v);
}

static uint32_t rand_size(rng_t *rng, uint32_t G) {
  uint64_t p = rng_below(rng, 1000), n;
  if (p < 700)
    n = 1 + rng_below(rng, 8);
  else if (p < 900)
    n = 1 + rng_below(rng, 64);
  else if (p < 985)
    n = 1 + rng_below(rng, 1024);
  else
    n = 1 + rng_below(rng, G / 8 + 1);
  return n > G ? G : (uint32_t)n;
}

static uint32_t rand_align(rng_t *rng) { return rng_below(rng, 100) < 60 ? 1u : 1u << rng_below(rng, 13); }

typedef struct {
  uint32_t G;
  uint64_t ops;
  unsigned check_every, verify_every;
} random_cfg;

static const random_cfg rcfg[] = {
    {1000, 100000, 1, 500},
    {65536, 100000, 32, 5000},
    {1u << 22, 100000, 2000, 25000},
};
#define SEEDS_PER_SIZE 2

static void random_run(const random_cfg *cfg, uint64_t seed) {
  const uint32_t G = cfg->G;
  mp_ranges r;
  rng_t rng;
  rng_seed(&rng, seed);
  ranges_open(&r, G);
  model m = {.G = G};
  m.live = xcalloc(G, sizeof(blk));
  m.owned = xcalloc(G, 1);
  m.size_at = xcalloc(G, sizeof(uint32_t));
  const uint32_t phase = (uint32_t)rng_next(&rng);
  unsigned long n_alloc = 0, n_fail = 0, n_free = 0, n_grow = 0, n_grow_fail = 0, n_shrink = 0;

  for (unsigned long op = 1; op <= cfg->ops; op++) {
    uint64_t p = rng_below(&rng, 100);
    bool full = m.live_sum > (uint64_t)G * 3 / 4;
    if (m.nlive == 0 || p < (full ? 35u : 55u)) {
      /* ---- alloc */
      uint32_t n = rand_size(&rng, G), align = rand_align(&rng);
      uint32_t before_free = r.free_granules;
      uint32_t g = mp_ranges_alloc(&r, n, align, phase);
      if (g == MP_NONE) {
        n_fail++;
        /* Good fit: a free range of size >= need + need/16 is always found. */
        uint64_t need = (uint64_t)n + align - 1;
        uint32_t largest = mp_ranges_largest_free(&r);
        REQUIRE(largest < need + need / 16, "op %lu: alloc(%lu, align %lu) failed with a free range of %lu", op,
                (unsigned long)n, (unsigned long)align, (unsigned long)largest);
        REQUIRE(r.free_granules == before_free, "op %lu: failed alloc changed free granules", op);
      } else {
        n_alloc++;
        REQUIRE(g < G && (uint64_t)g + n <= G, "op %lu: alloc(%lu) = %lu out of region", op, (unsigned long)n,
                (unsigned long)g);
        REQUIRE((uint32_t)(phase + g) % align == 0, "op %lu: alloc at %lu violates align %lu phase %lu", op,
                (unsigned long)g, (unsigned long)align, (unsigned long)phase);
        model_mark(&m, g, g + n, 1, "alloc", op);
        m.size_at[g] = n;
        m.live[m.nlive++] = (blk){g, n};
        m.live_sum += n;
        REQUIRE(mp_ranges_size(&r, g) == n, "op %lu: size(%lu) = %lu, allocated %lu", op, (unsigned long)g,
                (unsigned long)mp_ranges_size(&r, g), (unsigned long)n);
        REQUIRE(mp_ranges_classify(&r, g) == MP_RANGES_OK, "op %lu: fresh block not in use", op);
      }
    } else if (p < 80) {
      /* ---- free */
      uint32_t k = (uint32_t)rng_below(&rng, m.nlive);
      blk b = m.live[k];
      REQUIRE(mp_ranges_classify(&r, b.start) == MP_RANGES_OK, "op %lu: live block %lu not in use", op,
              (unsigned long)b.start);
      REQUIRE(mp_ranges_size(&r, b.start) == b.size, "op %lu: size(%lu) = %lu, model %lu", op, (unsigned long)b.start,
              (unsigned long)mp_ranges_size(&r, b.start), (unsigned long)b.size);
      if (b.size > 1) {
        uint32_t inner = b.start + 1 + (uint32_t)rng_below(&rng, b.size - 1);
        REQUIRE(mp_ranges_free(&r, inner) == MP_RANGES_NOT_A_START, "op %lu: free of interior %lu accepted", op,
                (unsigned long)inner);
      }
      int rc = mp_ranges_free(&r, b.start);
      REQUIRE(rc == MP_RANGES_OK, "op %lu: free(%lu) = %d", op, (unsigned long)b.start, rc);
      model_mark(&m, b.start, b.start + b.size, 0, "free", op);
      m.size_at[b.start] = 0;
      m.live[k] = m.live[--m.nlive];
      m.live_sum -= b.size;
      n_free++;
      if (rng_below(&rng, 50) == 0) {
        int rc2 = mp_ranges_free(&r, b.start);
        REQUIRE(rc2 == MP_RANGES_NOT_IN_USE || rc2 == MP_RANGES_NOT_A_START, "op %lu: double free(%lu) = %d", op,
                (unsigned long)b.start, rc2);
      }
    } else {
      /* ---- resize */
      uint32_t k = (uint32_t)rng_below(&rng, m.nlive);
      blk *b = &m.live[k];
      uint32_t end = b->start + b->size;
      if (b->size > 1 && rng_below(&rng, 2) == 0) {
        uint32_t n = 1 + (uint32_t)rng_below(&rng, b->size - 1);
        REQUIRE(mp_ranges_resize(&r, b->start, n), "op %lu: shrink %lu -> %lu failed", op, (unsigned long)b->size,
                (unsigned long)n);
        model_mark(&m, b->start + n, end, 0, "shrink", op);
        m.live_sum -= b->size - n;
        b->size = n;
        n_shrink++;
      } else {
        uint64_t delta = rng_below(&rng, 20) == 0 ? rng_below(&rng, 257) : rng_below(&rng, 9);
        uint64_t n64 = (uint64_t)b->size + delta;
        uint32_t n = n64 > G + 1 ? G + 1 : (uint32_t)n64;
        bool expect = (uint64_t)b->start + n <= G;
        for (uint32_t x = end; expect && x < n + b->start; x++)
          if (m.owned[x]) expect = false;
        bool got = mp_ranges_resize(&r, b->start, n);
        REQUIRE(got == expect, "op %lu: grow %lu+%lu -> %lu returned %d, expected %d", op, (unsigned long)b->start,
                (unsigned long)b->size, (unsigned long)n, got, expect);
        if (got) {
          model_mark(&m, end, b->start + n, 1, "grow", op);
          m.live_sum += n - b->size;
          b->size = n;
          n_grow++;
        } else {
          n_grow_fail++;
        }
      }
      m.size_at[b->start] = b->size;
      REQUIRE(mp_ranges_size(&r, b->start) == b->size, "op %lu: size after resize %lu, model %lu", op,
              (unsigned long)mp_ranges_size(&r, b->start), (unsigned long)b->size);
    }
    REQUIRE(r.free_granules == G - m.live_sum, "op %lu: free granules %lu, model %lu", op,
            (unsigned long)r.free_granules, (unsigned long)(G - m.live_sum));
    REQUIRE(r.inuse_ranges == m.nlive, "op %lu: in-use ranges %lu, model %lu", op, (unsigned long)r.inuse_ranges,
            (unsigned long)m.nlive);
    if (op % cfg->check_every == 0) require_check(&r, "random", op);
    if (op % cfg->verify_every == 0) model_verify(&r, &m, op);
  }
  require_check(&r, "random, end of run", cfg->ops);
  model_verify(&r, &m, cfg->ops);
  ck_assert_uint_gt(n_alloc, cfg->ops / 4);
  ck_assert_uint_gt(n_free, cfg->ops / 8);
  ck_assert_uint_gt(n_grow, 100);
  ck_assert_uint_gt(n_grow_fail, 100);
  ck_assert_uint_gt(n_shrink, 100);

  /* Free everything in random order: nothing may be stranded. */
  for (uint32_t k = m.nlive; k > 1; k--) {
    uint32_t j = (uint32_t)rng_below(&rng, k);
    blk t = m.live[k - 1];
    m.live[k - 1] = m.live[j];
    m.live[j] = t;
  }
  uint32_t total = m.nlive;
  for (uint32_t k = 0; k < total; k++) {
    int rc = mp_ranges_free(&r, m.live[k].start);
    REQUIRE(rc == MP_RANGES_OK, "drain: free(%lu) = %d", (unsigned long)m.live[k].start, rc);
    if (k % (cfg->check_every * 4) == 0) require_check(&r, "drain", k);
  }
  require_pristine(&r, "drained");
  fprintf(
      stderr,
      "random G=%lu seed=%lu: %lu allocs (%lu failed), %lu frees, %lu grows (%lu refused), %lu shrinks, %lu left at end\n",
      (unsigned long)G, (unsigned long)seed, n_alloc, n_fail, n_free, n_grow, n_grow_fail, n_shrink,
      (unsigned long)total);
  free(m.live);
  free(m.owned);
  free(m.size_at);
  mp_ranges_destroy(&r);
}

/* I7: frees never grow the node arena. 64k one-granule blocks fill the
 * region; frees in the order that makes the most free ranges (every other
 * block, then the rest), and in a random order, leave node_cap as the
 * allocations left it. The arena starts small and grew on the way. */
START_TEST(test_ranges_frees_need_no_memory) {
  enum { G = 1 << 16 };
  static uint32_t at[G];
  for (int order = 0; order < 2; order++) {
    mp_ranges r;
    ck_assert_int_eq(mp_ranges_init(&r, G), 0);
    uint32_t start_cap = r.node_cap;
    for (uint32_t i = 0; i < G; i++) REQUIRE((at[i] = mp_ranges_alloc(&r, 1, 1, 0)) != MP_NONE, "alloc %u", i);
    uint32_t cap = r.node_cap;
    rng_t rng;
    rng_seed(&rng, 7);
    if (order == 1)
      for (uint32_t i = G - 1; i > 0; i--) { /* Fisher-Yates */
        uint32_t j = (uint32_t)(rng_next(&rng) % (i + 1)), t = at[i];
        at[i] = at[j];
        at[j] = t;
      }
    uint32_t most = 0;
    for (int pass = 0; pass < 2; pass++)
      for (uint32_t i = (uint32_t)pass; i < G; i += 2) {
        REQUIRE(mp_ranges_free(&r, at[i]) == MP_RANGES_OK, "free %u", i);
        REQUIRE(r.node_cap == cap, "free %u grew the arena (%u -> %u)", i, cap, r.node_cap);
        if (r.free_ranges > most) most = r.free_ranges;
      }
    ck_assert_int_eq(mp_ranges_check(&r, NULL, 0), 0);
    ck_assert_uint_eq(r.free_ranges, 1);
    if (order == 0) ck_assert_uint_ge(most, G / 2); /* the worst case was reached */
    ck_assert_uint_gt(cap, start_cap);
    mp_ranges_destroy(&r);
  }
}
END_TEST

START_TEST(test_ranges_random) {
  const random_cfg *cfg = &rcfg[_i / SEEDS_PER_SIZE];
  random_run(cfg, 0xC0FFEEull + (uint64_t)_i * 7919);
}
END_TEST

/* ======================================================================== */
/* Many ranges: still functional                                             */
/* ======================================================================== */

/* 100k live blocks interleaved with 100k free holes of varied sizes (varied so
 * that the free lists spread over many classes: mp_ranges_check walks a
 * class list per free range, see the report), then an alloc, a free, a grow
 * and mp_ranges_check. Functional only: the timing is informational. */
START_TEST(test_ranges_many) {
  const uint32_t G = 1u << 24, K = 100000;
  mp_ranges r;
  ranges_open(&r, G);
  uint32_t *hole = xcalloc(K, sizeof(uint32_t)), *hole_size = xcalloc(K, sizeof(uint32_t));
  uint32_t *keep = xcalloc(K, sizeof(uint32_t)), *keep_size = xcalloc(K, sizeof(uint32_t));
  uint32_t at = 0;
  for (uint32_t k = 0; k < K; k++) {
    hole_size[k] = 1 + (uint32_t)(((uint64_t)k * 7919) % 251);
    keep_size[k] = 1 + k % 4;
    hole[k] = mp_ranges_alloc(&r, hole_size[k], 1, 0);
    REQUIRE(hole[k] == at, "sequential alloc %lu at %lu, want %lu", (unsigned long)k, (unsigned long)hole[k],
            (unsigned long)at);
    at += hole_size[k];
    keep[k] = mp_ranges_alloc(&r, keep_size[k], 1, 0);
    REQUIRE(keep[k] == at, "sequential alloc %lu at %lu, want %lu", (unsigned long)k, (unsigned long)keep[k],
            (unsigned long)at);
    at += keep_size[k];
  }
  const uint32_t tail = at;
  for (uint32_t k = 0; k < K; k++)
    REQUIRE(mp_ranges_free(&r, hole[k]) == MP_RANGES_OK, "free hole %lu", (unsigned long)k);
  ck_assert_uint_eq(r.inuse_ranges, K);
  ck_assert_uint_eq(r.free_ranges, K + 1);
  ck_assert_uint_eq(mp_ranges_largest_free(&r), G - tail);
  require_check(&r, "100k live", 0);

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  /* A small request is served (from a hole of its class). */
  uint32_t g = mp_ranges_alloc(&r, 3, 1, 0);
  ck_assert_uint_ne(g, MP_NONE);
  ck_assert_uint_eq(mp_ranges_size(&r, g), 3);
  ck_assert_int_eq(mp_ranges_classify(&r, g), MP_RANGES_OK);
  /* Larger than any hole: must come from the tail. */
  uint32_t big = mp_ranges_alloc(&r, 1000, 1, 0);
  ck_assert_uint_ge(big, tail);
  /* Aligned, 64 KiB: from the tail too. */
  uint32_t al = mp_ranges_alloc(&r, 10, 4096, 0);
  ck_assert_uint_ge(al, tail);
  ck_assert_uint_eq(al % 4096, 0);
  /* Free a middle block: it merges with the holes on both sides. */
  const uint32_t m = K / 2 + 1;
  uint32_t before = r.free_ranges;
  ck_assert_int_eq(mp_ranges_free(&r, keep[m]), MP_RANGES_OK);
  ck_assert_uint_eq(r.free_ranges, before - 1);
  ck_assert_int_eq(mp_ranges_classify(&r, hole[m]), MP_RANGES_NOT_IN_USE);
  ck_assert_uint_eq(mp_ranges_size(&r, hole[m]), hole_size[m] + keep_size[m] + hole_size[m + 1]);
  /* Grow a block exactly into the hole after it, and fail one past it. */
  const uint32_t w = 101;
  ck_assert(!mp_ranges_resize(&r, keep[w], keep_size[w] + hole_size[w + 1] + 1));
  ck_assert(mp_ranges_resize(&r, keep[w], keep_size[w] + hole_size[w + 1]));
  ck_assert_uint_eq(mp_ranges_size(&r, keep[w]), keep_size[w] + hole_size[w + 1]);
  /* 1000 alloc/free pairs. */
  for (int k = 0; k < 1000; k++) {
    uint32_t h = mp_ranges_alloc(&r, 1 + (uint32_t)k % 300, 1u << (k % 5), 0);
    REQUIRE(h != MP_NONE, "pair %d: alloc", k);
    REQUIRE(mp_ranges_free(&r, h) == MP_RANGES_OK, "pair %d: free", k);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  fprintf(stderr, "many ranges: ops with 100k live blocks took %.3f ms total (informational)\n",
          (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
  require_check(&r, "100k live, after ops", 0);

  /* Drain. */
  ck_assert_int_eq(mp_ranges_free(&r, g), MP_RANGES_OK);
  ck_assert_int_eq(mp_ranges_free(&r, big), MP_RANGES_OK);
  ck_assert_int_eq(mp_ranges_free(&r, al), MP_RANGES_OK);
  for (uint32_t k = 0; k < K; k++)
    if (k != m) REQUIRE(mp_ranges_free(&r, keep[k]) == MP_RANGES_OK, "drain %lu", (unsigned long)k);
  require_pristine(&r, "many drained");
  free(hole);
  free(hole_size);
  free(keep);
  free(keep_size);
  mp_ranges_destroy(&r);
}
END_TEST

/* ======================================================================== */

static Suite *ranges_suite(void) {
  Suite *s = suite_create("ranges");

  TCase *tc = tcase_create("bitmap");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_bitmap_layout);
  tcase_add_loop_test(tc, test_bitmap_random_patterns, 0, (int)N_BM_SIZES);
  tcase_add_loop_test(tc, test_bitmap_interleaved, 0, (int)N_BM_SIZES);
  suite_add_tcase(s, tc);

  tc = tcase_create("ranges_deterministic");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_ranges_fresh_and_whole, 0, (int)(sizeof fresh_sizes / sizeof fresh_sizes[0]));
  tcase_add_test(tc, test_ranges_coalesce);
  tcase_add_test(tc, test_ranges_full_bucket);
  tcase_add_test(tc, test_ranges_exact_fit_scan);
  tcase_add_test(tc, test_ranges_alignment);
  tcase_add_test(tc, test_ranges_resize);
  tcase_add_test(tc, test_ranges_classify_errors);
  tcase_add_test(tc, test_ranges_walk_order);
  tcase_add_test(tc, test_ranges_frees_need_no_memory);
  suite_add_tcase(s, tc);

  tc = tcase_create("ranges_random");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_ranges_random, 0, (int)(sizeof rcfg / sizeof rcfg[0]) * SEEDS_PER_SIZE);
  suite_add_tcase(s, tc);

  tc = tcase_create("ranges_many");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_ranges_many);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(ranges_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failures = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failures ? 1 : 0;
}
