/* preload_util.h - helpers for programs run under LD_PRELOAD=libmempool.so.
 * Where a block lives is judged from /proc/self/maps, not from the library:
 * read with open/read into static buffers (no allocation while judging). */
#ifndef PRELOAD_UTIL_H
#define PRELOAD_UTIL_H

#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int g_failures __attribute__((unused));
#define CHECK(cond, ...)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      g_failures++;                                                   \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                   \
      fputc('\n', stderr);                                            \
    }                                                                 \
  } while (0)

static inline uint64_t env_u64(const char *name, uint64_t dflt) {
  const char *v = getenv(name);
  return v ? strtoull(v, NULL, 0) : dflt;
}

/* Region geometry as configured by the harness. */
static inline uint64_t region_base(void) { return env_u64("MEMPOOL_BASE", 0x10000000); }
static inline uint64_t region_high(void) { return env_u64("MEMPOOL_HIGH", 0x1DFFEFFF); }
static inline uint64_t region_size(void) { return region_high() - region_base() + 1; }

/* Finds the mapping holding p. Returns 1 and fills the fields, else 0.
 * Thread-safe: one static buffer, one lock. */
static inline int mapping_of_locked(const void *p, uintptr_t *start, uintptr_t *end, uint64_t *offset, char *path,
                                    size_t pathlen);
static inline int mapping_of(const void *p, uintptr_t *start, uintptr_t *end, uint64_t *offset, char *path,
                             size_t pathlen) {
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_lock(&lock);
  int found = mapping_of_locked(p, start, end, offset, path, pathlen);
  pthread_mutex_unlock(&lock);
  return found;
}

static inline int mapping_of_locked(const void *p, uintptr_t *start, uintptr_t *end, uint64_t *offset, char *path,
                                    size_t pathlen) {
  static char buf[1 << 20];
  int fd = open("/proc/self/maps", O_RDONLY);
  if (fd < 0) return 0;
  size_t n = 0;
  ssize_t r;
  while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
  close(fd);
  buf[n] = '\0';
  for (char *line = buf; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    unsigned long s, e;
    unsigned long long off; /* 64-bit on every target: a device offset beyond 4 GiB on 32-bit ARM (LPAE) */
    int pos = 0;
    if (sscanf(line, "%lx-%lx %*s %llx %*s %*s%n", &s, &e, &off, &pos) >= 3 && (uintptr_t)p >= s && (uintptr_t)p < e) {
      const char *q = line + pos;
      while (*q == ' ') q++;
      snprintf(path, pathlen, "%s", q);
      *start = s;
      *end = e;
      *offset = off;
      return 1;
    }
    line = nl ? nl + 1 : NULL;
  }
  return 0;
}

/* The offset in file dev of the byte at p when p lies in a mapping of dev
 * (its path in /proc/self/maps, with symbolic links resolved), else
 * UINT64_MAX. */
static inline uint64_t dev_offset_of(const void *p, const char *dev) {
  char want[PATH_MAX], path[PATH_MAX];
  uintptr_t s, e;
  uint64_t off;
  if (!dev || !realpath(dev, want)) return UINT64_MAX;
  if (!mapping_of(p, &s, &e, &off, path, sizeof path) || strcmp(path, want) != 0) return UINT64_MAX;
  return off + ((uintptr_t)p - s);
}

/* 1 if p lies in the device's mapping at a device offset in [BASE, HIGH]. */
static inline int in_region(const void *p) {
  uint64_t phys = dev_offset_of(p, getenv("MEMPOOL_DEVICE"));
  return phys != UINT64_MAX && phys >= region_base() && phys <= region_high();
}

/* Device offset ("physical address") of p, or 0 when not in a file mapping. */
static inline uint64_t phys_of(const void *p) {
  char path[PATH_MAX];
  uintptr_t s, e;
  uint64_t off;
  if (!mapping_of(p, &s, &e, &off, path, sizeof path)) return 0;
  return off + ((uintptr_t)p - s);
}

static inline void fill(void *p, size_t n, unsigned seed) {
  unsigned char *c = p;
  for (size_t i = 0; i < n; i++) c[i] = (unsigned char)(seed * 31u + i * 7u);
}

static inline int verify(const void *p, size_t n, unsigned seed) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    if (c[i] != (unsigned char)(seed * 31u + i * 7u)) return 0;
  return 1;
}

static inline int finish(const char *name) {
  if (g_failures)
    fprintf(stderr, "%s: %d check(s) failed\n", name, g_failures);
  else
    printf("%s: all checks passed\n", name);
  return g_failures ? 1 : 0;
}

#endif
