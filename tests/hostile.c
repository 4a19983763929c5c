/* hostile.c MODE - what hostile_test.sh runs under the preload, one case per
 * mode; exit 0 when the case behaved:
 *   cancel-fork  a thread with a pending deferred cancel calls fork(): no
 *                deadlock, the child and the parent allocate afterwards
 *   cancel-log   with MEMPOOL_LOG=3, malloc that logs is no cancellation
 *                point: the call returns, the cancel fires at the next one
 *   title        main overwrites its whole environment block (as
 *                setproctitle does), then allocates: the shell checks the
 *                statistics still reach MEMPOOL_STATS with the device name
 *   cancel-stats malloc_stats() with a pending cancel: no cancellation point
 *   spill N      allocates and frees N blocks of 1 MiB (log lines at level 3)
 *   api-trap     (built as hostile_api, linked with libmempool_api.so, not
 *                preloaded) a double free in an anon pool: the trap's line
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <sys/wait.h>

#include "preload_util.h"
#ifdef HOSTILE_API
#include "mempool.h"
#endif

extern char **environ;
static void *volatile sink;
static volatile int returned;
static volatile pid_t child = -1;

static void *cancel_fork(void *arg) {
  (void)arg;
  pthread_cancel(pthread_self()); /* pending: fork is no cancellation point */
  pid_t pid = fork();
  if (pid == 0) {
    sink = malloc(100);
    free(sink);
    _exit(sink ? 0 : 3);
  }
  child = pid; /* waited for by main: waitpid is a cancellation point */
  sink = malloc(200);
  free(sink);
  returned = pid > 0;
  pthread_testcancel();
  return NULL;
}

static void *cancel_log(void *arg) {
  (void)arg;
  pthread_cancel(pthread_self());
  sink = malloc(256 << 20); /* larger than the region: a level-3 line */
  free(sink);
  returned = 1;
  pthread_testcancel();
  return NULL;
}

static void *cancel_stats(void *arg) {
  (void)arg;
  pthread_cancel(pthread_self());
  malloc_stats();
  returned = 1;
  pthread_testcancel();
  return NULL;
}

static int run_thread(void *(*fn)(void *)) {
  pthread_t t;
  void *ret = NULL;
  alarm(20);         /* a deadlock is a failure, not a hung suite */
  sink = malloc(64); /* the pool is in use before the thread */
  free(sink);
  CHECK(pthread_create(&t, NULL, fn, NULL) == 0, "pthread_create");
  CHECK(pthread_join(t, &ret) == 0, "pthread_join");
  CHECK(ret == PTHREAD_CANCELED, "the thread was not cancelled at its cancellation point");
  CHECK(returned, "the library's call did not return (cancelled inside it)");
  if (child > 0) {
    int st = 0;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the fork child: status %#x", st);
  }
  sink = malloc(300);
  CHECK(sink != NULL, "malloc after the thread");
  free(sink);
  return g_failures ? 1 : 0;
}

static int title(void) {
  for (char **e = environ; *e; e++) memset(*e, 'X', strlen(*e));
  for (int i = 0; i < 1000; i++) {
    sink = malloc((size_t)(i % 50) * 16 + 16);
    free(sink);
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (!strcmp(mode, "cancel-fork")) return run_thread(cancel_fork);
  if (!strcmp(mode, "cancel-log")) return run_thread(cancel_log);
  if (!strcmp(mode, "cancel-stats")) return run_thread(cancel_stats);
  if (!strcmp(mode, "title")) return title();
#ifdef HOSTILE_API
  if (!strcmp(mode, "api-trap")) {
    struct mempool_params prm = {.device = "anon", .base = 0, .high = 0xFFFFFF};
    char err[256];
    mempool_t *pool = mempool_create(&prm, err, sizeof err);
    if (!pool) return 3;
    void *p = mempool_alloc(pool, 100);
    mempool_free(pool, p);
    mempool_free(pool, p); /* the trap: one line, SIGABRT */
    return 4;
  }
#endif
  if (!strcmp(mode, "spill")) {
    for (int i = 0, n = argc > 2 ? atoi(argv[2]) : 1; i < n; i++) free(sink = malloc(1 << 20));
    return 0;
  }
  fprintf(stderr, "usage: hostile cancel-fork|cancel-log|cancel-stats|title|spill N|api-trap\n");
  return 2;
}
