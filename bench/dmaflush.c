/* dmaflush - cache maintenance of one malloc'ed block under libmempool:
 * mempool_sync_for_device and mempool_sync_for_cpu, found with dlsym (the
 * program does not link the library).
 *
 *   dmaflush ITERATIONS [SIZE]      (SIZE default 1 MiB)
 *
 * Per iteration the block is written whole (every line dirty), then synced
 * for the device (timed: "dirty"), synced again with nothing left to write
 * back ("clean"), and synced for the CPU ("cpu"). Prints microseconds per
 * call (medians would hide nothing here: the minimum and the mean are
 * given). Exit 3 when the calls are missing (not under the preload) or fail.
 */
#include <dlfcn.h>

#include "common.h"

typedef int (*sync_fn)(const void *, const void *, size_t);

static double us(uint64_t ns) { return (double)ns / 1000.0; }

int main(int argc, char **argv) {
  unsigned long long iters = arg_ull(argc, argv, 1, 200);
  size_t size = arg_ull(argc, argv, 2, 1 << 20);
  void *(*get)(void) = (void *(*)(void))dlsym(RTLD_DEFAULT, "mempool_default");
  sync_fn dev = (sync_fn)dlsym(RTLD_DEFAULT, "mempool_sync_for_device");
  sync_fn cpu = (sync_fn)dlsym(RTLD_DEFAULT, "mempool_sync_for_cpu");
  void *pool = get ? get() : NULL;
  unsigned char *p = malloc(size);
  if (!pool || !dev || !cpu || !p) {
    fprintf(stderr, "dmaflush: no mempool_default pool (run under LD_PRELOAD=libmempool.so with a region)\n");
    return 3;
  }
  uint64_t sum[3] = {0}, min[3] = {UINT64_MAX, UINT64_MAX, UINT64_MAX};
  for (unsigned long long i = 0; i < iters; i++) {
    memset(p, (int)i, size);
    uint64_t t[4];
    t[0] = now_ns();
    int rc = dev(pool, p, size);
    t[1] = now_ns();
    rc |= dev(pool, p, size);
    t[2] = now_ns();
    rc |= cpu(pool, p, size);
    t[3] = now_ns();
    if (rc != 0) {
      perror("dmaflush: sync");
      return 3;
    }
    for (int k = 0; k < 3; k++) {
      uint64_t d = t[k + 1] - t[k];
      sum[k] += d;
      if (d < min[k]) min[k] = d;
    }
  }
  double n = iters ? (double)iters : 1.0;
  printf(
      "RESULT dirty_us=%.2f clean_us=%.2f cpu_us=%.2f dirty_min_us=%.2f clean_min_us=%.2f cpu_min_us=%.2f "
      "size=%zu iters=%llu\n",
      us(sum[0]) / n, us(sum[1]) / n, us(sum[2]) / n, us(min[0]), us(min[1]), us(min[2]), size, iters);
  free(p);
  return 0;
}
