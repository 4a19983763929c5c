/* preload_lazy.c MODE [LIB] - jemalloc (the fallback) is linked into the
 * library and starts at its first use (issue 11, process start). Run with
 * MEMPOOL_MAX_SIZE=1K (preload_run.sh): blocks above 1 KiB go to jemalloc.
 *   none     nothing allocated: the region's file is not created, nothing
 *            of it is mapped (the region opens at the first request);
 *   served   blocks the pool serves: no libjemalloc, libstdc++ or libm is
 *            mapped (/proc/self/maps), before or after;
 *   threads  jemalloc's first requests from 8 threads at once;
 *   fork     jemalloc's first request in a fork child, and in children
 *            forked while other threads make their first requests;
 *   dlopen   jemalloc's first request from a constructor of a library
 *            dlopen'ed (LIB), under the dynamic loader's lock. */
#include <dlfcn.h>
#include <stdbool.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "preload_util.h"

/* Does a line of /proc/self/maps contain s? (Read into a static buffer.) */
static int maps_has(const char *s) {
  static char buf[1 << 20];
  int fd = open("/proc/self/maps", O_RDONLY);
  if (fd < 0) return -1;
  size_t n = 0;
  ssize_t r;
  while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
  close(fd);
  buf[n] = '\0';
  return strstr(buf, s) != NULL;
}

static void no_fallback_libraries(const char *when) {
  /* (not libgcc_s: ARM's EHABI code of ours needs it) */
  static const char *const libs[] = {"libjemalloc", "libstdc++", "libm.so"};
  for (unsigned i = 0; i < sizeof libs / sizeof libs[0]; i++)
    CHECK(maps_has(libs[i]) == 0, "%s: %s is mapped", when, libs[i]);
}

/* A block jemalloc serves: outside the region (judge: from /proc/self/maps,
 * under the helper's lock, which a fork child must not inherit held),
 * written and read back. */
static int some_fallback_block(unsigned seed, bool judge) {
  char *p = malloc(5000);
  if (!p || (judge && in_region(p))) return 0;
  fill(p, 5000, seed);
  char *q = realloc(p, 20000);
  int ok = q && !(judge && in_region(q)) && verify(q, 5000, seed);
  free(q ? q : p);
  return ok;
}

static int fallback_block(unsigned seed) { return some_fallback_block(seed, true); }

static void mode_none(void) {
  struct stat st;
  const char *dev = getenv("MEMPOOL_DEVICE");
  CHECK(dev && stat(dev, &st) != 0 && errno == ENOENT, "the region's file %s exists before any request", dev);
  CHECK(maps_has(dev) == 0, "%s is mapped before any request", dev);
}

static void mode_served(void) {
  no_fallback_libraries("at start");
  void *b[1000];
  for (int i = 0; i < 1000; i++) {
    b[i] = malloc(16 + (size_t)i % 1000);
    CHECK(b[i] && in_region(b[i]), "block %d (%zu bytes) not in the region", i, 16 + (size_t)i % 1000);
  }
  for (int i = 0; i < 1000; i++) free(b[i]);
  no_fallback_libraries("after 1000 pool blocks");
}

static pthread_barrier_t g_start;
static volatile int g_go;
static int g_thread_ok[8];

static void *first_request(void *arg) {
  int i = (int)(intptr_t)arg;
  pthread_barrier_wait(&g_start);
  g_thread_ok[i] = fallback_block((unsigned)i + 1);
  return NULL;
}

static void mode_threads(void) {
  pthread_t t[8];
  pthread_barrier_init(&g_start, NULL, 8);
  for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, first_request, (void *)(intptr_t)i);
  for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < 8; i++) CHECK(g_thread_ok[i], "thread %d: its first jemalloc block failed", i);
  no_fallback_libraries("after jemalloc started");
}

/* Forks a child that makes jemalloc requests and exits 0 when they work;
 * the parent waits (a hung child fails the run by its alarm). */
static int child_uses_fallback(void) {
  pid_t pid = fork();
  if (pid == 0) {
    alarm(20);
    int ok = 1;
    for (unsigned k = 0; k < 4; k++) ok &= fallback_block(100 + k);
    _exit(ok ? 0 : 1);
  }
  int st;
  return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void *requests_at_go(void *arg) {
  (void)arg;
  while (!g_go) {
  }
  for (int k = 0; k < 200; k++) some_fallback_block((unsigned)k, false); /* forks meanwhile */
  return NULL;
}

static void mode_fork(void) {
  void *small = malloc(64); /* the pool is open, jemalloc not started */
  CHECK(small && in_region(small), "64 bytes not in the region");
  CHECK(child_uses_fallback(), "a fork child's first jemalloc requests");
  /* Forks racing other threads' first requests: in each child jemalloc is
   * started or not, never half (its start and fork exclude each other). */
  pthread_t t[3];
  for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, requests_at_go, NULL);
  g_go = 1;
  for (int k = 0; k < 10; k++) CHECK(child_uses_fallback(), "child %d, forked while threads start jemalloc", k);
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
  CHECK(fallback_block(7), "the parent's jemalloc requests after the forks");
  free(small);
}

static void mode_dlopen(const char *lib) {
  void *small = malloc(64);
  CHECK(small && in_region(small), "64 bytes not in the region");
  void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  CHECK(h != NULL, "dlopen %s: %s", lib, dlerror());
  if (!h) return;
  void **block = dlsym(h, "lazy_ctor_block");
  CHECK(block && *block && !in_region(*block), "the constructor's block: %p", block ? *block : NULL);
  if (block && *block) {
    size_t same = 0;
    for (size_t i = 0; i < 5000; i++) same += ((unsigned char *)*block)[i] == 0x5a;
    CHECK(same == 5000, "the constructor's block holds %zu of its 5000 bytes", same);
    free(*block);
  }
  CHECK(fallback_block(9), "a jemalloc request after the dlopen");
  dlclose(h);
  free(small);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (!strcmp(mode, "none"))
    mode_none();
  else if (!strcmp(mode, "served"))
    mode_served();
  else if (!strcmp(mode, "threads"))
    mode_threads();
  else if (!strcmp(mode, "fork"))
    mode_fork();
  else if (!strcmp(mode, "dlopen") && argc > 2)
    mode_dlopen(argv[2]);
  else {
    fprintf(stderr, "usage: %s none|served|threads|fork|dlopen LIB\n", argv[0]);
    return 2;
  }
  return finish(mode);
}
