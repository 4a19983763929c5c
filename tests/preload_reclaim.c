/* Nothing stranded (issue 11), judged from /proc/self/maps and the file:
 *   idle     a thread mallocs and frees 100k blocks of 64 B, then blocks on a
 *            pipe, alive: the main thread gets one block of 85% of the
 *            region from the region (the idle thread's cache is reclaimed);
 *   classes  the same with blocks of 20 classes (16 B .. 1 KiB) cached;
 *   medium   the same with 1500 blocks of the 20 medium classes (10 KiB ..
 *            256 KiB, 124 MB at once) in a 256 MiB region;
 *   churn    1000 short-lived threads, 20 at a time, 300 blocks of
 *            16 B .. 1 KiB each held at once: the region's peak (mallinfo2's
 *            usmblks) within 2x of the live bytes' peak; the highest byte
 *            of the file ever written is printed beside it;
 *   fork     as classes, with a fork first: the child (where the idle
 *            thread's cache is no one's to reclaim, tcache.h) makes the
 *            same request and exits normally; then the parent does.
 * Nothing is allocated between the idle thread's frees and the big request
 * but the request itself (a block made meanwhile could pin the region's
 * middle). */
#include "preload_util.h"

#include <malloc.h>
#include <sys/wait.h>

#define BLOCKS 100000

static const size_t class_sizes[20] = {16,  32,  48,  64,  80,  96,  112, 128, 160, 192,
                                       224, 256, 320, 384, 448, 512, 640, 768, 896, 1024};
static int g_classes; /* 1: 64-byte blocks only; 20: the 20 sizes in turn; 2: the medium ones */
static int ready[2], hold[2];
static void *blocks[BLOCKS];

static int blocks_of(int classes) { return classes == 2 ? 1500 : BLOCKS; }
static size_t size_of(int classes, int i) {
  size_t k = (size_t)i % 20 / 4, j = (size_t)i % 4; /* medium class 4k + j: 2^(13+k) + (j+1) 2^(11+k) */
  return classes == 1 ? 64 : classes == 2 ? ((size_t)8192 << k) + (j + 1) * ((size_t)2048 << k) : class_sizes[i % 20];
}

static void *idle_thread(void *arg) {
  (void)arg;
  int bad = 0, nb = blocks_of(g_classes);
  for (int i = 0; i < nb; i++) {
    size_t n = size_of(g_classes, i);
    blocks[i] = malloc(n);
    if (blocks[i]) fill(blocks[i], n, (unsigned)i);
  }
  for (int i = 0; i < nb; i++) {
    size_t n = size_of(g_classes, i);
    bad += blocks[i] && !verify(blocks[i], n, (unsigned)i);
    free(blocks[i]);
  }
  char c = (char)(bad != 0);
  if (write(ready[1], &c, 1) != 1 || read(hold[0], &c, 1) != 1) return (void *)1;
  return NULL;
}

/* In a fork child: the request is served (region or not), then _exit. */
static void child_request(size_t want) {
  char *big = malloc(want);
  if (big) memset(big, 0x3c, 4096);
  free(big);
  _exit(big ? 0 : 3);
}

static void idle(int classes, int forks) {
  g_classes = classes;
  pthread_t t;
  CHECK(pipe(ready) == 0 && pipe(hold) == 0, "pipes");
  CHECK(pthread_create(&t, NULL, idle_thread, NULL) == 0, "thread");
  char c = 1;
  CHECK(read(ready[0], &c, 1) == 1 && c == 0, "the idle thread's blocks were not intact");
  size_t want = region_size() / 100 * 85;
  if (forks) {
    int st = -1;
    pid_t pid = fork();
    if (pid == 0) child_request(want);
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
          "the fork child failed (%#x)", st);
  }
  char *big = malloc(want);
  int in = big && in_region(big) && in_region(big + want - 1);
  CHECK(in,
        "one block of 85%% of the region (%zu bytes) is not in the region while a thread that freed %d blocks"
        " of %d class(es) idles",
        want, blocks_of(classes), classes);
  if (big) memset(big, 0x5a, want);
  free(big);
  CHECK(write(hold[1], &c, 1) == 1, "wake");
  void *rc = NULL;
  pthread_join(t, &rc);
  CHECK(rc == NULL, "the idle thread failed");
}

#define CHURN_THREADS 1000
#define CHURN_AT_ONCE 20
#define CHURN_BLOCKS  300
static long g_live, g_live_peak;
static pthread_barrier_t g_all_hold;

static void live_add(long d) {
  long v = __atomic_add_fetch(&g_live, d, __ATOMIC_RELAXED), pk = __atomic_load_n(&g_live_peak, __ATOMIC_RELAXED);
  while (v > pk && !__atomic_compare_exchange_n(&g_live_peak, &pk, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

static void *churn_thread(void *arg) {
  unsigned x = (unsigned)(uintptr_t)arg * 2654435761u + 1;
  void *p[CHURN_BLOCKS];
  size_t n[CHURN_BLOCKS];
  for (int i = 0; i < CHURN_BLOCKS; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    n[i] = 16 + x % 1024;
    p[i] = malloc(n[i]);
    if (p[i]) fill(p[i], n[i], x);
    live_add((long)n[i]);
  }
  pthread_barrier_wait(&g_all_hold); /* the batch's blocks are all live at once */
  for (int i = 0; i < CHURN_BLOCKS; i++) {
    free(p[i]);
    live_add(-(long)n[i]);
  }
  return NULL;
}

/* The highest offset of the device file with data (the highest byte ever
 * written), from SEEK_DATA/SEEK_HOLE. */
static long long highest_written(void) {
  int fd = open(getenv("MEMPOOL_DEVICE"), O_RDONLY);
  long long high = -1;
  for (off_t o = 0, d; fd >= 0 && (d = lseek(fd, o, SEEK_DATA)) >= 0; o = high) high = lseek(fd, d, SEEK_HOLE);
  if (fd >= 0) close(fd);
  return high;
}

static void churn(void) {
  pthread_t t[CHURN_AT_ONCE];
  pthread_barrier_init(&g_all_hold, NULL, CHURN_AT_ONCE);
  for (int i = 0; i < CHURN_THREADS; i += CHURN_AT_ONCE) {
    for (int k = 0; k < CHURN_AT_ONCE; k++)
      CHECK(pthread_create(&t[k], NULL, churn_thread, (void *)(uintptr_t)(i + k + 1)) == 0, "thread");
    for (int k = 0; k < CHURN_AT_ONCE; k++) pthread_join(t[k], NULL);
  }
  size_t peak = mallinfo2().usmblks;
  long long high = highest_written() - (long long)region_base();
  printf("churn: live peak %ld bytes, region peak %zu bytes (%.2fx), highest byte written at region offset %lld\n",
         g_live_peak, peak, (double)peak / (double)g_live_peak, high);
  CHECK(peak <= 2 * (size_t)g_live_peak, "region peak %zu bytes for a live peak of %ld bytes", peak, g_live_peak);
  size_t want = region_size() / 100 * 85;
  void *big = malloc(want);
  CHECK(big && in_region(big), "85%% of the region is not in the region after the churn");
  free(big);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (!strcmp(mode, "idle"))
    idle(1, 0);
  else if (!strcmp(mode, "classes"))
    idle(20, 0);
  else if (!strcmp(mode, "medium"))
    idle(2, 0);
  else if (!strcmp(mode, "fork"))
    idle(20, 1);
  else if (!strcmp(mode, "churn"))
    churn();
  else
    CHECK(0, "mode %s: idle, classes, medium, fork or churn", mode);
  return finish("preload_reclaim");
}
