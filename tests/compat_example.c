/* compat_example.c - the original mem_allocator_c example, relinked against
 * libmempool_api.so: a delegate over the default window (MEMPOOL_DEVICE, else
 * /dev/mem, 0x10000000..0x1DFFEFFF), a few buffers of various sizes zeroed,
 * written and verified, then freed. Where each buffer lies is judged from
 * /proc/self/maps, in one of three configurations (argv[1]):
 *   device  (default) the device is usable: every buffer lies in its mapping
 *           inside the window, the first at the window's start
 *   none    no device can be opened: init_mem_delegate still succeeds and
 *           every buffer comes from calloc (no mapping of the device)
 *   small   a 64 KiB window (the example's own, not 0, 0): the first
 *           buffers lie in it, those it cannot hold come from calloc */
#define _GNU_SOURCE
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem_allocator_c.h"
#include "preload_util.h"

#define BASE       0x10000000ul
#define HIGH       0x1DFFEFFFul
#define SMALL_HIGH 0x1000FFFFul

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "device";
  bool small = !strcmp(mode, "small"), none = !strcmp(mode, "none");
  unsigned long high = small ? SMALL_HIGH : HIGH;
  MemAllocDelegate d;
  /* 0, 0: the default window. Before anything else, as the original wants. */
  if (init_mem_delegate(&d, small ? BASE : 0, small ? SMALL_HIGH : 0) != 0) {
    fprintf(stderr, "compat_example: init_mem_delegate failed\n");
    return 1;
  }
  const char *env = getenv("MEMPOOL_DEVICE");
  const char *dev = env ? env : "/dev/mem";

  static const size_t counts[] = {1, 3, 100, 4096, 3 * 4096 + 5, 1 << 20};
  enum { N = sizeof counts / sizeof counts[0] };
  unsigned *buf[N];
  int bad = 0, in_window = 0;
  for (int i = 0; i < N; i++) {
    buf[i] = mem_delegate_calloc(&d, counts[i], sizeof(unsigned));
    if (!buf[i]) {
      fprintf(stderr, "compat_example: calloc(%zu, %zu) failed\n", counts[i], sizeof(unsigned));
      return 1;
    }
    for (size_t k = 0; k < counts[i]; k++) {
      if (buf[i][k] != 0) {
        fprintf(stderr, "compat_example: buffer %d not zeroed at %zu\n", i, k);
        bad = 1;
        break;
      }
      buf[i][k] = (unsigned)(i * 0x01000193u + k);
    }
    uint64_t off = dev_offset_of(buf[i], dev), last = dev_offset_of((char *)(buf[i] + counts[i]) - 1, dev);
    bool inside = off != UINT64_MAX && off >= BASE && last >= off && last <= high;
    printf("buffer %d: %zu x %zu bytes at %p, %s\n", i, counts[i], sizeof(unsigned), (void *)buf[i],
           inside ? "in the window" : "from calloc");
    if (!inside && (off != UINT64_MAX || last != UINT64_MAX)) {
      fprintf(stderr, "compat_example: buffer %d (%p) is in %s but not in %#lx..%#lx\n", i, (void *)buf[i], dev, BASE,
              high);
      bad = 1;
    }
    if (inside != (!none && (!small || i < 4))) { /* small: 16 + 16 + 400 + 16384 bytes fit, not 49 KiB more */
      fprintf(stderr, "compat_example: buffer %d should %s\n", i, inside ? "come from calloc" : "be in the window");
      bad = 1;
    }
    in_window += inside;
  }
  if (in_window && dev_offset_of(buf[0], dev) != BASE) {
    fprintf(stderr, "compat_example: the first buffer is not at the window's start\n");
    bad = 1;
  }
  for (int i = 0; i < N; i++) {
    for (size_t k = 0; k < counts[i]; k++)
      if (buf[i][k] != (unsigned)(i * 0x01000193u + k)) {
        fprintf(stderr, "compat_example: buffer %d corrupted at %zu\n", i, k);
        bad = 1;
        break;
      }
  }
  for (int i = N - 1; i >= 0; i--) mem_delegate_free(&d, buf[i]);
  destroy_mem_delegate(&d);
  printf("%s (%s)\n", bad ? "FAILED" : "ok", mode);
  return bad;
}
