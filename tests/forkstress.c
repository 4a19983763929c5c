/* forkstress.c MODE SECONDS - fork against the library's locks; exit 0 when
 * every fork completed and nothing hung (the harness, fork_test.sh, kills
 * a hung run). Also run without the preload: the test itself must pass on
 * glibc alone.
 *   stdio   glibc's tst-malloc-fork-deadlock shape (bug 19431): one thread
 *           in fflush(NULL) (the stdio list lock, then each stream's lock),
 *           one writing to an open_memstream stream (its lock held while it
 *           reallocs), one in getdelim on a long line (the same), one
 *           forking; plus plain malloc/free threads
 *   signal  glibc's tst-mallocfork2 shape (bug 24161): one thread that
 *           mallocs and frees while a timer signal's handler forks (the
 *           child _exits, the handler waits for it)
 *   resume  the same, but the child returns from the handler into the
 *           interrupted malloc or free, checks the blocks it inherited,
 *           allocates and writes its own, and frees everything; the parent
 *           checks that none of its blocks was overwritten
 *   nested  signal's, with the loop forking too: the handler's fork may
 *           interrupt a fork (its prepare or parent handlers)
 *   api     (forkstress_api, linked with libmempool_api, FORKSTRESS_DEVICE
 *           a file) resume's blocks from an API pool, destroyed and created
 *           again every 64 blocks: the child's pool is its own copy
 * The timer is one-shot, re-armed by the handler: however long a fork
 * takes, the main thread runs between two of them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "preload_util.h"

static atomic_bool stop;
static atomic_long forks, failures;
static double fork_seconds, fork_max; /* the forking threads' time in fork() */

static double now(void);
/* fork(), timed. */
static pid_t timed_fork(void) {
  double t0 = now();
  pid_t pid = fork();
  if (pid != 0) {
    double d = now() - t0;
    fork_seconds += d; /* one forking thread, or the handler with its signal blocked */
    if (d > fork_max) fork_max = d;
  }
  return pid;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void fork_once(void) {
  pid_t pid = timed_fork();
  if (pid == 0) _exit(0);
  int st = 0;
  while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    atomic_fetch_add(&failures, 1);
  else
    atomic_fetch_add(&forks, 1);
}

static void *flusher(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) fflush(NULL);
  return NULL;
}

static void *stream_writer(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) continue;
    for (int i = 0; i < 3000; i++) fprintf(f, "line %d of a stream that grows by realloc\n", i);
    fclose(f);
    free(buf);
  }
  return NULL;
}

/* getdelim on a stream with one long line: it reallocs its buffer again
 * and again while holding the stream's lock (glibc's own test does this). */
static void *line_reader(void *arg) {
  (void)arg;
  static char text[1 << 20];
  memset(text, 'x', sizeof text);
  while (!atomic_load(&stop)) {
    FILE *f = fmemopen(text, sizeof text, "r");
    if (!f) continue;
    char *line = NULL;
    size_t cap = 0;
    while (getdelim(&line, &cap, '\n', f) > 0) {
    }
    free(line);
    fclose(f);
  }
  return NULL;
}

static void *churn(void *arg) {
  unsigned seed = (unsigned)(uintptr_t)arg;
  void *keep[64] = {0};
  while (!atomic_load(&stop)) {
    unsigned i = (seed = seed * 1103515245u + 12345u) >> 26;
    free(keep[i]);
    keep[i] = malloc(((seed >> 8) & 1 ? 64 : 40000) + (seed & 1023));
  }
  for (int i = 0; i < 64; i++) free(keep[i]);
  return NULL;
}

static int stdio_mode(double seconds) {
  pthread_t t[5];
  pthread_create(&t[0], NULL, flusher, NULL);
  pthread_create(&t[1], NULL, stream_writer, NULL);
  pthread_create(&t[2], NULL, line_reader, NULL);
  pthread_create(&t[3], NULL, churn, (void *)1);
  pthread_create(&t[4], NULL, churn, (void *)2);
  for (double end = now() + seconds; now() < end;) fork_once();
  atomic_store(&stop, true);
  for (int i = 0; i < 5; i++) pthread_join(t[i], NULL);
  return 0;
}

/* ---- signal and resume: fork from a timer signal's handler ------------ */

enum { SLOTS = 64 };
static char *volatile keep[SLOTS]; /* a slot is set once its block is filled */
static size_t sizes[SLOTS];
static volatile sig_atomic_t resumed_child; /* resume: set in the child's handler */
static volatile unsigned current;           /* the slot the loop is renewing: the child's own block */
static bool resume;
static bool nested; /* the loop forks too: the handler's fork may interrupt it */

/* Where the blocks come from: malloc, or (forkstress_api) a pool of the
 * API that the loop destroys and creates again and again. */
static void *(*x_alloc)(size_t) = malloc;
static void (*x_free)(void *) = free;
static void (*x_renew)(void);                  /* NULL, or: every block dropped, the pool made anew */
static bool x_inherited(void) { return true; } /* are x_alloc's blocks in the child from what it inherited? */
static bool (*x_from_parent)(void) = x_inherited;

#ifdef WITH_API
#include "mempool.h"
static mempool_t *volatile pool;
static void *api_alloc(size_t n) { return pool ? mempool_alloc(pool, n) : NULL; }
static void api_free(void *p) { mempool_free(pool, p); }
static mempool_t *pool_at_fork; /* the child's: the pool the parent had */
/* A pool the child made itself (resuming a renewal) is its own range. */
static bool api_from_parent(void) { return pool && pool == pool_at_fork; }
static void api_renew(void) {
  mempool_t *old = pool;
  pool = NULL;
  mempool_destroy(old);
  struct mempool_params prm = {.device = getenv("FORKSTRESS_DEVICE"), .base = 0, .high = 0x3FFFFFF};
  char err[200];
  pool = mempool_create(&prm, err, sizeof err);
  if (!pool && !resumed_child) { /* a child resuming a renewal: the parent holds the range (EBUSY) */
    fprintf(stderr, "forkstress: mempool_create: %s\n", err);
    exit(1);
  }
}
#endif

static void arm_timer(unsigned us) {
  struct itimerval it = {{0, 0}, {0, us}}; /* one shot: the main thread runs between two forks */
  setitimer(ITIMER_REAL, &it, NULL);
}

static void on_timer(int sig) {
  (void)sig;
  int saved = errno;
  if (resume) {
    pid_t pid = timed_fork(); /* the child returns from here into the interrupted call */
    if (pid == 0) {
#ifdef WITH_API
      pool_at_fork = pool;
#endif
      resumed_child = 1;
      return;
    }
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    atomic_fetch_add(pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 ? &failures : &forks, 1);
  } else {
    fork_once(); /* fork and waitpid are async-signal-safe */
  }
  arm_timer(1000 + (unsigned)(now() * 1e6) % 2000);
  errno = saved;
}

static size_t size_for(unsigned seed) {
  if ((seed & 15) == 0) return 300000 + (seed >> 4) % 1200000; /* chunks claimed and given back */
  return ((seed >> 8) & 1 ? 64 : 40000) + (seed & 1023);
}

/* Is p in a mapping of the region's file (/proc/self/maps)? A fork child's
 * inherited blocks never are: they are private copies. */
static bool on_device(const void *p) {
  const char *dev = getenv(x_renew ? "FORKSTRESS_DEVICE" : "MEMPOOL_DEVICE");
  char want[PATH_MAX], path[PATH_MAX];
  uintptr_t s, e;
  uint64_t off;
  return dev && realpath(dev, want) && mapping_of(p, &s, &e, &off, path, sizeof path) && !strcmp(path, want);
}

/* The child of a fork that interrupted malloc or free: every block it
 * inherited holds what the parent wrote, in a private copy, it allocates,
 * writes and frees
 * blocks of its own (which must not be the parent's memory: the parent
 * checks its blocks), then frees what it inherited. */
static void child_work(void) {
  int bad = 0;
  for (unsigned i = 0; i < SLOTS; i++)
    if (keep[i] && (!verify(keep[i], sizes[i], i) || (i != current && on_device(keep[i])))) bad = 1;
  char *mine[32];
  for (unsigned j = 0; j < 32; j++) {
    size_t n = size_for(j * 2654435761u);
    mine[j] = x_alloc(n);
    if (mine[j] && x_renew && x_from_parent() && on_device(mine[j])) bad = 1; /* the pool is the child's copy */
    if (mine[j])
      memset(mine[j], 0xC5, n);
    else if (!x_renew)
      _exit(3); /* a pool may be gone (interrupted renewal) or full */
  }
  for (unsigned j = 0; j < 32; j++) x_free(mine[j]);
  for (unsigned i = 0; i < SLOTS; i++) x_free(keep[i]);
  _exit(bad ? 2 : 0);
}

/* Every block checked and freed; how many were overwritten. */
static long drop_all(void) {
  long bad = 0;
  for (unsigned i = 0; i < SLOTS; i++) {
    char *p = keep[i];
    keep[i] = NULL;
    if (p && !verify(p, sizes[i], i)) bad++;
    x_free(p);
  }
  return bad;
}

static int signal_mode(double seconds, bool resuming) {
  resume = resuming;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_timer;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  arm_timer(2000);
  unsigned seed = 7;
  long corrupted = 0;
  if (x_renew) x_renew();
  /* seconds, and on a busy machine longer (up to four times) until 20 forks */
  for (double start = now();
       now() < start + seconds || (atomic_load(&forks) + atomic_load(&failures) < 20 && now() < start + 4 * seconds);) {
    if (resumed_child) child_work();
    if (nested) fork_once();
    if (x_renew && (seed & 63) == 0) { /* every block checked, the pool made anew */
      corrupted += drop_all();
      x_renew();
    }
    unsigned i = current = (seed = seed * 1103515245u + 12345u) >> 26;
    char *old = keep[i];
    keep[i] = NULL;
    if (old && !verify(old, sizes[i], i)) corrupted++;
    x_free(old);
    size_t n = size_for(seed);
    char *p = x_alloc(n);
    if (!p) continue;
    fill(p, n, i); /* preload_util.h */
    sizes[i] = n;
    keep[i] = p;
  }
  arm_timer(0);
  signal(SIGALRM, SIG_IGN);
  if (resumed_child) child_work(); /* the last signal came after the loop's test */
  corrupted += drop_all();
  if (corrupted) printf("%ld blocks of the parent were overwritten\n", corrupted);
  return corrupted != 0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  double seconds = argc > 2 ? atof(argv[2]) : 2;
  int rc;
  if (!strcmp(mode, "stdio"))
    rc = stdio_mode(seconds);
  else if (!strcmp(mode, "signal") || !strcmp(mode, "resume"))
    rc = signal_mode(seconds, !strcmp(mode, "resume"));
  else if (!strcmp(mode, "nested")) {
    nested = true;
    rc = signal_mode(seconds, false);
  }
#ifdef WITH_API
  else if (!strcmp(mode, "api")) {
    x_alloc = api_alloc;
    x_free = api_free;
    x_renew = api_renew;
    x_from_parent = api_from_parent;
    rc = signal_mode(seconds, true);
  }
#endif
  else {
    fprintf(stderr, "usage: forkstress stdio|signal|resume|nested|api SECONDS\n");
    return 2;
  }
  long n = atomic_load(&forks), bad = atomic_load(&failures);
  printf("%s: %ld forks, %ld failed; fork() took %.3f ms on average, %.3f ms at most\n", mode, n, bad,
         n + bad ? fork_seconds * 1e3 / (double)(n + bad) : 0.0, fork_max * 1e3);
  return rc || bad || n < 10 ? 1 : 0;
}
