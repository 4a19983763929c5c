/* The malloc-family semantics of src/alloc.c over a pool on a regular file,
 * and the traps for bad pointers (death tests that check SIGABRT and the
 * message naming the pointer and the call). */
#define _GNU_SOURCE
#include <check.h>

#include "death.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <time.h>

#include "alloc.h"
#include "pool.h"
#include "sizeclass.h"
#include "span.h"

static mp_pool pool;
static char devpath[512];

static void setup(void) {
  const char *t = getenv("MEMPOOL_TEST_TMP");
  snprintf(devpath, sizeof devpath, "%s/api_%d.dev", t ? t : "/tmp", getpid());
  unlink(devpath);
  mp_config c = {.device = devpath, .base = 0x100000, .high = 0x100000 + (1 << 20) - 1};
  char err[320];
  if (mp_pool_open(&pool, &c, err, sizeof err) != 0) {
    fprintf(stderr, "setup: %s\n", err);
    abort();
  }
}

/* A pool of bytes with small objects (spans and thread caches) enabled. */
static void setup_spans(size_t bytes, uint64_t chunk) {
  const char *t = getenv("MEMPOOL_TEST_TMP");
  snprintf(devpath, sizeof devpath, "%s/api_small_%d.dev", t ? t : "/tmp", getpid());
  unlink(devpath);
  mp_config c = {.device = devpath, .base = 0, .high = bytes - 1, .chunk = chunk};
  char err[320];
  if (mp_pool_open(&pool, &c, err, sizeof err) != 0 || mp_pool_enable_small(&pool) != 0) {
    fprintf(stderr, "setup_spans: %s\n", err);
    abort();
  }
}
/* 64 MiB: the classes up to 8 KiB. */
static void setup_small(void) { setup_spans(64u << 20, 0); }
/* 256 MiB in 256 KiB chunks: the medium classes too, their spans (up to
 * 1 MiB) across chunk boundaries. */
static void setup_medium(void) { setup_spans(MP_MEDIUM_MIN_REGION * 2, 256u << 10); }

static void teardown(void) {
  mp_pool_close(&pool);
  unlink(devpath);
}

static int owned(const void *p) { return mp_pool_owns(&pool, p); }

START_TEST(malloc_zero_and_free_null) {
  void *a = mp_malloc(&pool, 0), *b = mp_malloc(&pool, 0);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_ne(a, b);
  ck_assert(owned(a) && owned(b));
  mp_free(&pool, a);
  mp_free(&pool, b);
  errno = 77;
  mp_free(&pool, NULL);
  void *c = mp_malloc(&pool, 10);
  errno = 78;
  mp_free(&pool, c);
  ck_assert_int_eq(errno, 78);
  ck_assert_int_eq(mp_pool_check(&pool, NULL, 0), 0);
}
END_TEST

START_TEST(huge_and_overflow) {
  errno = 0;
  ck_assert_ptr_null(mp_malloc(&pool, SIZE_MAX));
  ck_assert_int_eq(errno, ENOMEM);
  errno = 0;
  ck_assert_ptr_null(mp_calloc(&pool, SIZE_MAX / 4, 8));
  ck_assert_int_eq(errno, ENOMEM);
  errno = 0;
  ck_assert_ptr_null(mp_reallocarray(&pool, NULL, SIZE_MAX / 4, 8));
  ck_assert_int_eq(errno, ENOMEM);
}
END_TEST

START_TEST(spill_and_ownership) {
  /* 1 MiB region: a 2 MiB block goes to jemalloc; free finds the owner. */
  void *big = mp_malloc(&pool, 2 << 20);
  ck_assert_ptr_nonnull(big);
  ck_assert(!owned(big));
  memset(big, 1, 2 << 20);
  ck_assert_uint_ge(mp_malloc_usable_size(&pool, big), 2 << 20);
  void *small = mp_malloc(&pool, 100);
  ck_assert(owned(small));
  ck_assert_uint_eq(mp_malloc_usable_size(&pool, small), 112);
  mp_free(&pool, big);
  mp_free(&pool, small);
  /* Without a pool everything is jemalloc's. */
  void *j = mp_malloc(NULL, 10);
  ck_assert(!owned(j));
  mp_free(NULL, j);
}
END_TEST

START_TEST(calloc_zeroes_recycled) {
  unsigned char *a = mp_malloc(&pool, 4000);
  memset(a, 0xEE, 4000);
  mp_free(&pool, a);
  unsigned char *b = mp_calloc(&pool, 40, 100);
  ck_assert_ptr_eq(a, b); /* same range comes back first */
  for (int i = 0; i < 4000; i++) ck_assert_int_eq(b[i], 0);
  mp_free(&pool, b);
}
END_TEST

START_TEST(alignment) {
  void *p = (void *)0x1;
  ck_assert_int_eq(mp_posix_memalign(&pool, &p, 0, 1), EINVAL);
  ck_assert_int_eq(mp_posix_memalign(&pool, &p, 12, 1), EINVAL);
  ck_assert_int_eq(mp_posix_memalign(&pool, &p, 2, 1), EINVAL);
  ck_assert_ptr_eq(p, (void *)0x1);
  for (size_t a = 8; a <= (256 << 10); a <<= 1) {
    ck_assert_int_eq(mp_posix_memalign(&pool, &p, a, 33), 0);
    ck_assert_uint_eq((uintptr_t)p % a, 0);
    ck_assert(owned(p));
    mp_free(&pool, p);
  }
  /* An alignment the region cannot satisfy falls back to jemalloc. */
  ck_assert_int_eq(mp_posix_memalign(&pool, &p, 4 << 20, 33), 0);
  ck_assert_uint_eq((uintptr_t)p % (4 << 20), 0);
  ck_assert(!owned(p));
  mp_free(&pool, p);
  errno = 0;
  ck_assert_ptr_null(mp_aligned_alloc(&pool, 48, 10));
  ck_assert_int_eq(errno, EINVAL);
  p = mp_memalign(&pool, 48, 10);
  ck_assert_uint_eq((uintptr_t)p % 64, 0);
  mp_free(&pool, p);
  p = mp_memalign(&pool, 0, 10); /* glibc: an alignment below 16 is plain malloc */
  ck_assert_ptr_nonnull(p);
  mp_free(&pool, p);
  errno = 0;
  ck_assert_ptr_null(mp_memalign(&pool, SIZE_MAX, 10));
  ck_assert_int_eq(errno, EINVAL);
  ck_assert_int_eq(mp_pool_check(&pool, NULL, 0), 0);
}
END_TEST

START_TEST(realloc_paths) {
  char *a = mp_realloc(&pool, NULL, 100);
  memset(a, 'a', 100);
  char *b = mp_malloc(&pool, 100);
  char *c = mp_malloc(&pool, 100);
  mp_free(&pool, b);
  char *a2 = mp_realloc(&pool, a, 200); /* grows into b's range */
  ck_assert_ptr_eq(a2, a);
  char *a3 = mp_realloc(&pool, a2, 1000); /* c is in the way: moves */
  ck_assert_ptr_ne(a3, a);
  ck_assert(owned(a3));
  for (int i = 0; i < 100; i++) ck_assert_int_eq(a3[i], 'a');
  char *a4 = mp_realloc(&pool, a3, 3 << 20); /* bigger than the region: to jemalloc */
  ck_assert(!owned(a4));
  for (int i = 0; i < 100; i++) ck_assert_int_eq(a4[i], 'a');
  char *a5 = mp_realloc(&pool, a4, 50); /* back into the pool */
  ck_assert(owned(a5));
  for (int i = 0; i < 50; i++) ck_assert_int_eq(a5[i], 'a');
  ck_assert_ptr_null(mp_realloc(&pool, a5, 0)); /* frees */
  mp_free(&pool, c);
  mp_pool_info in;
  mp_pool_get_info(&pool, &in);
  ck_assert_uint_eq(in.used_ranges, 0);
  ck_assert_uint_eq(in.free_ranges, 1);
  ck_assert_uint_eq(in.stats.pool_bytes, 0);
}
END_TEST

START_TEST(exhaustion_then_coalesce) {
  void *blocks[5000];
  int n = 0, in = 0;
  while (n < 5000) {
    blocks[n] = mp_malloc(&pool, 300 + (size_t)(n % 5) * 100);
    ck_assert_ptr_nonnull(blocks[n]);
    in += owned(blocks[n]);
    n++;
  }
  ck_assert_int_gt(in, 1000);
  ck_assert_int_lt(in, 5000);
  for (int i = 0; i < n; i += 2) mp_free(&pool, blocks[i]);
  for (int i = 1; i < n; i += 2) mp_free(&pool, blocks[i]);
  void *whole = mp_malloc(&pool, 1 << 20);
  ck_assert(owned(whole));
  mp_free(&pool, whole);
  ck_assert_int_eq(mp_pool_check(&pool, NULL, 0), 0);
}
END_TEST

/* ---- small objects ------------------------------------------------------- */

/* check reports every ck_assert to its parent through a pipe: hot loops use this. */
#define REQUIRE(cond, ...)                  \
  do {                                      \
    if (!(cond)) ck_abort_msg(__VA_ARGS__); \
  } while (0)

static void assert_checked(void) {
  char why[256] = "";
  ck_assert_msg(mp_pool_check(&pool, why, sizeof why) == 0, "invariants: %s", why);
}

START_TEST(region_tail_chunk) {
  /* 256 MiB + 32 KiB: 4096 whole chunks and a partial one. The partial chunk
   * has a class entry of its own (0: never a span), not a byte of the span
   * table that follows it. */
  mp_pool q;
  char err[320];
  mp_config c = {.device = "anon", .base = 0, .high = (256u << 20) + (32u << 10) - 1};
  ck_assert_msg(mp_pool_open(&q, &c, err, sizeof err) == 0, "%s", err);
  ck_assert_int_eq(mp_pool_enable_small(&q), 0);
  void *o = mp_malloc(&q, 48); /* a span of 48-byte objects at offset 0 */
  ck_assert(mp_pool_owns(&q, o));
  ck_assert_uint_eq(mp_small_class_at(&q, 0), mp_class_of(48) + 1);
  ck_assert_uint_eq(mp_small_class_at(&q, q.region.size - 16), 0);
  mp_free(&q, o);
  mp_pool_close(&q);
}
END_TEST

START_TEST(size_class_tables) {
  /* Every size maps to the smallest class holding it; division is exact. */
  REQUIRE(mp_class_of(0) == 0, "class of 0");
  for (size_t n = 1; n <= MP_SMALL_MAX; n++) {
    unsigned c = mp_class_of(n);
    REQUIRE(c < MP_SMALL_CLASSES && mp_class_size[c] >= n && (c == 0 || mp_class_size[c - 1] < n),
            "size %zu -> class %u", n, c);
  }
  for (size_t n = 0; n <= MP_HIT_MAX; n++) REQUIRE(mp_class_of_hit(n) == mp_class_of(n), "hit class of %zu", n);
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++)
    for (uint32_t off = 0; off < mp_class_span_bytes(c); off++)
      REQUIRE(mp_class_div(off, c) == off / mp_class_size[c], "div %u by class %u", off, c);
  /* A span's units: the fewest with four objects or more and at most 1/8 left over. */
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++) {
    uint32_t u = mp_class_units[c], s = mp_class_size[c];
    REQUIRE(u >= 1 && u <= MP_SPAN_UNITS_MAX, "class %u: %u units", c, u);
    REQUIRE(mp_class_nobj(c) >= 4 && (mp_class_span_bytes(c) % s) * 8 <= mp_class_span_bytes(c), "class %u's span", c);
    for (uint32_t v = 1; v < u; v++) {
      uint32_t bytes = v << MP_SPAN_SHIFT;
      REQUIRE(bytes / s < 4 || (bytes % s) * 8 > bytes, "class %u: %u units would do", c, v);
    }
    REQUIRE(mp_class_cache_cap(c) >= 2 && mp_class_xfer_cap(c) >= 4 && mp_class_xfer_cap(c) <= MP_XFER_MAX,
            "class %u's caps", c);
  }
}
END_TEST

START_TEST(small_classes_and_reuse) {
  /* Every size up to 8 KiB is served, aligned, with a usable size within 25%. */
  for (size_t n = 1; n <= 8192; n += (n < 300 ? 1 : 97)) {
    char *p = mp_malloc(&pool, n);
    REQUIRE(owned(p) && (uintptr_t)p % 16 == 0, "size %zu: %p", n, (void *)p);
    size_t u = mp_malloc_usable_size(&pool, p);
    REQUIRE(u >= n && u <= (n < 16 ? 16 : n + n / 4 + 16), "size %zu: usable %zu", n, u);
    memset(p, 0x5A, u);
    mp_free(&pool, p);
  }
  /* Alignment requests up to 4 KiB come from classes whose size they divide. */
  for (size_t a = 32; a <= 4096; a <<= 1) {
    void *p = mp_memalign(&pool, a, 40);
    ck_assert_uint_eq((uintptr_t)p % a, 0);
    mp_free(&pool, p);
  }
  assert_checked();
}
END_TEST

#define LIVE 20000
static void *live[LIVE];

START_TEST(small_random_against_model) {
  uint32_t x = 2463534242u;
  size_t sizes[LIVE] = {0};
  for (int op = 0; op < 400000; op++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    int i = (int)(x % LIVE);
    if (live[i]) {
      unsigned char *c = live[i];
      for (size_t k = 0; k < sizes[i]; k += 61) REQUIRE(c[k] == (unsigned char)(i + k), "content of block %d", i);
      mp_free(&pool, live[i]);
      live[i] = NULL;
    } else {
      sizes[i] = 1 + (x >> 8) % ((x & 1) ? 200 : 9000);
      unsigned char *c = mp_malloc(&pool, sizes[i]);
      REQUIRE(owned(c), "block %d (%zu bytes) not from the pool", i, sizes[i]);
      for (size_t k = 0; k < sizes[i]; k += 61) c[k] = (unsigned char)(i + k);
      live[i] = c;
    }
    if (op % 50000 == 0) assert_checked();
  }
  for (int i = 0; i < LIVE; i++) mp_free(&pool, live[i]);
  assert_checked();
  /* Nothing stranded: the whole region is one block again. */
  void *whole = mp_malloc(&pool, 64 << 20);
  ck_assert(owned(whole));
  mp_free(&pool, whole);
  assert_checked();
}
END_TEST

static void *cross_worker(void *arg) {
  void **slots = arg;
  /* Frees what another thread allocated, allocates its own. */
  for (int i = 0; i < 5000; i++) {
    mp_free(&pool, slots[i]);
    slots[i] = mp_malloc(&pool, 16 + (size_t)(i % 500));
  }
  return NULL;
}

START_TEST(small_cross_thread_and_exit) {
  static void *slots[4][5000];
  for (int t = 0; t < 4; t++)
    for (int i = 0; i < 5000; i++) slots[t][i] = mp_malloc(&pool, 16 + (size_t)(i % 700));
  pthread_t th[4];
  for (int t = 0; t < 4; t++) pthread_create(&th[t], NULL, cross_worker, slots[t]);
  for (int t = 0; t < 4; t++) pthread_join(th[t], NULL); /* exiting threads flush their caches */
  assert_checked();
  for (int t = 0; t < 4; t++)
    for (int i = 0; i < 5000; i++) mp_free(&pool, slots[t][i]);
  void *whole = mp_malloc(&pool, 64 << 20);
  ck_assert_msg(owned(whole), "memory stranded in spans or caches after all frees");
  mp_free(&pool, whole);
  mp_pool_info in;
  mp_pool_get_info(&pool, &in);
  ck_assert_uint_eq(in.small_allocs, in.small_frees);
  ck_assert_uint_eq(in.small_bytes, 0);
  assert_checked();
}
END_TEST

/* ---- reclaim of other live threads' caches (tcache.h) --------------------- */

static int g_ready[2], g_hold[2];

/* Caches 100 objects of 48 bytes, then waits on a pipe, alive. */
static void *cache_then_wait(void *arg) {
  (void)arg;
  void *v[100];
  char c = 0;
  for (int i = 0; i < 100; i++) v[i] = mp_malloc(&pool, 48);
  for (int i = 0; i < 100; i++) mp_free(&pool, v[i]);
  if (write(g_ready[1], &c, 1) != 1 || read(g_hold[0], &c, 1) != 1) return (void *)1;
  return NULL;
}

static mp_tcache *other_cache(void) {
  for (mp_tcache *tc = pool.small.all_tcaches; tc; tc = tc->next_all)
    if (tc->owned && tc != mp_t_tcache) return tc;
  return NULL;
}

static uint32_t cached_in(const mp_tcache *tc) {
  uint32_t n = 0;
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++) n += tc->bins[c].n;
  return n;
}

static bool have_membarrier(void) { return syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0) > 0; }

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A thread caught mid-hit (busy set by hand) is skipped after the spin
 * bound, its caps restored; once out, its objects come back. A reclaim
 * that did not help keeps the next one away for a while. */
START_TEST(reclaim_busy_cache) {
  if (!have_membarrier()) return; /* no reclaim from live threads here (tcache.h) */
  pthread_t t;
  char c = 0;
  ck_assert(pipe(g_ready) == 0 && pipe(g_hold) == 0);
  ck_assert_int_eq(pthread_create(&t, NULL, cache_then_wait, NULL), 0);
  ck_assert_int_eq(read(g_ready[0], &c, 1), 1);
  mp_tcache *tc = other_cache();
  ck_assert_ptr_nonnull(tc);
  uint32_t before = cached_in(tc), objects = 0, skipped = 0;
  ck_assert_uint_gt(before, 0);
  tc->busy = 1; /* "stopped inside its hit path" */
  double t0 = seconds();
  ck_assert(mp_tcache_reclaim_all(&pool, &objects, &skipped));
  ck_assert_double_ge(seconds() - t0, MP_RECLAIM_SPIN_NS / 1e9);
  ck_assert_uint_eq(skipped, 1);
  ck_assert_uint_eq(objects, 0);
  ck_assert_uint_eq(cached_in(tc), before);
  ck_assert_uint_ne(tc->ready, 0); /* the bins it used are set up; a fresh cache's others wait for their first use */
  for (unsigned k = 0; k < MP_SMALL_CLASSES; k++)
    ck_assert_uint_eq(tc->bins[k].cap, (tc->ready >> k) & 1 ? mp_class_cache_cap(k) : 0);
  tc->busy = 0;
  mp_tcache_reclaim_done(&pool, false);
  ck_assert(!mp_tcache_reclaim_all(&pool, &objects, &skipped)); /* quiet */
  mp_tcache_reclaim_done(&pool, true);
  ck_assert(mp_tcache_reclaim_all(&pool, &objects, &skipped));
  ck_assert_uint_eq(objects, before);
  ck_assert_uint_eq(skipped, 0);
  ck_assert_uint_eq(cached_in(tc), 0);
  assert_checked();
  ck_assert_int_eq(write(g_hold[1], &c, 1), 1);
  void *rc;
  pthread_join(t, &rc);
  ck_assert_ptr_null(rc);
  assert_checked();
}
END_TEST

static int g_stop;

/* malloc/free of 16..64 bytes (few bins: the reclaimer empties them under the owner's hits) over 256 slots, each
 * block's bytes a pattern checked before its free: returns the blocks found changed. */
static void *hammer(void *arg) {
  unsigned x = (unsigned)(uintptr_t)arg * 2654435761u + 7;
  static __thread unsigned char *slot[256];
  static __thread size_t len[256];
  uintptr_t bad = 0;
  while (!__atomic_load_n(&g_stop, __ATOMIC_RELAXED)) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    unsigned k = x % 256;
    if (slot[k]) {
      for (size_t i = 0; i < len[k]; i++) bad += slot[k][i] != (unsigned char)((uintptr_t)slot[k] + i);
      mp_free(&pool, slot[k]);
    }
    len[k] = 16 + (x >> 8) % 49;
    slot[k] = mp_malloc(&pool, len[k]);
    for (size_t i = 0; i < len[k]; i++) slot[k][i] = (unsigned char)((uintptr_t)slot[k] + i);
  }
  for (unsigned k = 0; k < 256; k++) mp_free(&pool, slot[k]);
  return (void *)bad;
}

/* Reclaims racing with two threads' hit paths: no object handed out twice
 * (the patterns), none lost (the invariants, the whole region after), no
 * deadlock (the test's timeout). */
START_TEST(reclaim_races_hits) {
  pthread_t t[2];
  g_stop = 0;
  for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, (void *)(uintptr_t)(i + 1)), 0);
  uint64_t total = 0;
  unsigned rounds = 0;
  for (double end = seconds() + 1.5; seconds() < end; rounds++) {
    uint32_t objects = 0;
    if (rounds % 2) { /* the exhaustion path's own reclaim (and its quiet window) */
      void *big = mp_malloc(&pool, (size_t)63 << 20);
      mp_free(&pool, big);
      continue;
    }
    mp_tcache_reclaim_all(&pool, &objects, NULL);
    mp_tcache_reclaim_done(&pool, true);
    total += objects;
  }
  __atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < 2; i++) {
    void *bad;
    pthread_join(t[i], &bad);
    ck_assert_msg(bad == NULL, "%lu bytes changed under their owner", (unsigned long)(uintptr_t)bad);
  }
  if (have_membarrier()) ck_assert_msg(total > 0, "%u reclaims took nothing", rounds);
  assert_checked();
  void *whole = mp_malloc(&pool, 64 << 20);
  ck_assert_msg(owned(whole), "memory stranded after the race");
  mp_free(&pool, whole);
}
END_TEST

/* GC: a bin the thread stopped using gives back three quarters of its
 * objects once MP_TCACHE_GC_EVENTS refills and flushes of other bins pass. */
START_TEST(gc_idle_bin) {
  void *v[200];
  for (int i = 0; i < 100; i++) v[i] = mp_malloc(&pool, 48);
  for (int i = 0; i < 100; i++) mp_free(&pool, v[i]);
  const mp_tcache_bin *b = &mp_t_tcache->bins[mp_class_of(48)];
  uint32_t before = b->n;
  ck_assert_uint_ge(before, 64);
  for (unsigned round = 0; round < MP_TCACHE_GC_EVENTS; round++) { /* 4 KiB objects: batches of 16 at most */
    for (int i = 0; i < 200; i++) v[i] = mp_malloc(&pool, 4096);
    for (int i = 0; i < 200; i++) mp_free(&pool, v[i]);
  }
  ck_assert_uint_le(b->n, before / 4);
  assert_checked();
}
END_TEST

/* ---- death tests: run fn in a child, check SIGABRT and the message -------- */

static void expect_trap(void (*fn)(void), const char *says) {
  const char *why = death_problem(fn, says);
  ck_assert_msg(why == NULL, "%s", why ? why : "");
}

static char *victim;
static char hexbuf[64];
static const char *hex(const void *p) {
  snprintf(hexbuf, sizeof hexbuf, "%p", p);
  return hexbuf;
}

static void do_double_free(void) {
  mp_free(&pool, victim);
  mp_free(&pool, victim);
}
static void do_interior_free(void) { mp_free(&pool, victim + 16); }
static void do_unaligned_free(void) { mp_free(&pool, victim + 3); }
static void do_never_allocated(void) { mp_free(&pool, (char *)pool.region.base + pool.region.size - 64); }
static void do_realloc_freed(void) {
  mp_free(&pool, victim);
  mp_realloc(&pool, victim, 500);
}
static void do_usable_freed(void) {
  mp_free(&pool, victim);
  mp_malloc_usable_size(&pool, victim);
}

static void do_small_double_free(void) {
  char *v = mp_malloc(&pool, 40);
  victim = v;
  mp_free(&pool, v);
  mp_free(&pool, v);
}
static void do_small_interior(void) { mp_free(&pool, (char *)mp_malloc(&pool, 40) + 16); }
/* Inside the object's first granule: its held byte is the object's own. */
static void do_small_unaligned(void) { mp_free(&pool, (char *)mp_malloc(&pool, 40) + 8); }
static void do_small_unaligned_usable(void) { mp_malloc_usable_size(&pool, (char *)mp_malloc(&pool, 40) + 4); }
static void do_small_unaligned_realloc(void) { mp_realloc(&pool, (char *)mp_malloc(&pool, 40) + 1, 20); }

/* Two frees of v that raced on two CPUs both passed the held byte's check
 * (span.h): v sits in the cache twice. The second malloc that hands it out
 * finds it held. */
static void do_small_racing_frees_malloc(void) {
  char *v = mp_malloc(&pool, 40);
  mp_free(&pool, v);
  ck_assert(mp_tcache_push(v, mp_class_of(40))); /* the second, racing free */
  ck_assert_ptr_eq(mp_malloc(&pool, 40), v);
  mp_malloc(&pool, 40);
}
/* ... or both copies go back to v's span: the second finds it free there. */
static void do_small_racing_frees_give(void) {
  char *v = mp_malloc(&pool, 40);
  mp_free(&pool, v);
  mp_span_give(&pool, mp_class_of(40), (void **)&v, 1);
  mp_tcache_flush_current(&pool);
  mp_small_release_empty(&pool);
}

/* A fresh cache sets a bin up at the bin's first slow path: a thread
 * whose first call frees another thread's object of a class it never
 * used frees it right (its bin was zero: the hit must not read its held
 * map), and a second free of it traps. */
static mp_tcache *g_fresh;
static void *free_in_fresh_thread(void *arg) {
  mp_free(&pool, arg);
  g_fresh = mp_t_tcache;
  return NULL;
}
static void *free_twice_in_fresh_thread(void *arg) {
  mp_free(&pool, arg);
  mp_free(&pool, arg);
  return NULL;
}
static void do_fresh_cache_double_free(void) {
  pthread_t t;
  void *v = mp_malloc(&pool, 200);
  if (pthread_create(&t, NULL, free_twice_in_fresh_thread, v) == 0) pthread_join(t, NULL);
}
START_TEST(fresh_cache_bins_lazy) {
  pthread_t t;
  void *v = mp_malloc(&pool, 200), *w = mp_malloc(&pool, 200);
  unsigned cls = mp_class_of(200);
  ck_assert_int_eq(pthread_create(&t, NULL, free_in_fresh_thread, v), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  ck_assert_ptr_nonnull(g_fresh);
  ck_assert_uint_eq(g_fresh->ready, 1ull << cls); /* the one bin it used */
  ck_assert(!mp_span_held_bit(&pool, (uintptr_t)v - pool.region.base, cls));
  ck_assert(mp_span_held_bit(&pool, (uintptr_t)w - pool.region.base, cls));
  mp_free(&pool, w);
  expect_trap(do_fresh_cache_double_free, "double free or use of a freed block");
  ck_assert_int_eq(mp_small_check(&pool, NULL, 0), 0);
}
END_TEST

/* The real race: two threads free one object at the same moment. Either
 * one's free sees the other's store (the double free trap), or both pass
 * and the copies trap when they meet again: at the span (the threads'
 * caches are flushed at their exit; the transfer stacks drained here) or
 * at the malloc that would hand the object out twice. Never silence. */
static volatile int g_go;
static void *race_free(void *arg) {
  while (!g_go) {
  }
  mp_free(&pool, arg);
  return NULL;
}
static void do_racing_double_free(void) {
  pthread_t a, b;
  void *v = mp_malloc(&pool, 40);
  if (pthread_create(&a, NULL, race_free, v) || pthread_create(&b, NULL, race_free, v)) return;
  g_go = 1;
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  mp_small_release_empty(&pool);
  for (int i = 0; i < 4096; i++) mp_malloc(&pool, 40);
}

START_TEST(trap_small) {
  expect_trap(do_small_double_free, "free(0x");
  expect_trap(do_small_double_free, "double free or use of a freed block");
  expect_trap(do_small_interior, "invalid pointer");
  expect_trap(do_small_unaligned, "invalid pointer");
  expect_trap(do_small_unaligned_usable, "invalid pointer");
  expect_trap(do_small_unaligned_realloc, "invalid pointer");
  expect_trap(do_small_racing_frees_malloc, "malloc: object 0x");
  expect_trap(do_small_racing_frees_malloc, "freed twice, by two threads whose frees raced");
  expect_trap(do_small_racing_frees_give, "free: object 0x");
  for (int round = 0; round < 20; round++) expect_trap(do_racing_double_free, "freed");
}
END_TEST

/* ---- medium objects (8 KiB .. 256 KiB, a region of MP_MEDIUM_MIN_REGION) -- */

/* The span byte of p: its class + 1, or 0 for a range block. */
static unsigned span_byte(const void *p) { return mp_small_class_at(&pool, (uintptr_t)p - pool.region.base); }

START_TEST(medium_classes_served) {
  ck_assert_uint_eq(pool.small.max_size, MP_SMALL_MAX);
  for (size_t n = MP_HIT_MAX + 1; n <= MP_SMALL_MAX; n += 1531) {
    char *p = mp_malloc(&pool, n);
    unsigned cls = mp_class_of(n);
    REQUIRE(owned(p) && (uintptr_t)p % 16 == 0 && span_byte(p) == cls + 1, "size %zu: %p, span byte %u", n, (void *)p,
            span_byte(p));
    REQUIRE(mp_malloc_usable_size(&pool, p) == mp_class_size[cls], "size %zu: usable %zu", n,
            mp_malloc_usable_size(&pool, p));
    memset(p, 0x5A, mp_class_size[cls]);
    mp_free(&pool, p);
    REQUIRE(mp_malloc(&pool, n) == p, "size %zu: the cached object comes back", n);
    mp_free(&pool, p);
  }
  char *big = mp_malloc(&pool, MP_SMALL_MAX + 1); /* beyond the classes: a range block */
  REQUIRE(owned(big) && span_byte(big) == 0, "a %u-byte block is a range block", MP_SMALL_MAX + 1);
  mp_free(&pool, big);
  for (size_t a = 32; a <= 4096; a <<= 1) {
    void *p = mp_memalign(&pool, a, 20000);
    REQUIRE((uintptr_t)p % a == 0 && span_byte(p), "memalign(%zu, 20000): %p", a, p);
    mp_free(&pool, p);
  }
  assert_checked();
}
END_TEST

START_TEST(medium_random_against_model) {
  static void *blocks[2000];
  static size_t sizes[2000];
  uint32_t x = 88172645u;
  for (int op = 0; op < 60000; op++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    int i = (int)(x % 2000);
    if (blocks[i]) {
      unsigned char *c = blocks[i];
      for (size_t k = 0; k < sizes[i]; k += 509) REQUIRE(c[k] == (unsigned char)(i + k), "content of block %d", i);
      mp_free(&pool, blocks[i]);
      blocks[i] = NULL;
      continue;
    }
    sizes[i] = 1 + (x >> 4) % MP_SMALL_MAX;
    unsigned char *c = blocks[i] = mp_malloc(&pool, sizes[i]);
    REQUIRE(owned(c), "block %d (%zu bytes) not from the pool", i, sizes[i]);
    for (size_t k = 0; k < sizes[i]; k += 509) c[k] = (unsigned char)(i + k);
    if (op % 20000 == 0) assert_checked();
  }
  for (int i = 0; i < 2000; i++) mp_free(&pool, blocks[i]);
  assert_checked();
  /* Nothing stranded: the whole region is one block again. */
  void *whole = mp_malloc(&pool, pool.region.size);
  ck_assert(owned(whole));
  mp_free(&pool, whole);
  assert_checked();
}
END_TEST

/* A buffer realloc grows past 8 KiB becomes a range block, which grows in
 * place (no medium class's partial span left behind at every step). */
START_TEST(medium_realloc_grows_as_range) {
  char *p = mp_malloc(&pool, 5000);
  memset(p, 7, 5000);
  char *q = mp_realloc(&pool, p, 20000);
  REQUIRE(owned(q) && span_byte(q) == 0, "realloc(5000 -> 20000): %p, span byte %u", (void *)q, span_byte(q));
  REQUIRE(q[0] == 7 && q[4999] == 7, "content kept");
  REQUIRE(mp_realloc(&pool, q, 24000) == q, "the room realloc gave: in place");
  char *m = mp_malloc(&pool, 20000); /* a malloc of that size: a medium object */
  REQUIRE(span_byte(m) == mp_class_of(20000) + 1, "malloc(20000): span byte %u", span_byte(m));
  char *r = mp_realloc(&pool, m, 30000); /* a medium object grown: a range block too */
  REQUIRE(span_byte(r) == 0, "realloc of a medium object: span byte %u", span_byte(r));
  mp_free(&pool, q);
  mp_free(&pool, r);
  assert_checked();
}
END_TEST

static void do_medium_double_free(void) {
  char *v = mp_malloc(&pool, 100000);
  mp_free(&pool, v);
  mp_free(&pool, v);
}
static void do_medium_interior(void) { mp_free(&pool, (char *)mp_malloc(&pool, 100000) + 4096); }
/* The second object's start, never handed out: not held. */
static void do_medium_never_held(void) {
  mp_free(&pool, (char *)mp_malloc(&pool, 100000) + mp_class_size[mp_class_of(100000)]);
}

START_TEST(trap_medium) {
  expect_trap(do_medium_double_free, "double free or use of a freed block");
  expect_trap(do_medium_interior, "invalid pointer");
  expect_trap(do_medium_never_held, "double free or use of a freed block");
}
END_TEST

/* A span that empties while its class has another is kept (one per class),
 * not given back to be made again at the next refill. */
START_TEST(span_empty_kept) {
  unsigned cls = mp_class_of(48);
  uint32_t nobj = mp_class_nobj(cls), xfer = mp_class_xfer_cap(cls);
  static void *objs[4096 + 10];
  ck_assert_uint_eq(mp_span_take(&pool, cls, objs, nobj + 10), nobj + 10); /* span A full, 10 of B */
  uint32_t b = (uint32_t)(((uintptr_t)objs[nobj] - pool.region.base) >> MP_SPAN_SHIFT);
  ck_assert_uint_eq(pool.small.classes[cls].spans, 2);
  mp_span_give(&pool, cls, objs, xfer);      /* A's first objects fill the transfer stack */
  mp_span_give(&pool, cls, objs + nobj, 10); /* B's go to B: empty, kept */
  ck_assert_uint_eq(pool.small.classes[cls].spans, 2);
  ck_assert_uint_eq(pool.small.classes[cls].empty, b + 1);
  assert_checked();
  mp_span_give(&pool, cls, objs + xfer, nobj - xfer); /* the rest of A: A not empty, its first in the stack */
  ck_assert_uint_eq(pool.small.classes[cls].spans, 2);
  assert_checked();
  mp_small_release_empty(&pool); /* the stack into A: A empty and given back, then the kept B */
  ck_assert_uint_eq(pool.small.classes[cls].spans, 0);
  ck_assert_uint_eq(pool.small.classes[cls].empty, 0);
  assert_checked();
}
END_TEST

START_TEST(medium_needs_a_large_region) {
  ck_assert_uint_eq(pool.small.max_size, MP_HIT_MAX); /* 64 MiB: range blocks above 8 KiB */
  char *p = mp_malloc(&pool, MP_HIT_MAX + 1);
  ck_assert(owned(p) && span_byte(p) == 0);
  mp_free(&pool, p);
}
END_TEST

START_TEST(trap_double_free) {
  victim = mp_malloc(&pool, 100);
  char want[128];
  snprintf(want, sizeof want, "free(%s): double free", hex(victim));
  expect_trap(do_double_free, want);
}
END_TEST

START_TEST(trap_interior) {
  victim = mp_malloc(&pool, 100);
  char want[128];
  snprintf(want, sizeof want, "free(%s): invalid pointer", hex(victim + 16));
  expect_trap(do_interior_free, want);
  snprintf(want, sizeof want, "free(%s): invalid pointer", hex(victim + 3));
  expect_trap(do_unaligned_free, want);
  expect_trap(do_never_allocated, "not the start of an allocated block");
}
END_TEST

START_TEST(trap_realloc_freed) {
  victim = mp_malloc(&pool, 100);
  char want[128];
  snprintf(want, sizeof want, "realloc(%s): double free or use of a freed block", hex(victim));
  expect_trap(do_realloc_freed, want);
  snprintf(want, sizeof want, "malloc_usable_size(%s)", hex(victim));
  expect_trap(do_usable_freed, want);
}
END_TEST

int main(void) {
  Suite *s = suite_create("api");
  TCase *tc = tcase_create("semantics");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, malloc_zero_and_free_null);
  tcase_add_test(tc, huge_and_overflow);
  tcase_add_test(tc, spill_and_ownership);
  tcase_add_test(tc, calloc_zeroes_recycled);
  tcase_add_test(tc, alignment);
  tcase_add_test(tc, realloc_paths);
  tcase_add_test(tc, exhaustion_then_coalesce);
  suite_add_tcase(s, tc);
  TCase *td = tcase_create("traps");
  tcase_add_checked_fixture(td, setup, teardown);
  tcase_add_test(td, trap_double_free);
  tcase_add_test(td, trap_interior);
  tcase_add_test(td, trap_realloc_freed);
  suite_add_tcase(s, td);
  TCase *ts = tcase_create("small");
  tcase_add_checked_fixture(ts, setup_small, teardown);
  tcase_set_timeout(ts, 60);
  tcase_add_test(ts, size_class_tables);
  tcase_add_test(ts, region_tail_chunk);
  tcase_add_test(ts, small_classes_and_reuse);
  tcase_add_test(ts, small_random_against_model);
  tcase_add_test(ts, small_cross_thread_and_exit);
  tcase_add_test(ts, reclaim_busy_cache);
  tcase_add_test(ts, reclaim_races_hits);
  tcase_add_test(ts, gc_idle_bin);
  tcase_add_test(ts, trap_small);
  tcase_add_test(ts, fresh_cache_bins_lazy);
  tcase_add_test(ts, medium_needs_a_large_region);
  tcase_add_test(ts, span_empty_kept);
  suite_add_tcase(s, ts);
  TCase *tm = tcase_create("medium");
  tcase_add_checked_fixture(tm, setup_medium, teardown);
  tcase_set_timeout(tm, 60);
  tcase_add_test(tm, medium_classes_served);
  tcase_add_test(tm, medium_random_against_model);
  tcase_add_test(tm, trap_medium);
  tcase_add_test(tm, medium_realloc_grows_as_range);
  suite_add_tcase(s, tm);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
