/* extras_preload.c - glibc's extra calls and C23's sized frees under the
 * preload (issue 15), judged from outside where it can be: malloc_trim
 * gives the device's chunks back (/proc/self/maps), malloc_info writes
 * glibc's XML shape with the region's size, mallopt refuses every option,
 * free_sized and free_aligned_sized free, and trap a size or an alignment
 * the block does not have. (Not named preload_*: vm-test runs those.)
 * Without the preload (free_sized missing) only what glibc also does is
 * checked, to show the checks themselves are right. */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <malloc.h>

#include "death.h"
#include "preload_util.h"

typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);
static free_sized_fn free_sized_p;
static free_aligned_sized_fn free_aligned_sized_p;

/* Bytes of the device file mapped in this process (MEMPOOL_DEVICE). */
static size_t device_mapped(void) {
  static char buf[1 << 20];
  const char *dev = getenv("MEMPOOL_DEVICE");
  int fd = open("/proc/self/maps", O_RDONLY);
  size_t n = 0, total = 0;
  ssize_t r;
  while (fd >= 0 && n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
  if (fd >= 0) close(fd);
  buf[n] = '\0';
  for (char *line = buf; dev && line && *line;) {
    char *next = strchr(line, '\n');
    if (next) *next++ = '\0';
    unsigned long a, b;
    if (strstr(line, dev) && sscanf(line, "%lx-%lx", &a, &b) == 2) total += b - a;
    line = next;
  }
  return total;
}

static void trim(void) {
  enum { N = 24 };
  void *b[N];
  for (int i = 0; i < N; i++) b[i] = malloc(1 << 20);
  for (int i = 0; i < N; i++) free(b[i]);
  size_t before = device_mapped();
  int rc = malloc_trim(0);
  size_t after = device_mapped();
  printf("malloc_trim: %d, device mapped %zu -> %zu bytes\n", rc, before, after);
  CHECK(rc == 1 && after < before, "malloc_trim gave nothing back (%d, %zu -> %zu)", rc, before, after);
  void *again = malloc(1 << 20);
  CHECK(again && in_region(again), "allocation after malloc_trim");
  free(again);
}

static void info(void) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  CHECK(f && malloc_info(0, f) == 0, "malloc_info");
  if (f) fclose(f);
  char want[80];
  snprintf(want, sizeof want, "<aspace type=\"total\" size=\"%lu\"/>", (unsigned long)region_size());
  CHECK(text && !strncmp(text, "<malloc version=\"1\">", 20), "malloc_info: '%.60s'", text ? text : "");
  CHECK(text && strstr(text, want) && strstr(text, "</malloc>\n"), "malloc_info lacks %s: %s", want, text);
  free(text);
  CHECK(malloc_info(1, stdout) == EINVAL, "malloc_info with options");
}

static void *sink;
static void oversized_free(void) {
  sink = malloc(100);
  free_sized_p(sink, 100000);
}
static void misaligned_free(void) {
  char *p;
  do p = malloc(48); /* a block that is not 4096-aligned */
  while (((uintptr_t)p & 4095) == 0);
  free_aligned_sized_p(p, 4096, 48);
}

static void sized(void) {
  free_sized_p(malloc(100), 100);
  free_sized_p(malloc(100000), 100000);
  free_sized_p(NULL, 0);
  free_aligned_sized_p(aligned_alloc(64, 256), 64, 256);
  free_aligned_sized_p(aligned_alloc(4096, 1 << 16), 4096, 1 << 16);
  const char *why = death_problem(oversized_free, "free_sized(0x");
  CHECK(!why, "free_sized with a size the block does not hold: %s", why ? why : "");
  why = death_problem(misaligned_free, "is not so aligned");
  CHECK(!why, "free_aligned_sized of a misaligned block: %s", why ? why : "");
}

int main(int argc, char **argv) {
  free_sized_p = (free_sized_fn)dlsym(RTLD_DEFAULT, "free_sized");
  free_aligned_sized_p = (free_aligned_sized_fn)dlsym(RTLD_DEFAULT, "free_aligned_sized");
  bool preloaded = free_sized_p != NULL && getenv("LD_PRELOAD");
  if (argc > 1 && !strcmp(argv[1], "--preloaded")) CHECK(preloaded, "free_sized is not exported by the preload");
  void *probe = malloc(64);
  CHECK(!preloaded || in_region(probe), "the preload serves malloc");
  free(probe);
  if (preloaded) {
    CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 0 && mallopt(M_ARENA_MAX, 1) == 0, "mallopt refuses");
    trim();
    info();
    sized();
  } else {
    CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1, "glibc's mallopt accepts");
    CHECK(malloc_trim(0) >= 0, "glibc's malloc_trim");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f && malloc_info(0, f) == 0, "glibc's malloc_info");
    if (f) fclose(f);
    CHECK(text && !strncmp(text, "<malloc version=\"1\">", 20), "glibc's malloc_info shape");
    free(text);
  }
  printf("extras: %s, %d failure(s)\n", preloaded ? "preloaded" : "glibc", g_failures);
  return g_failures ? 1 : 0;
}
