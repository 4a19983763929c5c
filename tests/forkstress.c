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

static atomic_bool stop;
static atomic_long forks, failures;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void fork_once(void) {
  pid_t pid = fork();
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

static void on_timer(int sig) {
  (void)sig;
  int saved = errno;
  fork_once(); /* fork and waitpid are async-signal-safe */
  errno = saved;
}

static int signal_mode(double seconds) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_timer;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = {{0, 2000}, {0, 2000}}; /* every 2 ms */
  setitimer(ITIMER_REAL, &it, NULL);
  unsigned seed = 7;
  void *keep[64] = {0};
  for (double end = now() + seconds; now() < end;) {
    unsigned i = (seed = seed * 1103515245u + 12345u) >> 26;
    free(keep[i]);
    keep[i] = malloc(((seed >> 8) & 1 ? 64 : 40000) + (seed & 1023));
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  for (int i = 0; i < 64; i++) free(keep[i]);
  return 0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  double seconds = argc > 2 ? atof(argv[2]) : 2;
  int rc;
  if (!strcmp(mode, "stdio"))
    rc = stdio_mode(seconds);
  else if (!strcmp(mode, "signal"))
    rc = signal_mode(seconds);
  else {
    fprintf(stderr, "usage: forkstress stdio|signal SECONDS\n");
    return 2;
  }
  long n = atomic_load(&forks), bad = atomic_load(&failures);
  printf("%s: %ld forks, %ld failed\n", mode, n, bad);
  return rc || bad || n < 10 ? 1 : 0;
}
