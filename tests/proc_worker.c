/* proc_worker.c - one process of the process-tree tests (process_tree.sh),
 * run under LD_PRELOAD=libmempool.so with a window that several processes
 * share chunk by chunk.
 *
 *   proc_worker TAG HOLD_MS [--fork N] [--daemon] [--big BYTES] [--stress SECONDS]
 *
 * The cycle: allocate a mix of blocks (a PRNG seeded by TAG), fill each with
 * a pattern of this process, check from /proc/self/maps that each lies in
 * the window (first and last byte, contiguous device offsets), write
 * $PROC_OUT_DIR/TAG.blocks ("physical_offset length seed" per block), hold
 * HOLD_MS while the others run, verify every block, free, and write
 * $PROC_OUT_DIR/TAG.result ("ok|fail PID FROM_NS TO_NS": during [FROM, TO]
 * of CLOCK_MONOTONIC every recorded block was live, so the script can tell
 * which processes held their blocks at the same time).
 *   --fork N   prefork server: the parent allocates and records first, then
 *              N workers TAG.wK each run the cycle; the parent checks its
 *              own blocks after they exit (their writes must not reach it).
 *   --daemon   fork, the parent _exits at once; the child (setsid) runs the
 *              cycle once the parent is gone.
 *   --big B    the cycle with one block of B bytes.
 *   --stress S random malloc/calloc/realloc/free for S seconds, every live
 *              block verified before it is resized or freed; blocks may
 *              spill to jemalloc (the window is small and shared).
 * Exit status 0 when every check passed. */
#include <errno.h>
#include <sys/wait.h>
#include <time.h>

#include "preload_util.h"

static const char *out_dir(void) {
  const char *d = getenv("PROC_OUT_DIR");
  return d && *d ? d : ".";
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void sleep_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

/* FNV-1a: the tag names the PRNG stream and the fill pattern. */
static uint64_t tag_hash(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
  return h;
}

static uint64_t rng_next(uint64_t *s) { /* xorshift64* */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545f4914f6cdd1dull;
}

/* Log-uniform sizes from 16 B to 64 KiB. */
static size_t rand_size(uint64_t *rng) {
  unsigned e = (unsigned)(rng_next(rng) % 12);
  size_t lo = (size_t)16 << e;
  size_t n = lo + rng_next(rng) % lo;
  return n > 65536 ? 65536 : n;
}

/* The pattern is a function of (seed, position): a block's prefix stays
 * checkable after realloc, and two processes (whose seeds differ in every
 * bit of the tag hash) never write the same bytes. */
static inline uint64_t word_of(uint64_t seed, size_t i) { return seed ^ (i * 0x9e3779b97f4a7c15ull); }

static void pfill(void *p, size_t n, uint64_t seed) {
  uint64_t *w = p; /* blocks are 16-byte aligned */
  size_t words = n / 8;
  for (size_t i = 0; i < words; i++) w[i] = word_of(seed, i);
  uint64_t last = word_of(seed, words);
  memcpy((char *)p + words * 8, &last, n % 8);
}

/* Offset of the first wrong byte in p[0, n), or -1. */
static long pcheck(const void *p, size_t n, uint64_t seed) {
  const uint64_t *w = p;
  size_t words = n / 8;
  for (size_t i = 0; i < words; i++)
    if (w[i] != word_of(seed, i)) return (long)(i * 8);
  uint64_t last = word_of(seed, words);
  if (memcmp((const char *)p + words * 8, &last, n % 8) != 0) return (long)(words * 8);
  return -1;
}

/* ---- a set of blocks --------------------------------------------------- */

typedef struct {
  char *p;
  size_t n;
  uint64_t seed;
  uint64_t phys; /* 0 when not in the window */
} blk;

typedef struct {
  blk b[256];
  int count;
  const char *tag;
} blkset;

/* 1 when [p, p+n) lies in the window at contiguous device offsets: a block
 * spanning chunks must get chunks mapped in device order. */
static int placed(const char *p, size_t n, uint64_t *phys) {
  *phys = 0;
  if (!in_region(p) || !in_region(p + n - 1)) return 0;
  uint64_t first = phys_of(p), last = phys_of(p + n - 1);
  if (last - first != n - 1) return 0;
  *phys = first;
  return 1;
}

static void add_block(blkset *s, size_t n, uint64_t seed) {
  blk *b = &s->b[s->count++];
  b->n = n;
  b->seed = seed;
  b->p = malloc(n);
  CHECK(b->p != NULL, "%s: malloc(%zu) failed", s->tag, n);
  if (!b->p) {
    s->count--;
    return;
  }
  pfill(b->p, n, seed);
}

/* count blocks (two of 256 KiB when count > 2), or one of big bytes. */
static void alloc_set(blkset *s, const char *tag, int count, size_t big) {
  uint64_t h = tag_hash(tag), rng = h | 1;
  s->count = 0;
  s->tag = tag;
  if (big) {
    add_block(s, big, h);
  } else {
    for (int i = 0; i < count; i++)
      add_block(s, count > 2 && i < 2 ? 256u << 10 : rand_size(&rng), h ^ ((uint64_t)i << 48 | (uint64_t)i));
  }
  /* Placement judged after all allocations: the fills are done, nothing moves. */
  for (int i = 0; i < s->count; i++) {
    blk *b = &s->b[i];
    CHECK(placed(b->p, b->n, &b->phys),
          "%s: block %d (%p, %zu bytes) not in the window "
          "at contiguous offsets (phys %#llx)",
          tag, i, (void *)b->p, b->n, (unsigned long long)phys_of(b->p));
  }
}

/* TAG.blocks, written to a temporary name and renamed: the script polls for it. */
static void record_set(const blkset *s) {
  char path[PATH_MAX], part[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s.blocks", out_dir(), s->tag);
  snprintf(part, sizeof part, "%s.part", path);
  int fd = open(part, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0, "%s: cannot create %s: %s", s->tag, part, strerror(errno));
  if (fd < 0) return;
  for (int i = 0; i < s->count; i++)
    dprintf(fd, "%#llx %zu %#llx\n", (unsigned long long)s->b[i].phys, s->b[i].n, (unsigned long long)s->b[i].seed);
  close(fd);
  CHECK(rename(part, path) == 0, "%s: rename %s: %s", s->tag, part, strerror(errno));
}

static void verify_set(const blkset *s, const char *when) {
  for (int i = 0; i < s->count; i++) {
    const blk *b = &s->b[i];
    long bad = pcheck(b->p, b->n, b->seed);
    CHECK(bad < 0, "%s: %s: block %d (phys %#llx, %zu bytes) wrong at byte %ld", s->tag, when, i,
          (unsigned long long)b->phys, b->n, bad);
  }
}

static void free_set(blkset *s) {
  for (int i = 0; i < s->count; i++) free(s->b[i].p);
  s->count = 0;
}

static void write_result(const char *tag, uint64_t from, uint64_t to) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s.result", out_dir(), tag);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  dprintf(fd, "%s %d %llu %llu\n", g_failures ? "fail" : "ok", (int)getpid(), (unsigned long long)from,
          (unsigned long long)to);
  close(fd);
}

/* ---- modes -------------------------------------------------------------- */

static blkset g_set, g_pre; /* static: 256 entries each, off the stack */

static int cycle(const char *tag, long hold_ms, size_t big) {
  alloc_set(&g_set, tag, 200, big);
  uint64_t from = now_ns();
  record_set(&g_set);
  sleep_ms(hold_ms);
  uint64_t to = now_ns();
  verify_set(&g_set, "after the hold");
  free_set(&g_set);
  write_result(tag, from, to);
  return finish(tag);
}

static int prefork(const char *tag, long hold_ms, int workers) {
  alloc_set(&g_pre, tag, 64, 0);
  uint64_t from = now_ns();
  record_set(&g_pre);
  fflush(NULL); /* no buffered output duplicated in the workers */
  pid_t pids[64];
  static char wtag[64][128];
  for (int k = 0; k < workers; k++) {
    snprintf(wtag[k], sizeof wtag[k], "%s.w%d", tag, k);
    pids[k] = fork();
    CHECK(pids[k] >= 0, "fork: %s", strerror(errno));
    if (pids[k] == 0) {
      /* The worker's copy of the parent's blocks: intact, and private (what
       * it writes there must not reach the parent). */
      verify_set(&g_pre, "inherited by a worker");
      for (int i = 0; i < g_pre.count; i += 2) pfill(g_pre.b[i].p, g_pre.b[i].n, ~g_pre.b[i].seed);
      exit(cycle(wtag[k], hold_ms, 0));
    }
  }
  for (int k = 0; k < workers; k++) {
    int st = 0;
    if (pids[k] <= 0) continue;
    CHECK(waitpid(pids[k], &st, 0) == pids[k] && WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %s failed (status %#x)",
          wtag[k], st);
  }
  uint64_t to = now_ns();
  verify_set(&g_pre, "parent after its workers");
  free_set(&g_pre);
  write_result(tag, from, to);
  return finish(tag);
}

static int daemonize(const char *tag, long hold_ms) {
  char pretag[128];
  snprintf(pretag, sizeof pretag, "%s.pre", tag);
  alloc_set(&g_pre, pretag, 32, 0); /* what a daemon allocates before it detaches */
  fflush(NULL);
  pid_t parent = getpid(), pid = fork();
  if (pid < 0) {
    perror("fork");
    return 1;
  }
  if (pid > 0) _exit(0);
  setsid();
  alarm(120); /* alarms are not inherited */
  /* Reparenting comes after the exiting parent closed its files: once
   * getppid() changed, its chunks are free for anyone. */
  for (int i = 0; i < 10000 && getppid() == parent; i++) sleep_ms(1);
  CHECK(getppid() != parent, "%s: the parent did not exit", tag);
  verify_set(&g_pre, "inherited, parent gone");
  int rc = cycle(tag, hold_ms, 0);
  /* Our copies are private: the chunks the parent gave back (which the
   * cycle may just have claimed and filled) did not change them. */
  verify_set(&g_pre, "inherited, after the cycle");
  free_set(&g_pre);
  return g_failures ? 1 : rc;
}

/* ---- stress -------------------------------------------------------------- */

enum { SLOTS = 256 };
static blk g_slot[SLOTS];

static void stress_check(int i, const char *when) {
  blk *b = &g_slot[i];
  long bad = pcheck(b->p, b->n, b->seed);
  CHECK(bad < 0, "stress: %s slot %d (%p, phys %#llx, %s, %zu bytes) wrong at byte %ld", when, i, (void *)b->p,
        (unsigned long long)phys_of(b->p), in_region(b->p) ? "in the window" : "outside", b->n, bad);
}

static size_t stress_size(uint64_t *rng) { return rng_next(rng) % 64 == 0 ? (size_t)(256u << 10) : rand_size(rng); }

static void stress_new(int i, uint64_t *rng, uint64_t seed) {
  blk *b = &g_slot[i];
  b->n = stress_size(rng);
  b->seed = seed;
  if (rng_next(rng) % 8 == 0) {
    b->p = calloc(1, b->n);
    CHECK(b->p != NULL, "stress: calloc(%zu)", b->n);
    if (!b->p) return;
    for (size_t k = 0; k < b->n; k++)
      if (b->p[k]) {
        CHECK(0, "stress: calloc(%zu) byte %zu not zero (phys %#llx)", b->n, k, (unsigned long long)phys_of(b->p));
        break;
      }
  } else {
    b->p = malloc(b->n);
    CHECK(b->p != NULL, "stress: malloc(%zu)", b->n);
    if (!b->p) return;
  }
  pfill(b->p, b->n, seed);
}

static void stress_realloc(int i, uint64_t *rng) {
  blk *b = &g_slot[i];
  stress_check(i, "before realloc");
  size_t n = stress_size(rng);
  char *q = realloc(b->p, n);
  CHECK(q != NULL, "stress: realloc(%zu)", n);
  if (!q) return; /* b->p still valid */
  b->p = q;
  long bad = pcheck(q, n < b->n ? n : b->n, b->seed);
  CHECK(bad < 0, "stress: realloc %zu -> %zu lost the content at byte %ld", b->n, n, bad);
  b->n = n;
  pfill(q, n, b->seed);
}

static int stress(const char *tag, long seconds) {
  uint64_t h = tag_hash(tag), rng = h | 1, ops = 0, gen = 0, sampled = 0, inside = 0;
  uint64_t end = now_ns() + (uint64_t)seconds * 1000000000u;
  while (now_ns() < end && g_failures < 20) {
    for (int r = 0; r < 1024; r++, ops++) {
      int i = (int)(rng_next(&rng) % SLOTS);
      unsigned op = (unsigned)(rng_next(&rng) % 8);
      if (!g_slot[i].p) {
        stress_new(i, &rng, h ^ (++gen << 20));
        if (g_slot[i].p && gen % 64 == 0) { /* placement sampled: maps reading is slow */
          sampled++;
          inside += (uint64_t)in_region(g_slot[i].p);
        }
      } else if (op < 2) {
        stress_realloc(i, &rng);
      } else {
        stress_check(i, "before free");
        free(g_slot[i].p);
        g_slot[i].p = NULL;
      }
    }
    for (int i = 0; i < SLOTS; i++)
      if (g_slot[i].p) stress_check(i, "periodic");
  }
  for (int i = 0; i < SLOTS; i++) {
    if (!g_slot[i].p) continue;
    stress_check(i, "at the end");
    free(g_slot[i].p);
    g_slot[i].p = NULL;
  }
  fprintf(stderr, "stress %s: %llu operations, %llu of %llu sampled blocks in the window\n", tag,
          (unsigned long long)ops, (unsigned long long)inside, (unsigned long long)sampled);
  write_result(tag, 0, 0);
  return finish(tag);
}

/* BYTES with an optional K, M or G suffix. */
static size_t parse_size(const char *s) {
  char *end;
  size_t n = strtoull(s, &end, 0);
  switch (*end) {
    case 'G':
    case 'g': return n << 30;
    case 'M':
    case 'm': return n << 20;
    case 'K':
    case 'k': return n << 10;
    default: return n;
  }
}

static int usage(void) {
  fprintf(stderr, "usage: proc_worker TAG HOLD_MS [--fork N] [--daemon] [--big BYTES] [--stress SECONDS]\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 3) return usage();
  const char *tag = argv[1];
  long hold_ms = strtol(argv[2], NULL, 0);
  int workers = 0, daemon_mode = 0;
  long stress_s = -1;
  size_t big = 0;
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "--fork") && i + 1 < argc)
      workers = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--daemon"))
      daemon_mode = 1;
    else if (!strcmp(argv[i], "--big") && i + 1 < argc)
      big = parse_size(argv[++i]);
    else if (!strcmp(argv[i], "--stress") && i + 1 < argc)
      stress_s = strtol(argv[++i], NULL, 0);
    else
      return usage();
  }
  if (workers < 0 || workers > 64) return usage();
  alarm(120); /* a hang fails the test instead of stalling it */
  if (stress_s >= 0) return stress(tag, stress_s);
  if (workers) return prefork(tag, hold_ms, workers);
  if (daemon_mode) return daemonize(tag, hold_ms);
  return cycle(tag, hold_ms, big);
}
