/* fastpath - the allocator's hot path: malloc(32) + free in a tight loop.
 *
 *   fastpath ITERATIONS [SIZE]
 *
 * Used natively (ns per malloc+free pair) and under callgrind, where the
 * runner subtracts a run with fewer iterations to get instructions per pair.
 */
#include "common.h"

__attribute__((noinline)) static unsigned long loop(unsigned long long iters, size_t size) {
  unsigned long acc = 0;
  for (unsigned long long i = 0; i < iters; i++) {
    unsigned char *p = malloc(size);
    if (!p) _Exit(4);
    ESCAPE(p);
    p[0] = (unsigned char)i;
    p[size - 1] = (unsigned char)(i >> 3);
    ESCAPE(p);
    if (p[0] != (unsigned char)i || p[size - 1] != (unsigned char)(i >> 3)) corrupt("fastpath", p, size);
    acc += (uintptr_t)p & 0xff;
    free(p);
  }
  return acc;
}

int main(int argc, char **argv) {
  unsigned long long iters = arg_ull(argc, argv, 1, 1000000);
  size_t size = arg_ull(argc, argv, 2, 32);
  if (size < 1) size = 1;
  uint64_t t0 = now_ns();
  unsigned long acc = loop(iters, size);
  uint64_t t1 = now_ns();
  printf("RESULT ns_per_pair=%.3f iters=%llu size=%zu acc=%lu\n", iters ? (double)(t1 - t0) / (double)iters : 0.0,
         iters, size, acc);
  return 0;
}
