/* compat_example.c - the original mem_allocator_c example, relinked against
 * libmempool.so: a delegate over the default window (MEMPOOL_DEVICE, else
 * /dev/mem, 0x10000000..0x1DFFEFFF), a few buffers of various sizes written
 * and verified, then freed. It also checks, from /proc/self/maps, that every
 * buffer lies in the device's mapping inside the window. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem_allocator_c.h"

#define BASE 0x10000000ul
#define HIGH 0x1DFFEFFFul

/* The device offset of p, if p lies in a mapping of the file dev; else -1. */
static long long device_offset(const void *p, const char *dev) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return -1;
  char line[PATH_MAX + 128];
  long long found = -1;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    unsigned long long off;
    int path_at = 0;
    if (sscanf(line, "%lx-%lx %*s %llx %*s %*s %n", &lo, &hi, &off, &path_at) < 3 || !path_at) continue;
    if ((uintptr_t)p < lo || (uintptr_t)p >= hi) continue;
    char *path = line + path_at;
    path[strcspn(path, "\n")] = '\0';
    if (!strcmp(path, dev)) found = (long long)(off + ((uintptr_t)p - lo));
    break;
  }
  fclose(f);
  return found;
}

int main(void) {
  MemAllocDelegate d;
  /* 0, 0: the default window. Before anything else, as the original wants. */
  if (init_mem_delegate(&d, 0, 0) != 0) {
    fprintf(stderr, "compat_example: init_mem_delegate failed\n");
    return 1;
  }
  const char *env = getenv("MEMPOOL_DEVICE");
  char dev[PATH_MAX];
  if (!realpath(env ? env : "/dev/mem", dev)) {
    perror("compat_example: realpath");
    return 1;
  }

  static const size_t counts[] = {1, 3, 100, 4096, 3 * 4096 + 5, 1 << 20};
  enum { N = sizeof counts / sizeof counts[0] };
  unsigned *buf[N];
  int bad = 0;
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
    long long off = device_offset(buf[i], dev);
    long long last = device_offset((char *)(buf[i] + counts[i]) - 1, dev);
    printf("buffer %d: %zu x %zu bytes at %p, %s offset %#llx\n", i, counts[i], sizeof(unsigned), (void *)buf[i], dev,
           off);
    if (off < (long long)BASE || last < off || last > (long long)HIGH) {
      fprintf(stderr, "compat_example: buffer %d (%p) is not in %s %#lx..%#lx\n", i, (void *)buf[i], dev, BASE, HIGH);
      bad = 1;
    }
  }
  if (device_offset(buf[0], dev) != (long long)BASE) {
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
  printf("%s\n", bad ? "FAILED" : "ok");
  return bad;
}
