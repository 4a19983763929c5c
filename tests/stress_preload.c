/* stress_preload.c - a content-verified multi-thread stress test run under
 * the preload (preload_run.sh: a 64 MiB region on a regular file).
 *
 *   - generations of worker threads: each generation's threads are created,
 *     run for a while and exit; their blocks (kept in per-index tables and
 *     queues) are verified and freed by the next generation's threads;
 *   - short-lived helper threads are created and joined all the time;
 *   - blocks travel between threads through mutex queues and a lock-free
 *     shelf; sizes 16 B .. 8 KiB (small objects) and up to 1 MiB; realloc,
 *     calloc and aligned allocations are mixed in;
 *   - generations alternate between ~24 MiB and ~112 MiB live, so that a
 *     good part spills to jemalloc at the peaks;
 *   - the main thread forks while the workers run: the child verifies the
 *     main thread's blocks and a sample of the shelf (pool blocks there that
 *     other threads changed after fork() are counted, not failed: see
 *     child_work), frees and writes some,
 *     allocates and frees a little, and _exits; the parent checks the status
 *     and that nothing the child wrote reached it;
 *   - every block holds a pattern of its seed, verified on every handoff,
 *     realloc and free;
 *   - at the end, after all frees, a block of half the region comes from the
 *     region (in_region).
 * STRESS_SECONDS (default 24) bounds the run; STRESS_STRICT_FORK=1 fails on
 * torn fork snapshots.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>

#include "preload_util.h"

#define WORKERS     4
#define LOCAL       512
#define QCAP        1024
#define SHELF       256
#define FROZEN      48
#define GENERATIONS 8
#define HIGH_LIVE   (112ull << 20)
#define LOW_LIVE    (24ull << 20)
#define MAX_BLOCK   (1u << 20)

typedef struct blk {
  unsigned char *p;
  size_t n;
  uint32_t seed;
} blk;

/* ---- patterns: 64-bit words derived from the seed and the offset ---------- */

static inline uint64_t pat_word(uint32_t seed, size_t w) {
  uint64_t x = (uint64_t)seed * 0x9E3779B97F4A7C15ull + (uint64_t)w * 0xC2B2AE3D27D4EB4Full + 1;
  x ^= x >> 31;
  return x * 0xBF58476D1CE4E5B9ull;
}

static void pat_fill(unsigned char *p, uint32_t seed, size_t lo, size_t hi) {
  size_t i = lo;
  for (; i < hi && (i & 7); i++) p[i] = (unsigned char)(pat_word(seed, i >> 3) >> ((i & 7) * 8));
  for (; i + 8 <= hi; i += 8) {
    uint64_t w = pat_word(seed, i >> 3);
    memcpy(p + i, &w, 8);
  }
  for (; i < hi; i++) p[i] = (unsigned char)(pat_word(seed, i >> 3) >> ((i & 7) * 8));
}

/* 1 if [lo, hi) holds the pattern. */
static int pat_check(const unsigned char *p, uint32_t seed, size_t lo, size_t hi) {
  size_t i = lo;
  for (; i < hi && (i & 7); i++)
    if (p[i] != (unsigned char)(pat_word(seed, i >> 3) >> ((i & 7) * 8))) return 0;
  for (; i + 8 <= hi; i += 8) {
    uint64_t w = pat_word(seed, i >> 3), h;
    memcpy(&h, p + i, 8);
    if (h != w) return 0;
  }
  for (; i < hi; i++)
    if (p[i] != (unsigned char)(pat_word(seed, i >> 3) >> ((i & 7) * 8))) return 0;
  return 1;
}

/* Sampled: the first and last 256 bytes and 64 bytes every 16 KiB. */
static int pat_check_sampled(const unsigned char *p, uint32_t seed, size_t n) {
  if (n <= 1024) return pat_check(p, seed, 0, n);
  if (!pat_check(p, seed, 0, 256) || !pat_check(p, seed, n - 256, n)) return 0;
  for (size_t k = 16384; k + 64 < n - 256; k += 16384)
    if (!pat_check(p, seed, k, k + 64)) return 0;
  return 1;
}

/* ---- shared state -------------------------------------------------------- */

static uintptr_t g_rlo, g_rhi;       /* the region's addresses */
static int g_stop;                   /* the generation ends */
static uint64_t g_target = LOW_LIVE; /* live bytes the workers aim at */
static int64_t g_live;               /* requested bytes live */
static int64_t g_peak;
static uint64_t g_in_region, g_spilled, g_ops, g_reallocs, g_handoffs, g_threads, g_seed_ctr = 1;
static int g_prints;

#define BAD(...)                                                    \
  do {                                                              \
    __atomic_add_fetch(&g_failures, 1, __ATOMIC_RELAXED);           \
    if (__atomic_add_fetch(&g_prints, 1, __ATOMIC_RELAXED) <= 20) { \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);          \
      fprintf(stderr, __VA_ARGS__);                                 \
      fputc('\n', stderr);                                          \
    }                                                               \
  } while (0)

static inline uint64_t xs(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static inline int in_rgn(const void *p) { return (uintptr_t)p >= g_rlo && (uintptr_t)p < g_rhi; }

static void live_add(int64_t d) {
  int64_t v = __atomic_add_fetch(&g_live, d, __ATOMIC_RELAXED);
  int64_t pk = __atomic_load_n(&g_peak, __ATOMIC_RELAXED);
  while (v > pk && !__atomic_compare_exchange_n(&g_peak, &pk, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

/* ---- queues (mutex) and the shelf (lock-free slots) ----------------------- */

struct queue {
  pthread_mutex_t m;
  blk q[QCAP];
  unsigned head, tail;
};
static struct queue queues[WORKERS];

static int q_push(struct queue *q, blk b) {
  pthread_mutex_lock(&q->m);
  int ok = q->tail - q->head < QCAP;
  if (ok) q->q[q->tail++ % QCAP] = b;
  pthread_mutex_unlock(&q->m);
  return ok;
}
static int q_pop(struct queue *q, blk *b) {
  pthread_mutex_lock(&q->m);
  int ok = q->tail != q->head;
  if (ok) *b = q->q[q->head++ % QCAP];
  pthread_mutex_unlock(&q->m);
  return ok;
}

enum { SLOT_EMPTY, SLOT_BUSY, SLOT_READY };
static struct {
  int state;
  blk b;
} shelf[SHELF];

static int shelf_put(unsigned i, blk b) {
  int e = SLOT_EMPTY;
  if (!__atomic_compare_exchange_n(&shelf[i].state, &e, SLOT_BUSY, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return 0;
  shelf[i].b = b;
  __atomic_store_n(&shelf[i].state, SLOT_READY, __ATOMIC_RELEASE);
  return 1;
}
static int shelf_take(unsigned i, blk *b) {
  int e = SLOT_READY;
  if (!__atomic_compare_exchange_n(&shelf[i].state, &e, SLOT_BUSY, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return 0;
  *b = shelf[i].b;
  __atomic_store_n(&shelf[i].state, SLOT_EMPTY, __ATOMIC_RELEASE);
  return 1;
}

/* ---- blocks -------------------------------------------------------------- */

static size_t pick_size(uint64_t *s, int big_bias) {
  uint64_t r = xs(s);
  unsigned pct = (unsigned)(r % 100);
  if (pct < (big_bias ? 30u : 8u)) return 8193 + (size_t)((r >> 8) % (MAX_BLOCK - 8192)); /* large */
  if (pct < 45) return 16 + (size_t)((r >> 8) % (8192 - 16 + 1));                         /* any small */
  return 16 + (size_t)((r >> 8) % 512);                                                   /* tiny */
}

static blk new_block(uint64_t *s, int big_bias) {
  size_t n = pick_size(s, big_bias);
  blk b = {NULL, n, (uint32_t)__atomic_fetch_add(&g_seed_ctr, 1, __ATOMIC_RELAXED)};
  unsigned how = (unsigned)(xs(s) % 20);
  if (how == 0) {
    b.p = calloc(1, n);
    if (b.p && !(b.p[0] == 0 && b.p[n - 1] == 0 && b.p[n / 2] == 0)) BAD("calloc(%zu) at %p not zeroed", n, b.p);
  } else if (how == 1) {
    size_t a = (size_t)32 << (xs(s) % 8); /* 32 B .. 4 KiB */
    void *q = NULL;
    if (posix_memalign(&q, a, n) != 0) q = NULL;
    if (q && (uintptr_t)q % a) BAD("posix_memalign(%zu) gave %p", a, q);
    b.p = q;
  } else {
    b.p = malloc(n);
  }
  if (!b.p) {
    BAD("allocation of %zu bytes failed (errno %d)", n, errno);
    b.n = 0;
    return b;
  }
  if ((uintptr_t)b.p % 16) BAD("block %p of %zu bytes not 16-aligned", b.p, n);
  if (malloc_usable_size(b.p) < n) BAD("usable size %zu < %zu", malloc_usable_size(b.p), n);
  __atomic_add_fetch(in_rgn(b.p) ? &g_in_region : &g_spilled, 1, __ATOMIC_RELAXED);
  pat_fill(b.p, b.seed, 0, n);
  live_add((int64_t)n);
  return b;
}

static int check_blk(blk b, const char *when) {
  if (!pat_check(b.p, b.seed, 0, b.n)) {
    BAD("%s: block %p (%zu bytes, seed %u, %s) has wrong content", when, b.p, b.n, b.seed,
        in_rgn(b.p) ? "region" : "jemalloc");
    return 0;
  }
  return 1;
}

static void drop(blk b, const char *when) {
  if (!b.p) return;
  check_blk(b, when);
  free(b.p);
  live_add(-(int64_t)b.n);
}

/* Grows or shrinks b, checking that realloc kept the content. */
static void resize(blk *b, uint64_t *s) {
  uint64_t r = xs(s);
  size_t n;
  int over = (uint64_t)__atomic_load_n(&g_live, __ATOMIC_RELAXED) > __atomic_load_n(&g_target, __ATOMIC_RELAXED);
  switch (r % 4) {
    case 0: n = b->n / 2 + 1; break;                        /* shrink */
    case 1: n = b->n + 1 + (r >> 8) % 256; break;           /* grow a little: often in place */
    case 2: n = over ? b->n / 3 + 1 : b->n * 2 + 16; break; /* grow a lot (small -> large) */
    default: n = pick_size(s, 0); break;                    /* anything */
  }
  if (n > MAX_BLOCK) n = MAX_BLOCK;
  if (!check_blk(*b, "before realloc")) return;
  unsigned char *q = realloc(b->p, n);
  if (!q) {
    BAD("realloc(%p, %zu) failed", b->p, n);
    return;
  }
  size_t keep = b->n < n ? b->n : n;
  if (!pat_check(q, b->seed, 0, keep))
    BAD("realloc %p (%zu) -> %p (%zu, %s) lost the content", b->p, b->n, q, n, in_rgn(q) ? "region" : "jemalloc");
  if (n > b->n) pat_fill(q, b->seed, b->n, n);
  live_add((int64_t)n - (int64_t)b->n);
  b->p = q;
  b->n = n;
  __atomic_add_fetch(&g_reallocs, 1, __ATOMIC_RELAXED);
}

/* ---- workers -------------------------------------------------------------- */

static blk locals[WORKERS][LOCAL]; /* survive their thread: the next generation inherits them */

static void send_or_drop(unsigned to, blk b) {
  if (q_push(&queues[to % WORKERS], b))
    __atomic_add_fetch(&g_handoffs, 1, __ATOMIC_RELAXED);
  else
    drop(b, "queue full");
}

static void keep_local(blk *mine, uint64_t *s, blk b) {
  unsigned k = (unsigned)(xs(s) % LOCAL);
  if (mine[k].p) {
    if (xs(s) & 1)
      drop(mine[k], "evicted");
    else
      send_or_drop((unsigned)xs(s), mine[k]);
  }
  mine[k] = b;
}

static void *worker(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  blk *mine = locals[id];
  uint64_t s = 0x9E3779B97F4A7C15ull * (id + 1) + __atomic_load_n(&g_seed_ctr, __ATOMIC_RELAXED);
  uint64_t ops = 0;
  while (!__atomic_load_n(&g_stop, __ATOMIC_RELAXED)) {
    ops++;
    uint64_t target = __atomic_load_n(&g_target, __ATOMIC_RELAXED);
    int over = (uint64_t)__atomic_load_n(&g_live, __ATOMIC_RELAXED) > target;
    unsigned r = (unsigned)(xs(&s) % 100);
    if (r < 35) {
      if (over) { /* above the target: free instead */
        unsigned k = (unsigned)(xs(&s) % LOCAL);
        drop(mine[k], "free (over target)");
        mine[k].p = NULL;
        continue;
      }
      blk b = new_block(&s, target == HIGH_LIVE);
      if (!b.p) continue;
      unsigned where = (unsigned)(xs(&s) % 10);
      if (where < 5)
        keep_local(mine, &s, b);
      else if (where < 8)
        send_or_drop(id + 1 + (unsigned)(xs(&s) % (WORKERS - 1)), b);
      else if (!shelf_put((unsigned)(xs(&s) % SHELF), b))
        keep_local(mine, &s, b);
    } else if (r < 55) { /* the inbox: verify, then free, resize, or pass on */
      blk b;
      for (int k = 0; k < 8 && q_pop(&queues[id], &b); k++) {
        unsigned what = (unsigned)(xs(&s) % 4);
        if (what < 2 || over) {
          drop(b, "received");
        } else if (what == 2) {
          resize(&b, &s);
          keep_local(mine, &s, b);
        } else {
          check_blk(b, "forwarded");
          send_or_drop(id + 1 + (unsigned)(xs(&s) % (WORKERS - 1)), b);
        }
      }
    } else if (r < 68) {
      unsigned k = (unsigned)(xs(&s) % LOCAL);
      drop(mine[k], "free");
      mine[k].p = NULL;
    } else if (r < 82) {
      unsigned k = (unsigned)(xs(&s) % LOCAL);
      if (mine[k].p) resize(&mine[k], &s);
    } else if (r < 92) {
      blk b;
      if (shelf_take((unsigned)(xs(&s) % SHELF), &b)) {
        if (xs(&s) & 1)
          drop(b, "from the shelf");
        else if (check_blk(b, "from the shelf"))
          keep_local(mine, &s, b);
      }
    } else {
      unsigned k = (unsigned)(xs(&s) % LOCAL);
      if (mine[k].p && shelf_put((unsigned)(xs(&s) % SHELF), mine[k])) mine[k].p = NULL;
    }
  }
  __atomic_add_fetch(&g_ops, ops, __ATOMIC_RELAXED);
  return NULL;
}

/* A short-lived thread: allocates, hands blocks to the workers, takes some
 * from the shelf, frees its own, exits (its cache is flushed at exit). */
static void *helper(void *arg) {
  uint64_t s = (uint64_t)(uintptr_t)arg * 0xD1B54A32D192ED03ull + 7;
  blk own[32] = {{0}};
  for (int k = 0; k < 300; k++) {
    unsigned r = (unsigned)(xs(&s) % 4);
    if (r == 0) {
      uint64_t target = __atomic_load_n(&g_target, __ATOMIC_RELAXED);
      if ((uint64_t)__atomic_load_n(&g_live, __ATOMIC_RELAXED) > target) continue;
      blk b = new_block(&s, 0);
      if (b.p) send_or_drop((unsigned)xs(&s), b);
    } else if (r == 1) {
      blk b;
      if (shelf_take((unsigned)(xs(&s) % SHELF), &b)) drop(b, "helper, from the shelf");
    } else {
      unsigned i = (unsigned)(xs(&s) % 32);
      drop(own[i], "helper");
      own[i] = new_block(&s, 0);
      if (own[i].n > 65536 && own[i].p) resize(&own[i], &s);
    }
  }
  for (int i = 0; i < 32; i++) drop(own[i], "helper exit");
  return NULL;
}

/* ---- fork ----------------------------------------------------------------- */

static blk frozen[FROZEN]; /* the main thread's own blocks */
static uint64_t main_rng = 0x1234567;

static size_t frozen_size(unsigned i) {
  return i % 8 == 0 ? MAX_BLOCK : i % 8 == 1 ? 65536 + i * 1000 : 16 + (size_t)i * 97;
}

static int child_work(void) {
  for (int i = 0; i < FROZEN; i++)
    if (!pat_check(frozen[i].p, frozen[i].seed, 0, frozen[i].n)) return 10;
  /* A sample of the shelf as it was at fork(). A jemalloc block must be
   * intact (its pages are copy-on-write at fork). A pool block may have been
   * taken, freed and reused by a worker after fork() but before this child's
   * copy of the region was made (the copy is taken from the shared mapping
   * while the parent's other threads run): counted as torn, not failed,
   * unless STRESS_STRICT_FORK=1. */
  int seen = 0, torn = 0;
  for (int i = 0; i < SHELF && seen < 64; i++) {
    if (__atomic_load_n(&shelf[i].state, __ATOMIC_ACQUIRE) != SLOT_READY) continue;
    seen++;
    if (pat_check_sampled(shelf[i].b.p, shelf[i].b.seed, shelf[i].b.n)) continue;
    if (!in_rgn(shelf[i].b.p)) return 11;
    torn++;
  }
  /* Free half of the inherited blocks, overwrite the others. */
  for (int i = 0; i < FROZEN; i++) {
    if (i % 2)
      free(frozen[i].p);
    else
      pat_fill(frozen[i].p, frozen[i].seed ^ 0xFFFFu, 0, frozen[i].n);
  }
  uint64_t s = 99;
  blk mine[16] = {{0}};
  for (int k = 0; k < 200; k++) {
    unsigned i = (unsigned)(xs(&s) % 16);
    if (mine[i].p) {
      if (!pat_check(mine[i].p, mine[i].seed, 0, mine[i].n)) return 12;
      free(mine[i].p);
    }
    size_t n = k % 50 == 0 ? MAX_BLOCK : 16 + (size_t)(xs(&s) % 9000);
    mine[i] = (blk){malloc(n), n, (uint32_t)k};
    if (!mine[i].p) return 13;
    pat_fill(mine[i].p, mine[i].seed, 0, n);
  }
  for (int i = 0; i < 16; i++) {
    if (mine[i].p && !pat_check(mine[i].p, mine[i].seed, 0, mine[i].n)) return 14;
    free(mine[i].p);
  }
  for (int i = 0; i < FROZEN; i += 2)
    if (!pat_check(frozen[i].p, frozen[i].seed ^ 0xFFFFu, 0, frozen[i].n)) return 15;
  return torn ? 64 + (torn < 63 ? torn : 63) : 0;
}

static int g_forks, g_torn;

static void fork_round(void) {
  pid_t pid = fork();
  if (pid < 0) {
    BAD("fork: %s", strerror(errno));
    return;
  }
  if (pid == 0) _exit(child_work());
  int st = 0;
  pid_t w = waitpid(pid, &st, 0);
  if (w == pid && WIFEXITED(st) && WEXITSTATUS(st) >= 64) {
    g_torn += WEXITSTATUS(st) - 64;
    if (env_u64("STRESS_STRICT_FORK", 0))
      BAD("fork %d: the child saw %d pool block(s) of the shelf changed after fork()", g_forks, WEXITSTATUS(st) - 64);
  } else if (w != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    BAD("fork %d: child status %#x (exit %d: 10 inherited blocks, 11 shelf, 12-15 own blocks)", g_forks, st,
        WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  }
  g_forks++;
  for (int i = 0; i < FROZEN; i++) {
    if (!pat_check(frozen[i].p, frozen[i].seed, 0, frozen[i].n))
      BAD("fork %d: parent block %d (%zu bytes) changed after the child ran", g_forks, i, frozen[i].n);
  }
  /* Change the set between forks: replace some blocks, resize others. */
  for (int k = 0; k < 4; k++) {
    unsigned i = (unsigned)(xs(&main_rng) % FROZEN);
    if (k % 2) {
      resize(&frozen[i], &main_rng);
    } else {
      drop(frozen[i], "frozen");
      size_t n = frozen_size(i);
      frozen[i] = (blk){malloc(n), n, (uint32_t)__atomic_fetch_add(&g_seed_ctr, 1, __ATOMIC_RELAXED)};
      pat_fill(frozen[i].p, frozen[i].seed, 0, n);
      live_add((int64_t)n);
    }
  }
}

/* ---- main ----------------------------------------------------------------- */

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* With no thread running: verify everything held; free it when asked. */
static void audit(int free_all) {
  int64_t held = 0;
  for (int w = 0; w < WORKERS; w++) {
    for (int k = 0; k < LOCAL; k++) {
      if (!locals[w][k].p) continue;
      held += (int64_t)locals[w][k].n;
      if (free_all) {
        drop(locals[w][k], "final");
        locals[w][k].p = NULL;
      } else {
        check_blk(locals[w][k], "audit");
      }
    }
    struct queue *q = &queues[w];
    for (unsigned k = q->head; k != q->tail; k++) {
      held += (int64_t)q->q[k % QCAP].n;
      if (free_all)
        drop(q->q[k % QCAP], "final (queue)");
      else
        check_blk(q->q[k % QCAP], "audit (queue)");
    }
    if (free_all) q->head = q->tail = 0;
  }
  for (int i = 0; i < SHELF; i++) {
    if (shelf[i].state != SLOT_READY) continue;
    held += (int64_t)shelf[i].b.n;
    if (free_all) {
      drop(shelf[i].b, "final (shelf)");
      shelf[i].state = SLOT_EMPTY;
    } else {
      check_blk(shelf[i].b, "audit (shelf)");
    }
  }
  for (int i = 0; i < FROZEN; i++) {
    held += (int64_t)frozen[i].n;
    if (free_all)
      drop(frozen[i], "final (main)");
    else
      check_blk(frozen[i], "audit (main)");
  }
  int64_t live = __atomic_load_n(&g_live, __ATOMIC_RELAXED);
  CHECK(held == live || free_all, "held %ld bytes, counted %ld", (long)held, (long)live);
}

int main(void) {
  alarm(170); /* a deadlock fails the test instead of hanging it */
  double budget = (double)env_u64("STRESS_SECONDS", 24);
  double t0 = now();
  for (int w = 0; w < WORKERS; w++) pthread_mutex_init(&queues[w].m, NULL);

  /* Where the region is (judged once from /proc/self/maps). */
  void *probe = malloc(100);
  CHECK(in_region(probe), "the first block %p is not in the region", probe);
  g_rlo = (uintptr_t)probe - (uintptr_t)(phys_of(probe) - region_base());
  g_rhi = g_rlo + region_size();
  free(probe);

  for (unsigned i = 0; i < FROZEN; i++) {
    size_t n = frozen_size(i);
    frozen[i] = (blk){malloc(n), n, (uint32_t)__atomic_fetch_add(&g_seed_ctr, 1, __ATOMIC_RELAXED)};
    pat_fill(frozen[i].p, frozen[i].seed, 0, n);
    live_add((int64_t)n);
  }

  /* Small thread stacks: glibc keeps exited threads' stacks for reuse (up to
   * 40 MiB), each with its DTV calloc'ed from the pool. With small stacks
   * every stack stays cached, so those long-lived objects are made once,
   * early, near the start of the region, and never pin a span elsewhere
   * (which the final half-region check would be sensitive to). */
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 512u << 10);

  double per_gen = budget / GENERATIONS;
  int helpers = 0;
  for (int gen = 0; gen < GENERATIONS; gen++) {
    __atomic_store_n(&g_target, gen % 2 ? HIGH_LIVE : LOW_LIVE, __ATOMIC_RELAXED);
    __atomic_store_n(&g_stop, 0, __ATOMIC_RELAXED);
    pthread_t th[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
      if (pthread_create(&th[w], &attr, worker, (void *)(uintptr_t)w) != 0) BAD("pthread_create");
      g_threads++;
    }
    double end = now() + per_gen, next_fork = now() + per_gen / 4;
    pthread_t h;
    int have_helper = 0;
    while (now() < end) {
      if (have_helper) pthread_join(h, NULL);
      have_helper = pthread_create(&h, &attr, helper, (void *)(uintptr_t)++helpers) == 0;
      g_threads += have_helper;
      if (now() >= next_fork) {
        fork_round();
        next_fork = now() + per_gen / 4;
      }
      struct timespec ts = {0, 20 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    __atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
    for (int w = 0; w < WORKERS; w++) pthread_join(th[w], NULL);
    if (have_helper) pthread_join(h, NULL);
    audit(0);
    fprintf(stderr, "stress_preload: generation %d (target %lu MiB): live %ld MiB, peak %ld MiB, %d forks, %.1f s\n",
            gen, (unsigned long)(__atomic_load_n(&g_target, __ATOMIC_RELAXED) >> 20), (long)(g_live >> 20),
            (long)(g_peak >> 20), g_forks, now() - t0);
  }

  audit(1);
  CHECK(g_live == 0, "%ld bytes still counted live after all frees", (long)g_live);
  CHECK(g_peak >= (int64_t)(96ull << 20), "peak live only %ld MiB", (long)(g_peak >> 20));
  CHECK(g_in_region > 0 && g_spilled > 0, "blocks in the region %lu, spilled to jemalloc %lu",
        (unsigned long)g_in_region, (unsigned long)g_spilled);
  CHECK(g_forks >= GENERATIONS, "only %d forks", g_forks);

  /* Nothing stranded in spans or thread caches: half the region fits. */
  size_t half = (size_t)(region_size() / 2);
  char *big = malloc(half);
  int big_ok = big && in_region(big);
  CHECK(big_ok, "after all frees a block of half the region (%zu bytes) is not in the region (%p)", half, (void *)big);
  if (!big_ok) {
    /* Tell a full or fragmented region from a device file that was unlinked
     * under us ("(deleted)" in /proc/self/maps: another run of this test
     * with the same MEMPOOL_TEST_TMP), and what the library says (mallinfo2
     * reports the pool, this block included when it is in the region). */
    struct mallinfo2 mi = mallinfo2();
    fprintf(stderr,
            "stress_preload: the block %s the region's addresses %#lx..%#lx; pool: %zu bytes held, "
            "%zu free in %zu ranges, largest free %zu\n",
            big && in_rgn(big) ? "IS within" : "is outside", (unsigned long)g_rlo, (unsigned long)g_rhi, mi.uordblks,
            mi.fordblks, mi.ordblks, mi.keepcost);
  }
  if (big) {
    big[0] = 1;
    big[half - 1] = 2;
  }
  free(big);

  if (g_torn)
    fprintf(stderr,
            "stress_preload: note: fork children saw %d pool block(s) that other threads changed after "
            "fork() (the child's copy of the region is not a snapshot at fork time)\n",
            g_torn);
  printf(
      "stress_preload: %d generations, %lu threads, %d forks, %lu worker ops, %lu reallocs, %lu handoffs, "
      "%lu blocks in the region, %lu spilled, peak live %ld MiB, %.1f s\n",
      GENERATIONS, (unsigned long)g_threads, g_forks, (unsigned long)g_ops, (unsigned long)g_reallocs,
      (unsigned long)g_handoffs, (unsigned long)g_in_region, (unsigned long)g_spilled, (long)(g_peak >> 20),
      now() - t0);
  return finish("stress_preload");
}
