/* reclaim - memory left stranded (issue 11).
 *
 *   reclaim stranded N   a thread mallocs and frees N blocks of 16 B..1 KiB
 *                        (20 classes) and then waits on a pipe, alive; the
 *                        main thread mallocs one block of 85% of the region
 *                        (libmempool's, found with dlsym; else 64 MiB).
 *                        big_us: that malloc's time (a reclaim of the idle
 *                        thread's cache and its membarrier included);
 *                        in_region: 1 when libmempool's region served it,
 *                        0 when not, -1 under another allocator.
 *   reclaim churn T K    T short-lived threads, K at a time, each holding
 *                        300 blocks of 16 B..1 KiB at once (a barrier):
 *                        peak_ratio = the region's peak (libmempool) or the
 *                        RSS growth (VmHWM - VmRSS at start, others) over
 *                        the live bytes' peak.
 * Prints one RESULT line (bench/common.h).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

#include "common.h"

struct mp_stats { /* struct mempool_stats (src/mempool.h) */
  uint64_t region_bytes, bytes_in_use, peak_bytes, bytes_free, largest_free, allocations, frees, failed_requests,
      ranges_in_use, ranges_free, metadata_bytes;
};
static void *g_pool;
static bool (*g_owns)(const void *, const void *);
static int (*g_stats)(void *, struct mp_stats *);

static void find_mempool(void) {
  void *(*get)(void) = (void *(*)(void))dlsym(RTLD_DEFAULT, "mempool_default");
  g_pool = get ? get() : NULL;
  g_owns = (bool (*)(const void *, const void *))dlsym(RTLD_DEFAULT, "mempool_owns");
  g_stats = (int (*)(void *, struct mp_stats *))dlsym(RTLD_DEFAULT, "mempool_get_stats");
  if (!g_owns || !g_stats) g_pool = NULL;
}

static long status_kib(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, key, strlen(key))) v = atol(line + strlen(key));
  if (f) fclose(f);
  return v;
}

static size_t block_size(uint64_t x) { return 16 + x % 1009; }

static int ready[2], hold[2];
static long g_blocks;

static void *idle_thread(void *arg) {
  (void)arg;
  void **v = calloc((size_t)g_blocks, sizeof *v);
  rng_t r = {42};
  for (long i = 0; i < g_blocks; i++) {
    v[i] = malloc(block_size(rng_next(&r)));
    memset(v[i], 1, 16);
  }
  for (long i = 0; i < g_blocks; i++) free(v[i]);
  free(v);
  char c = 0;
  if (write(ready[1], &c, 1) != 1 || read(hold[0], &c, 1) != 1) exit(2);
  return NULL;
}

static int stranded(long blocks) {
  struct mp_stats st = {0};
  if (g_pool) g_stats(g_pool, &st);
  size_t want = (g_pool ? st.region_bytes : (64u << 20)) / 100 * 85;
  g_blocks = blocks;
  pthread_t t;
  char c = 0;
  if (pipe(ready) || pipe(hold) || pthread_create(&t, NULL, idle_thread, NULL) || read(ready[0], &c, 1) != 1) return 2;
  uint64_t t0 = now_ns();
  char *big = malloc(want);
  uint64_t t1 = now_ns();
  if (!big) return 2;
  big[0] = 1;
  int in = g_pool ? g_owns(g_pool, big) : -1;
  free(big);
  if (write(hold[1], &c, 1) != 1) return 2;
  pthread_join(t, NULL);
  printf("RESULT big_us=%.1f in_region=%d request_bytes=%zu\n", (double)(t1 - t0) / 1e3, in, want);
  return 0;
}

static long g_live, g_live_peak;
static pthread_barrier_t g_bar;

static void live_add(long d) {
  long v = __atomic_add_fetch(&g_live, d, __ATOMIC_RELAXED), pk = __atomic_load_n(&g_live_peak, __ATOMIC_RELAXED);
  while (v > pk && !__atomic_compare_exchange_n(&g_live_peak, &pk, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

static void *churn_thread(void *arg) {
  rng_t r = {(uint64_t)(uintptr_t)arg};
  void *p[300];
  size_t n[300];
  for (int i = 0; i < 300; i++) {
    n[i] = block_size(rng_next(&r));
    p[i] = malloc(n[i]);
    memset(p[i], 7, n[i]);
    live_add((long)n[i]);
  }
  pthread_barrier_wait(&g_bar);
  for (int i = 0; i < 300; i++) {
    free(p[i]);
    live_add(-(long)n[i]);
  }
  return NULL;
}

static int churn(int threads, int at_once) {
  long rss0 = status_kib("VmRSS:");
  pthread_t *t = calloc((size_t)at_once, sizeof *t);
  pthread_barrier_init(&g_bar, NULL, (unsigned)at_once);
  for (int i = 0; i < threads; i += at_once) {
    for (int k = 0; k < at_once; k++)
      if (pthread_create(&t[k], NULL, churn_thread, (void *)(uintptr_t)(i + k + 1))) return 2;
    for (int k = 0; k < at_once; k++) pthread_join(t[k], NULL);
  }
  long growth = (status_kib("VmHWM:") - rss0) * 1024;
  struct mp_stats st = {0};
  if (g_pool) g_stats(g_pool, &st);
  double ratio = (double)(g_pool ? (long)st.peak_bytes : growth) / (double)g_live_peak;
  printf("RESULT peak_ratio=%.2f live_peak=%ld region_peak=%llu rss_growth=%ld\n", ratio, g_live_peak,
         (unsigned long long)st.peak_bytes, growth);
  free(t);
  return 0;
}

int main(int argc, char **argv) {
  find_mempool();
  if (argc >= 3 && !strcmp(argv[1], "stranded")) return stranded(atol(argv[2]));
  if (argc >= 4 && !strcmp(argv[1], "churn")) return churn(atoi(argv[2]), atoi(argv[3]));
  fprintf(stderr, "usage: reclaim stranded N | reclaim churn THREADS AT_ONCE\n");
  return 2;
}
