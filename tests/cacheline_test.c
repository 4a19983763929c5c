/* cacheline_test.c - the cache maintenance instructions run (no SIGILL, no
 * fault) and keep the bytes: natively in the unit suite, and built for the
 * other architectures by cross_cache.sh (aarch64: dc cvac / dc civac under
 * qemu-aarch64; 32-bit ARM: none, the call says it cannot).
 *
 *   cacheline_test [expect-unsupported]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cacheline.h"

int main(int argc, char **argv) {
  int want_unsupported = argc > 1 && !strcmp(argv[1], "expect-unsupported");
  size_t n = 1 << 20, line = mp_cache_line();
  unsigned char *p = malloc(n + 64);
  if (!p) return 2;
  for (size_t i = 0; i < n + 64; i++) p[i] = (unsigned char)(i * 7);
  if (want_unsupported) {
    int ok = !mp_cache_supported() && line == 0 && !mp_cache_sync(p, n, true);
    printf("cacheline_test: %s\n", ok ? "unsupported, as expected" : "FAILED: claims support");
    return !ok;
  }
  if (!mp_cache_supported() || line < 16 || line > 1024 || (line & (line - 1))) {
    printf("cacheline_test: FAILED: supported %d, line %zu\n", mp_cache_supported(), line);
    return 1;
  }
  /* whole buffer, both directions; then ranges that start and end mid-line */
  int ok = mp_cache_sync(p, n, true) && mp_cache_sync(p, n, false);
  for (size_t off = 1; off < 64; off += 13) ok = ok && mp_cache_sync(p + off, 3 * line + off, off & 1);
  ok = ok && mp_cache_sync(p + n, 0, true);
  for (size_t i = 0; i < n + 64 && ok; i++) ok = p[i] == (unsigned char)(i * 7);
  printf("cacheline_test: %s (line %zu bytes)\n", ok ? "ok" : "FAILED", line);
  free(p);
  return !ok;
}
