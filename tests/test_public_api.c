/* The public API (mempool.h) and the compatibility API (mem_allocator_c.h):
 * pools on regular files and anonymous memory, several at once, serving
 * only from their regions; statistics and walks against what was allocated;
 * bad parameters; traps for bad pointers; fork. */
#define _GNU_SOURCE
#include <check.h>

#include "death.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mem_allocator_c.h"
#include "mempool.h"
#include "preload_util.h" /* placement judged from /proc/self/maps */

#define MiB (1ull << 20)

/* ---- fixture: device files in MEMPOOL_TEST_TMP, removed after each test --- */

static char paths[8][512];
static int npaths;

static const char *devfile(const char *name) {
  const char *t = getenv("MEMPOOL_TEST_TMP");
  ck_assert_int_lt(npaths, 8);
  char *p = paths[npaths++];
  snprintf(p, sizeof paths[0], "%s/pubapi_%d_%s.dev", t ? t : "/tmp", getpid(), name);
  unlink(p);
  return p;
}

static void teardown(void) {
  for (int i = 0; i < npaths; i++) unlink(paths[i]);
  npaths = 0;
}

static mempool_t *make(const char *dev, uint64_t base, uint64_t high) {
  char err[320] = "";
  struct mempool_params prm = {.device = dev, .base = base, .high = high};
  mempool_t *m = mempool_create(&prm, err, sizeof err);
  ck_assert_msg(m != NULL, "mempool_create(%s, %#llx, %#llx): %s", dev, (unsigned long long)base,
                (unsigned long long)high, err);
  return m;
}

static void assert_consistent(mempool_t *m) {
  char why[256] = "";
  ck_assert_msg(mempool_check(m, why, sizeof why) == 0, "invariants: %s", why);
}

static struct mempool_stats stats_of(mempool_t *m) {
  struct mempool_stats s;
  ck_assert_int_eq(mempool_get_stats(m, &s), 0);
  return s;
}

static size_t round16(size_t n) { return n ? (n + 15) & ~(size_t)15 : 16; }

/* ---- creation -------------------------------------------------------------- */

START_TEST(create_on_file) {
  const char *dev = devfile("file");
  mempool_t *m = make(dev, 0x100000, 0x100000 + MiB - 1);
  struct stat st;
  ck_assert_int_eq(stat(dev, &st), 0);
  ck_assert(S_ISREG(st.st_mode));
  ck_assert_uint_ge((uint64_t)st.st_size, 0x100000 + MiB); /* created and extended */
  char *p = mempool_alloc(m, 1000);
  ck_assert_ptr_nonnull(p);
  ck_assert(mempool_owns(m, p));
  ck_assert_ptr_eq(p, mempool_base(m));
  memset(p, 0x5a, 1000);
  ck_assert_uint_eq(mempool_usable_size(m, p), 1008);
  /* The region is the file: the bytes are in it at base + offset. */
  FILE *f = fopen(dev, "rb");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fseek(f, 0x100000, SEEK_SET), 0);
  ck_assert_int_eq(fgetc(f), 0x5a);
  fclose(f);
  ck_assert_uint_eq(stats_of(m).region_bytes, MiB);
  mempool_free(m, p);
  mempool_destroy(m);
  mempool_destroy(NULL);
}
END_TEST

START_TEST(create_on_anon) {
  mempool_t *m = make("anon", 0, 4 * MiB - 1);
  char *p = mempool_alloc(m, 3 * MiB);
  ck_assert_ptr_nonnull(p);
  memset(p, 1, 3 * MiB);
  ck_assert(mempool_owns(m, p + 3 * MiB - 1));
  ck_assert(!mempool_owns(m, p + 4 * MiB));
  ck_assert_ptr_null(mempool_alloc(m, 2 * MiB));
  mempool_free(m, p);
  assert_consistent(m);
  mempool_destroy(m);
}
END_TEST

START_TEST(bad_create_parameters) {
  char err[320];
  struct {
    const char *dev;
    uint64_t base, high;
    int err;
    const char *says;
  } cases[] = {
      {NULL, 0, MiB - 1, EINVAL, "no device"},
      {"", 0, MiB - 1, EINVAL, "no device"},
      {"anon", 0x200000, 0x200000, EINVAL, "above base"},
      {"anon", 0x200000, 0x100000, EINVAL, "above base"},
      {"anon", 0x1001, 0x200000, EINVAL, "not page-aligned"},
      {"anon", 0x1000, 0x1000 + 100, EINVAL, "one page"},
      {"anon", 0, 0x1000000000ull * 2, EINVAL, "bytes supported"},
      {"anon", 0, UINT64_MAX, EINVAL, "bytes supported"},
      {"/dev/mempool-no-such-device", 0, MiB - 1, ENOENT, "/dev/mempool-no-such-device"},
      {"/nonexistent-mempool-dir/dev", 0, MiB - 1, ENOENT, "/nonexistent-mempool-dir/dev"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct mempool_params prm = {.device = cases[i].dev, .base = cases[i].base, .high = cases[i].high};
    err[0] = '\0';
    errno = 0;
    ck_assert_ptr_null(mempool_create(&prm, err, sizeof err));
    ck_assert_msg(errno == cases[i].err, "case %zu: errno %d, want %d (%s)", i, errno, cases[i].err, err);
    ck_assert_msg(strstr(err, cases[i].says), "case %zu: reason '%s' lacks '%s'", i, err, cases[i].says);
    ck_assert_msg(!strchr(err, '\n') && !strstr(err, "jemalloc") && strncmp(err, "mempool:", 8),
                  "case %zu: reason '%s' is not one bare line", i, err);
    errno = 0;
    ck_assert_ptr_null(mempool_create(&prm, NULL, 0)); /* err is optional */
    ck_assert_int_eq(errno, cases[i].err);
  }
  errno = 0;
  ck_assert_ptr_null(mempool_create(NULL, err, sizeof err));
  ck_assert_int_eq(errno, EINVAL);

  /* Neither a character device nor a regular file. */
  const char *fifo = devfile("fifo");
  ck_assert_int_eq(mkfifo(fifo, 0600), 0);
  struct mempool_params prm = {.device = fifo, .base = 0, .high = MiB - 1};
  errno = 0;
  ck_assert_ptr_null(mempool_create(&prm, err, sizeof err));
  ck_assert_int_eq(errno, ENODEV);
  ck_assert_msg(strstr(err, fifo), "reason '%s' lacks the path", err);
  /* A directory. */
  prm.device = getenv("MEMPOOL_TEST_TMP") ? getenv("MEMPOOL_TEST_TMP") : "/tmp";
  errno = 0;
  ck_assert_ptr_null(mempool_create(&prm, err, sizeof err));
  ck_assert_int_eq(errno, EISDIR);
}
END_TEST

/* ---- several pools ---------------------------------------------------------- */

START_TEST(several_pools) {
  const char *f1 = devfile("one"), *f2 = devfile("two");
  mempool_t *a = make(f1, 0x100000, 0x1FFFFF);
  mempool_t *b = make(f2, 0x100000, 0x1FFFFF); /* same range of another file */
  mempool_t *c = make(f1, 0x200000, 0x2FFFFF); /* next range of the same file */
  mempool_t *d = make("anon", 0, MiB - 1);
  mempool_t *all[4] = {a, b, c, d};
  char *p[4];
  for (int i = 0; i < 4; i++) {
    p[i] = mempool_alloc(all[i], 4096);
    ck_assert_ptr_nonnull(p[i]);
    memset(p[i], 'A' + i, 4096);
  }
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) ck_assert_msg(mempool_owns(all[i], p[j]) == (i == j), "pool %d, ptr %d", i, j);
  for (int i = 0; i < 4; i++) {
    for (int k = 0; k < 4096; k++) ck_assert_int_eq(p[i][k], 'A' + i);
    struct mempool_stats s = stats_of(all[i]);
    ck_assert_uint_eq(s.allocations, 1);
    ck_assert_uint_eq(s.bytes_in_use, 4096);
  }
  /* An overlapping range of a file a live pool holds: refused. */
  char err[320];
  struct mempool_params prm = {.device = f1, .base = 0x180000, .high = 0x27FFFF};
  errno = 0;
  ck_assert_ptr_null(mempool_create(&prm, err, sizeof err));
  ck_assert_int_eq(errno, EBUSY);
  ck_assert_msg(strstr(err, "in use"), "reason: %s", err);
  /* Once the holder is gone, the range is free again. */
  mempool_free(a, p[0]);
  mempool_destroy(a);
  mempool_t *e = make(f1, 0x100000, 0x1FFFFF);
  char *q = mempool_alloc(e, 4096);
  ck_assert_int_eq(q[0], 'A'); /* the file kept the bytes */
  mempool_free(e, q);
  for (int i = 1; i < 4; i++) {
    mempool_free(all[i], p[i]);
    assert_consistent(all[i]);
    mempool_destroy(all[i]);
  }
  mempool_destroy(e);
}
END_TEST

/* ---- serving only from the region --------------------------------------------- */

START_TEST(exhaustion_then_whole_region) {
  mempool_t *m = make(devfile("exh"), 0x10000000, 0x10000000 + MiB - 1);
  static char *blocks[1024];
  size_t n = 0;
  void *q;
  while ((q = mempool_alloc(m, 4096)) != NULL) {
    ck_assert_uint_lt(n, 1024);
    ck_assert(mempool_owns(m, q));
    blocks[n++] = q;
  }
  ck_assert_int_eq(errno, ENOMEM);
  ck_assert_uint_eq(n, MiB / 4096); /* metadata out of band: every byte serves */
  struct mempool_stats s = stats_of(m);
  ck_assert_uint_eq(s.bytes_in_use, MiB);
  ck_assert_uint_eq(s.bytes_free, 0);
  ck_assert_uint_eq(s.largest_free, 0);
  ck_assert_uint_eq(s.failed_requests, 1);
  /* Nothing is served from elsewhere, whatever the request. */
  errno = 0;
  ck_assert_ptr_null(mempool_alloc(m, 16));
  ck_assert_int_eq(errno, ENOMEM);
  ck_assert_ptr_null(mempool_calloc(m, 1, 1));
  ck_assert_ptr_null(mempool_aligned_alloc(m, 64, 64));
  ck_assert_ptr_null(mempool_alloc(m, SIZE_MAX));
  ck_assert_ptr_null(mempool_realloc(m, blocks[0], 8192));
  ck_assert_uint_eq(stats_of(m).failed_requests, 6);
  /* Free in an interleaved order; everything coalesces back. */
  for (size_t i = 0; i < n; i += 2) mempool_free(m, blocks[i]);
  assert_consistent(m);
  ck_assert_uint_eq(stats_of(m).largest_free, 4096);
  for (size_t i = 1; i < n; i += 2) mempool_free(m, blocks[i]);
  s = stats_of(m);
  ck_assert_uint_eq(s.bytes_in_use, 0);
  ck_assert_uint_eq(s.ranges_free, 1);
  ck_assert_uint_eq(s.largest_free, MiB);
  char *whole = mempool_alloc(m, MiB);
  ck_assert_ptr_eq(whole, mempool_base(m));
  mempool_free(m, whole);
  assert_consistent(m);
  mempool_destroy(m);
}
END_TEST

START_TEST(calloc_zeroes_and_overflow) {
  mempool_t *m = make(devfile("calloc"), 0, MiB - 1);
  char *p = mempool_alloc(m, 5000);
  memset(p, 0xab, 5000);
  mempool_free(m, p);
  char *z = mempool_calloc(m, 50, 100);
  ck_assert_ptr_eq(z, p); /* the same bytes, recycled */
  for (int i = 0; i < 5000; i++) ck_assert_int_eq(z[i], 0);
  mempool_free(m, z);
  uint64_t failed = stats_of(m).failed_requests;
  errno = 0;
  ck_assert_ptr_null(mempool_calloc(m, SIZE_MAX / 2, 4));
  ck_assert_int_eq(errno, ENOMEM);
  errno = 0;
  ck_assert_ptr_null(mempool_calloc(m, HALF_WIDTH, HALF_WIDTH));
  ck_assert_int_eq(errno, ENOMEM);
  ck_assert_uint_eq(stats_of(m).failed_requests, failed + 2);
  char *e1 = mempool_calloc(m, 0, 10), *e2 = mempool_calloc(m, 10, 0);
  ck_assert(e1 && e2 && e1 != e2); /* size 0: unique blocks */
  mempool_free(m, e1);
  mempool_free(m, e2);
  ck_assert_uint_eq(stats_of(m).bytes_in_use, 0);
  mempool_destroy(m);
}
END_TEST

START_TEST(aligned) {
  mempool_t *m = make(devfile("align"), 0x10000, 0x10000 + 4 * MiB - 1);
  char *filler = mempool_alloc(m, 48); /* so that alignment is not free */
  for (size_t a = 1; a <= MiB; a <<= 1) {
    char *p = mempool_aligned_alloc(m, a, 100);
    ck_assert_ptr_nonnull(p);
    ck_assert(mempool_owns(m, p));
    ck_assert_uint_eq((uintptr_t)p % (a < 16 ? 16 : a), 0);
    memset(p, 1, 100);
    mempool_free(m, p);
  }
  errno = 0;
  ck_assert_ptr_null(mempool_aligned_alloc(m, 24, 100));
  ck_assert_int_eq(errno, EINVAL);
  errno = 0;
  ck_assert_ptr_null(mempool_aligned_alloc(m, 0, 100));
  ck_assert_int_eq(errno, EINVAL);
  errno = 0;
  ck_assert_ptr_null(mempool_aligned_alloc(m, 8 * MiB, 16)); /* beyond the region */
  ck_assert_int_eq(errno, ENOMEM);
  mempool_free(m, filler);
  assert_consistent(m);
  mempool_destroy(m);
}
END_TEST

START_TEST(realloc_in_place_and_moving) {
  mempool_t *m = make(devfile("realloc"), 0, MiB - 1);
  /* Grows in place into the free successor. */
  char *a = mempool_realloc(m, NULL, 100);
  ck_assert_ptr_eq(a, mempool_base(m));
  memset(a, 'a', 100);
  char *a2 = mempool_realloc(m, a, 10000);
  ck_assert_ptr_eq(a2, a);
  ck_assert_uint_eq(mempool_usable_size(m, a), 10000);
  /* Shrinks in place. */
  ck_assert_ptr_eq(mempool_realloc(m, a, 200), a);
  ck_assert_uint_eq(mempool_usable_size(m, a), 208);
  /* Moves when the successor is taken, keeping the content. */
  char *blocker = mempool_alloc(m, 16);
  ck_assert_ptr_eq(blocker, a + 208);
  uint64_t allocs = stats_of(m).allocations;
  char *b = mempool_realloc(m, a, 5000);
  ck_assert_ptr_nonnull(b);
  ck_assert_ptr_ne(b, a);
  ck_assert(mempool_owns(m, b));
  for (int i = 0; i < 100; i++) ck_assert_int_eq(b[i], 'a');
  struct mempool_stats s = stats_of(m);
  ck_assert_uint_eq(s.allocations, allocs + 1);
  ck_assert_uint_eq(s.bytes_in_use, 5008 + 16);
  ck_assert_uint_eq(s.ranges_in_use, 2);
  /* Too big: NULL + ENOMEM, the block untouched. */
  errno = 0;
  ck_assert_ptr_null(mempool_realloc(m, b, 2 * MiB));
  ck_assert_int_eq(errno, ENOMEM);
  ck_assert_uint_eq(mempool_usable_size(m, b), 5008);
  ck_assert_int_eq(b[99], 'a');
  /* Size 0 frees. */
  ck_assert_ptr_null(mempool_realloc(m, b, 0));
  mempool_free(m, blocker);
  ck_assert_uint_eq(stats_of(m).bytes_in_use, 0);
  assert_consistent(m);
  mempool_destroy(m);
}
END_TEST

/* ---- statistics and walks ------------------------------------------------------ */

START_TEST(stats_match_allocations) {
  mempool_t *m = make(devfile("stats"), 0, 2 * MiB - 1);
  static const size_t sizes[] = {0, 1, 16, 17, 100, 4096, 5000, 65537};
  enum { N = sizeof sizes / sizeof sizes[0] };
  void *p[N];
  size_t total = 0;
  for (int i = 0; i < N; i++) {
    p[i] = mempool_alloc(m, sizes[i]);
    ck_assert_ptr_nonnull(p[i]);
    ck_assert_uint_eq(mempool_usable_size(m, p[i]), round16(sizes[i]));
    total += round16(sizes[i]);
  }
  struct mempool_stats s = stats_of(m);
  ck_assert_uint_eq(s.region_bytes, 2 * MiB);
  ck_assert_uint_eq(s.bytes_in_use, total);
  ck_assert_uint_eq(s.peak_bytes, total);
  ck_assert_uint_eq(s.bytes_free, 2 * MiB - total);
  ck_assert_uint_eq(s.largest_free, 2 * MiB - total); /* allocated from the start */
  ck_assert_uint_eq(s.allocations, N);
  ck_assert_uint_eq(s.frees, 0);
  ck_assert_uint_eq(s.failed_requests, 0);
  ck_assert_uint_eq(s.ranges_in_use, N);
  ck_assert_uint_eq(s.ranges_free, 1);
  ck_assert_uint_gt(s.metadata_bytes, 0);
  /* Free every other block: holes that cannot coalesce. */
  size_t freed = 0;
  for (int i = 0; i < N; i += 2) {
    mempool_free(m, p[i]);
    freed += round16(sizes[i]);
  }
  s = stats_of(m);
  ck_assert_uint_eq(s.bytes_in_use, total - freed);
  ck_assert_uint_eq(s.peak_bytes, total);
  ck_assert_uint_eq(s.frees, N / 2);
  ck_assert_uint_eq(s.ranges_in_use, N / 2);
  ck_assert_uint_eq(s.ranges_free, N / 2 + 1);
  for (int i = 1; i < N; i += 2) mempool_free(m, p[i]);
  s = stats_of(m);
  ck_assert_uint_eq(s.bytes_in_use, 0);
  ck_assert_uint_eq(s.frees, N);
  ck_assert_uint_eq(s.ranges_free, 1);
  ck_assert_int_eq(mempool_get_stats(NULL, &s), -1);
  ck_assert_int_eq(mempool_get_stats(m, NULL), -1);
  mempool_destroy(m);
}
END_TEST

struct seen {
  size_t n, sum, next, used;
  bool prev_free;
  size_t off[512], size[512];
  bool in_use[512];
};

static void visit(size_t offset, size_t size, bool in_use, void *ctx) {
  struct seen *w = ctx;
  ck_assert_uint_lt(w->n, 512);
  ck_assert_uint_eq(offset, w->next); /* address order, tiling the region */
  ck_assert_uint_gt(size, 0);
  ck_assert_msg(in_use || !w->prev_free, "two adjacent free ranges at %zu", offset);
  w->off[w->n] = offset;
  w->size[w->n] = size;
  w->in_use[w->n] = in_use;
  w->n++;
  w->sum += size;
  w->next = offset + size;
  w->used += in_use;
  w->prev_free = !in_use;
}

START_TEST(walk_in_address_order) {
  mempool_t *m = make(devfile("walk"), 0x40000000, 0x40000000 + MiB - 1);
  char *p[100];
  for (int i = 0; i < 100; i++) p[i] = mempool_alloc(m, 16 * (size_t)(1 + i % 7));
  for (int i = 0; i < 100; i += 3) mempool_free(m, p[i]);
  struct seen w = {0};
  ck_assert_int_eq(mempool_walk(m, visit, &w), 0);
  struct mempool_stats s = stats_of(m);
  ck_assert_uint_eq(w.sum, s.region_bytes);
  ck_assert_uint_eq(w.used, s.ranges_in_use);
  ck_assert_uint_eq(w.n, s.ranges_in_use + s.ranges_free);
  /* The in-use ranges are exactly the live blocks. */
  char *base = mempool_base(m);
  for (int i = 0; i < 100; i++) {
    size_t off = (size_t)(p[i] - base);
    size_t k = 0;
    while (k < w.n && w.off[k] != off) k++;
    if (i % 3 == 0) {
      ck_assert(k == w.n || !w.in_use[k]);
    } else {
      ck_assert_uint_lt(k, w.n);
      ck_assert(w.in_use[k]);
      ck_assert_uint_eq(w.size[k], mempool_usable_size(m, p[i]));
    }
  }
  ck_assert_int_eq(mempool_walk(m, NULL, NULL), -1);
  for (int i = 0; i < 100; i++)
    if (i % 3) mempool_free(m, p[i]);
  memset(&w, 0, sizeof w);
  mempool_walk(m, visit, &w);
  ck_assert_uint_eq(w.n, 1);
  ck_assert_uint_eq(w.size[0], MiB);
  mempool_destroy(m);
}
END_TEST

/* ---- threads and fork ---------------------------------------------------------- */

static void *churn(void *arg) {
  mempool_t *m = arg;
  void *held[64] = {0};
  unsigned seed = (unsigned)(uintptr_t)pthread_self();
  for (int i = 0; i < 20000; i++) {
    int k = (int)(rand_r(&seed) % 64);
    if (held[k]) {
      mempool_free(m, held[k]);
      held[k] = NULL;
    } else {
      held[k] = mempool_alloc(m, 1 + rand_r(&seed) % 2000);
    }
  }
  for (int k = 0; k < 64; k++) mempool_free(m, held[k]);
  return NULL;
}

START_TEST(threads_share_a_pool) {
  mempool_t *m = make(devfile("threads"), 0, 4 * MiB - 1);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) ck_assert_int_eq(pthread_create(&t[i], NULL, churn, m), 0);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  struct mempool_stats s = stats_of(m);
  ck_assert_uint_eq(s.bytes_in_use, 0);
  ck_assert_uint_eq(s.allocations, s.frees);
  assert_consistent(m);
  mempool_destroy(m);
}
END_TEST

START_TEST(fork_gives_the_child_a_copy) {
  mempool_t *m = make(devfile("fork"), 0, MiB - 1);
  char *p = mempool_alloc(m, 64);
  strcpy(p, "parent");
  pid_t pid = fork();
  if (pid == 0) {
    int ok = !strcmp(p, "parent");
    strcpy(p, "child");
    char *q = mempool_alloc(m, 64); /* may take the parent's next block: private now */
    if (q) strcpy(q, "child's");
    ok = ok && q && mempool_check(m, NULL, 0) == 0;
    _exit(ok ? 0 : 1);
  }
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed (status %#x)", st);
  ck_assert_str_eq(p, "parent");
  char *q = mempool_alloc(m, 64);
  ck_assert_ptr_eq(q, p + 64);
  ck_assert_int_ne(q[0], 'c'); /* nothing the child wrote reached the file */
  mempool_free(m, q);
  mempool_free(m, p);
  mempool_destroy(m);
}
END_TEST

/* ---- DMA: device addresses and cache maintenance --------------------------------- */

#define NO_PHYS MEMPOOL_NO_PHYS

/* Blocks of 16 B .. 1 MiB: their device address is their offset in the file
 * as /proc/self/maps says, the reverse lands on them, syncs succeed. */
/* A sync call on a cached mapping: 0 where user space can clean and
 * invalidate lines (x86, arm64), -1 EOPNOTSUPP elsewhere (32-bit ARM). */
static bool synced(int rc) {
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)
  return rc == 0;
#else
  return rc == -1 && errno == EOPNOTSUPP;
#endif
}

START_TEST(dma_addresses_on_a_file) {
  const char *dev = devfile("dma");
  mempool_t *m = make(dev, 0x200000, 0x200000 + 8 * MiB - 1);
  ck_assert_ptr_null(mempool_default()); /* not under the interposer */
  for (size_t n = 16; n <= MiB; n *= 2) {
    for (size_t k = 0; k < 2; k++) {
      size_t size = n + k * 48; /* a power of two, and not one */
      char *p = mempool_alloc(m, size);
      ck_assert_ptr_nonnull(p);
      uint64_t want = dev_offset_of(p, dev), last = dev_offset_of(p + size - 1, dev);
      ck_assert_uint_ne(want, UINT64_MAX);
      ck_assert_uint_eq(mempool_phys(m, p), want);
      ck_assert_uint_eq(mempool_phys(m, p + size - 1), last);
      ck_assert_ptr_eq(mempool_virt(m, want), p);
      ck_assert_ptr_eq(mempool_virt(m, last), p + size - 1);
      memset(p, 0x5a, size);
      ck_assert(synced(mempool_sync_for_device(m, p, size)));
      ck_assert(synced(mempool_sync_for_cpu(m, p, size)));
      ck_assert_int_eq((unsigned char)p[size - 1], 0x5a); /* a flush keeps the bytes */
    }
  }
  mempool_destroy(m);
}
END_TEST

static void expect_errno(bool failed, int e, const char *what) {
  ck_assert_msg(failed && errno == e, "%s: failed %d, errno %d (%s), want %d", what, failed, errno, strerror(errno), e);
  errno = 0;
}

START_TEST(dma_refusals) {
  mempool_t *m = make(devfile("dmabad"), 0x100000, 0x100000 + MiB - 1);
  char *base = mempool_base(m), on_stack[64];
  size_t size = MiB;
  errno = 0;
  expect_errno(mempool_phys(m, on_stack) == NO_PHYS, EINVAL, "phys of a stack address");
  expect_errno(mempool_phys(m, base + size) == NO_PHYS, EINVAL, "phys past the end");
  expect_errno(mempool_phys(m, base - 1) == NO_PHYS, EINVAL, "phys before the start");
  expect_errno(mempool_phys(NULL, base) == NO_PHYS, EINVAL, "phys of no pool");
  expect_errno(mempool_virt(m, 0x100000 - 1) == NULL, EINVAL, "virt before the window");
  expect_errno(mempool_virt(m, 0x100000 + size) == NULL, EINVAL, "virt past the window");
  expect_errno(mempool_virt(NULL, 0x100000) == NULL, EINVAL, "virt of no pool");
  expect_errno(mempool_sync_for_device(m, on_stack, 16) == -1, EINVAL, "sync of the stack");
  expect_errno(mempool_sync_for_device(m, base + size - 16, 32) == -1, EINVAL, "sync across the end");
  expect_errno(mempool_sync_for_cpu(m, base + 16, SIZE_MAX) == -1, EINVAL, "sync of SIZE_MAX bytes");
  expect_errno(mempool_sync_for_cpu(NULL, base, 16) == -1, EINVAL, "sync of no pool");
  ck_assert(synced(mempool_sync_for_device(m, base + size - 16, 16))); /* the last bytes */
  ck_assert_int_eq(mempool_sync_for_cpu(m, base, 0), 0);               /* nothing to do: 0 everywhere */
  ck_assert_ptr_eq(mempool_virt(m, 0x100000), base);
  mempool_destroy(m);

  mempool_t *a = make("anon", 0, MiB - 1);
  char *p = mempool_alloc(a, 100);
  expect_errno(mempool_phys(a, p) == NO_PHYS, EOPNOTSUPP, "phys on anon");
  expect_errno(mempool_virt(a, 0) == NULL, EOPNOTSUPP, "virt on anon");
  expect_errno(mempool_sync_for_device(a, p, 100) == -1, EOPNOTSUPP, "sync on anon");
  expect_errno(mempool_phys(a, on_stack) == NO_PHYS, EINVAL, "phys of the stack on anon");
  mempool_destroy(a);
}
END_TEST

/* A fork child's blocks are private copies: no device address there. */
START_TEST(dma_fork_child_has_copies) {
  const char *dev = devfile("dmafork");
  mempool_t *m = make(dev, 0, MiB - 1);
  char *p = mempool_alloc(m, 4096);
  uint64_t phys = mempool_phys(m, p);
  ck_assert_uint_eq(phys, dev_offset_of(p, dev));
  pid_t pid = fork();
  if (pid == 0) {
    errno = 0;
    int ok = mempool_phys(m, p) == NO_PHYS && errno == EOPNOTSUPP;
    ok = ok && dev_offset_of(p, dev) == UINT64_MAX; /* the maps agree: not the file */
    ok = ok && mempool_sync_for_device(m, p, 4096) == -1 && errno == EOPNOTSUPP;
    _exit(ok ? 0 : 1);
  }
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child saw a device address (status %#x)", st);
  ck_assert_uint_eq(mempool_phys(m, p), phys);
  mempool_destroy(m);
}
END_TEST

/* u-dma-buf through the stand-in sysfs (MEMPOOL_SYSFS_ROOT) and a device
 * node of our own: a character device is needed (a regular file is a
 * file), and /dev/zero's number gives one that maps at offset 0 (exclusive
 * window from 0) without sharing /dev/zero's own inode and its locks with
 * other processes. mknod needs root: skipped otherwise. */
static char ub_dir[600];

static void put_file(const char *name, const char *text) {
  char path[700];
  snprintf(path, sizeof path, "%s/%s", ub_dir, name);
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

static uint64_t file_u64(const char *name) {
  char path[700], buf[64] = "";
  snprintf(path, sizeof path, "%s/%s", ub_dir, name);
  FILE *f = fopen(path, "r");
  ck_assert_ptr_nonnull(f);
  ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
  fclose(f);
  return strtoull(buf, NULL, 0);
}

static void reset_controls(void) {
  static const char *const ctl[] = {"sync_offset", "sync_size", "sync_direction", "sync_for_cpu", "sync_for_device"};
  for (size_t i = 0; i < sizeof ctl / sizeof ctl[0]; i++) put_file(ctl[i], "9\n");
}

static char ub_root[512];

/* The node and the stand-in sysfs (a 4 MiB buffer at 0x3f000000), or NULL
 * when mknod is not permitted (the test is then skipped). */
static const char *udmabuf_setup(const char *phys_addr) {
  const char *node = devfile("udmabuf0"), *t = getenv("MEMPOOL_TEST_TMP");
  if (mknod(node, S_IFCHR | 0600, makedev(1, 5)) != 0) {
    fprintf(stderr, "u-dma-buf tests: mknod: %s (not root?): skipped\n", strerror(errno));
    return NULL;
  }
  snprintf(ub_root, sizeof ub_root, "%s/pubapi_%d_sys", t ? t : "/tmp", getpid());
  snprintf(ub_dir, sizeof ub_dir, "%s/dev/char/1:5", ub_root);
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", ub_dir);
  ck_assert_int_eq(system(cmd), 0);
  put_file("phys_addr", phys_addr);
  put_file("size", "4194304\n");
  put_file("dma_coherent", "0\n");
  reset_controls();
  setenv("MEMPOOL_SYSFS_ROOT", ub_root, 1);
  return node;
}

static void udmabuf_teardown(void) {
  char cmd[600];
  unsetenv("MEMPOOL_SYSFS_ROOT");
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", ub_root);
  ck_assert_int_eq(system(cmd), 0);
}

START_TEST(dma_udmabuf_addresses_and_controls) {
  const char *node = udmabuf_setup("0x000000003f000000\n");
  if (!node) return;
  mempool_t *m = make(node, 0, 4 * MiB - 1);
  char *p = mempool_alloc(m, 3000), path[PATH_MAX];
  uintptr_t s, e;
  uint64_t off;
  ck_assert(mapping_of(p + 5, &s, &e, &off, path, sizeof path));
  uint64_t dev_off = off + ((uintptr_t)p + 5 - s);
  ck_assert_uint_eq(mempool_phys(m, p + 5), 0x3f000000 + dev_off);
  ck_assert_ptr_eq(mempool_virt(m, 0x3f000000 + dev_off), p + 5);
  ck_assert_int_eq(mempool_sync_for_device(m, p + 5, 100), 0);
  ck_assert_uint_eq(file_u64("sync_offset"), dev_off);
  ck_assert_uint_eq(file_u64("sync_size"), 100);
  ck_assert_uint_eq(file_u64("sync_direction"), 1); /* DMA_TO_DEVICE */
  ck_assert_uint_eq(file_u64("sync_for_device"), 1);
  ck_assert_uint_eq(file_u64("sync_for_cpu"), 9);
  reset_controls();
  ck_assert_int_eq(mempool_sync_for_cpu(m, p, 3000), 0);
  ck_assert_uint_eq(file_u64("sync_size"), 3000);
  ck_assert_uint_eq(file_u64("sync_direction"), 2); /* DMA_FROM_DEVICE */
  ck_assert_uint_eq(file_u64("sync_for_cpu"), 1);
  ck_assert_uint_eq(file_u64("sync_for_device"), 9);
  mempool_destroy(m);
  udmabuf_teardown();
}
END_TEST

START_TEST(dma_udmabuf_refusals) {
  const char *node = udmabuf_setup("0xfffffffffff00000\n"); /* phys_addr + size would wrap */
  if (!node) return;
  struct mempool_params prm = {.device = node, .base = 0, .high = 4 * MiB - 1};
  errno = 0;
  ck_assert_ptr_null(mempool_create(&prm, NULL, 0));
  ck_assert_int_eq(errno, EINVAL);
  put_file("phys_addr", "0x3f000000\n");
  prm.high = 8 * MiB - 1; /* larger than the buffer */
  ck_assert_ptr_null(mempool_create(&prm, NULL, 0));
  ck_assert_int_eq(errno, EINVAL);
  mempool_t *m = make(node, 0, 4 * MiB - 1);
  char *p = mempool_alloc(m, 64), cmd[700];
  snprintf(cmd, sizeof cmd, "rm '%s/sync_size'", ub_dir);
  ck_assert_int_eq(system(cmd), 0);
  errno = 0;
  ck_assert_int_eq(mempool_sync_for_cpu(m, p, 64), -1); /* a control missing */
  ck_assert_int_eq(errno, EIO);
  put_file("sync_size", "9\n");
  mempool_destroy(m);
  put_file("dma_coherent", "1\n"); /* coherent: nothing to do */
  m = make(node, 0, 4 * MiB - 1);
  p = mempool_alloc(m, 64);
  ck_assert_int_eq(mempool_sync_for_device(m, p, 64), 0);
  ck_assert_uint_eq(file_u64("sync_for_device"), 9);
  mempool_destroy(m);
  udmabuf_teardown();
}
END_TEST

/* ---- traps: run fn in a child, check SIGABRT and the one-line message ------------- */

static void expect_trap(void (*fn)(void), const char *says) {
  const char *why = death_problem(fn, says);
  ck_assert_msg(why == NULL, "%s", why ? why : "");
}

static mempool_t *ta, *tb;
static char *victim;

static void do_foreign_free(void) { mempool_free(tb, victim); }
static void do_malloc_free(void) { mempool_free(ta, malloc(32)); }
static void do_double_free(void) {
  mempool_free(ta, victim);
  mempool_free(ta, victim);
}
static void do_interior_free(void) { mempool_free(ta, victim + 16); }
static void do_usable_freed(void) {
  mempool_free(ta, victim);
  mempool_usable_size(ta, victim);
}
static void do_realloc_foreign(void) { mempool_realloc(tb, victim, 10); }

START_TEST(bad_pointers_trap) {
  ta = make(devfile("trap_a"), 0, MiB - 1);
  tb = make("anon", 0, MiB - 1);
  victim = mempool_alloc(ta, 100);
  expect_trap(do_foreign_free, "not in this pool");
  expect_trap(do_malloc_free, "not in this pool");
  expect_trap(do_double_free, "double free");
  expect_trap(do_interior_free, "invalid pointer");
  expect_trap(do_usable_freed, "mempool_usable_size");
  expect_trap(do_realloc_foreign, "mempool_realloc");
  int saved = ENOTTY;
  errno = saved;
  mempool_free(ta, NULL);
  mempool_free(ta, victim);
  ck_assert_int_eq(errno, saved); /* free keeps errno */
  ck_assert_uint_eq(mempool_usable_size(ta, NULL), 0);
  mempool_destroy(ta);
  mempool_destroy(tb);
}
END_TEST

/* ---- the compatibility API -------------------------------------------------------- */

START_TEST(compat_delegate) {
  const char *dev = devfile("compat");
  setenv("MEMPOOL_DEVICE", dev, 1);
  MemAllocDelegate d, e;
  ck_assert_int_eq(init_mem_delegate(&d, 0x100000, 0x1FFFFF), 0);
  unsigned char *p = mem_delegate_calloc(&d, 100, 10);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(dev_offset_of(p, dev), 0x100000);
  for (int i = 0; i < 1000; i++) ck_assert_int_eq(p[i], 0);
  memset(p, 0xff, 1000);
  mem_delegate_free(&d, p);
  p = mem_delegate_calloc(&d, 10, 100);
  for (int i = 0; i < 1000; i++) ck_assert_int_eq(p[i], 0);
  /* Larger than the window: calloc serves it, zeroed, and free routes it. */
  unsigned char *big = mem_delegate_calloc(&d, 1, 2 * MiB);
  ck_assert_ptr_nonnull(big);
  ck_assert_uint_eq(dev_offset_of(big, dev), UINT64_MAX);
  ck_assert_int_eq(big[0] | big[2 * MiB - 1], 0);
  mem_delegate_free(&d, big);
  errno = 0;
  ck_assert_ptr_null(mem_delegate_calloc(&d, SIZE_MAX / 2, 3)); /* overflow: no one serves it */
  ck_assert_int_eq(errno, ENOMEM);
  mem_delegate_free(&d, NULL);
  mem_delegate_free(&d, p);
  /* The same range twice: the window is another's, calloc serves. */
  ck_assert_int_eq(init_mem_delegate(&e, 0x100000, 0x1FFFFF), 0);
  unsigned char *q = mem_delegate_calloc(&e, 1, 64);
  ck_assert_ptr_nonnull(q);
  ck_assert_uint_eq(dev_offset_of(q, dev), UINT64_MAX);
  mem_delegate_free(&e, q);
  destroy_mem_delegate(&e);
  errno = 0;
  ck_assert_ptr_null(mem_delegate_calloc(&e, 1, 1)); /* destroyed */
  ck_assert_int_eq(errno, EINVAL);
  destroy_mem_delegate(&d);
  destroy_mem_delegate(&d);                                        /* twice is harmless */
  ck_assert_int_eq(init_mem_delegate(&e, 0x200000, 0x100000), -1); /* a bad window is still refused */
  ck_assert_int_eq(errno, EINVAL);
  ck_assert_ptr_null(mem_delegate_calloc(&e, 1, 1));
  unsetenv("MEMPOOL_DEVICE");
}
END_TEST

int main(void) {
  Suite *s = suite_create("public_api");
  TCase *tc = tcase_create("pools");
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, create_on_file);
  tcase_add_test(tc, create_on_anon);
  tcase_add_test(tc, bad_create_parameters);
  tcase_add_test(tc, several_pools);
  tcase_add_test(tc, exhaustion_then_whole_region);
  tcase_add_test(tc, calloc_zeroes_and_overflow);
  tcase_add_test(tc, aligned);
  tcase_add_test(tc, realloc_in_place_and_moving);
  tcase_add_test(tc, stats_match_allocations);
  tcase_add_test(tc, walk_in_address_order);
  tcase_add_test(tc, threads_share_a_pool);
  tcase_add_test(tc, fork_gives_the_child_a_copy);
  tcase_add_test(tc, bad_pointers_trap);
  tcase_add_test(tc, compat_delegate);
  tcase_add_test(tc, dma_addresses_on_a_file);
  tcase_add_test(tc, dma_refusals);
  tcase_add_test(tc, dma_fork_child_has_copies);
  tcase_add_test(tc, dma_udmabuf_addresses_and_controls);
  tcase_add_test(tc, dma_udmabuf_refusals);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
