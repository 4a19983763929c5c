/* A fork handler the program registered before its first allocation runs
 * after the library's own prepare handler (prepare handlers run in reverse
 * order of registration) and may allocate there: in a process of one
 * thread the library holds no lock across fork (each is only tried, then
 * given back), so that malloc is served from the region instead of
 * waiting forever on the pool lock; the child still gets its private copy
 * and allocates device memory of its own. */
#include <pthread.h>
#include <sys/wait.h>

#include "preload_util.h"

static void *g_in_prepare;
static int g_prepared;

static void prepare(void) {
  char *p = malloc(100000); /* a range block: the pool lock */
  if (p) memset(p, 'H', 100000);
  g_in_prepare = p;
  free(p);
  g_prepared++;
}

int main(void) {
  alarm(60); /* a deadlock fails the test instead of hanging it */
  CHECK(pthread_atfork(prepare, NULL, NULL) == 0, "pthread_atfork");
  char *b = malloc(5000); /* the first request: the library registers its handlers now */
  fill(b, 5000, 11);
  CHECK(in_region(b), "block not in the region");
  for (int k = 0; k < 3; k++) {
    pid_t pid = fork();
    if (pid == 0) {
      char *mine = malloc(5000);
      int ok = verify(b, 5000, 11) && mine && in_region(mine);
      fill(b, 5000, 12); /* its private copy */
      free(mine);
      _exit(ok ? 0 : 3);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork %d: child status %#x", k, st);
  }
  CHECK(g_prepared == 3, "prepare ran %d times", g_prepared);
  CHECK(g_in_prepare && in_region(g_in_prepare), "prepare's block %p not in the region", g_in_prepare);
  CHECK(verify(b, 5000, 11), "the child wrote the parent's block");
  free(b);
  return finish("preload_atfork");
}
