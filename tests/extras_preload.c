/* extras_preload.c - glibc's extra calls and C23's sized frees under the
 * preload (issue 15), judged from outside where it can be: malloc_trim
 * gives the device's chunks back (/proc/self/maps), on an anonymous region
 * (--anon) the free pages that were in memory (mincore), malloc_info writes
 * glibc's XML shape with the region's size, mallopt refuses every option,
 * free_sized and free_aligned_sized free, and trap a size or an alignment
 * the block does not have. (Not named preload_*: vm-test runs those.)
 * Without the preload (free_sized missing) only what glibc also does is
 * checked, to show the checks themselves are right. */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <malloc.h>
#include <sys/mman.h>

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

/* Pages of [p, p+n) the kernel holds in memory (mincore). */
static size_t resident_pages(const void *p, size_t n) {
  static unsigned char vec[(8 << 20) / 4096];
  uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095, e = ((uintptr_t)p + n + 4095) & ~(uintptr_t)4095;
  if (e - a > sizeof vec * 4096 || mincore((void *)a, e - a, vec) != 0) return SIZE_MAX;
  size_t r = 0;
  for (size_t i = 0; i < (e - a) / 4096; i++) r += vec[i] & 1;
  return r;
}

/* An anonymous region: malloc_trim gives back the free pages that were in
 * memory (1), and then has nothing more to give (0). */
static void trim_anon(void) {
  char *b = malloc(6 << 20);
  CHECK(b != NULL, "a 6 MiB block"); /* from the pool: jemalloc's pages would not count in rc */
  if (!b) return;
  memset(b, 1, 6 << 20);
  size_t before = resident_pages(b, 6 << 20);
  free(b);
  int rc = malloc_trim(0);
  size_t after = resident_pages(b, 6 << 20), again = (size_t)malloc_trim(0);
  printf("malloc_trim on anon: %d then %zu, resident pages %zu -> %zu\n", rc, again, before, after);
  CHECK(rc == 1 && before > 1000 && after < 8, "malloc_trim gave the free pages back (%d, %zu -> %zu)", rc, before,
        after);
  CHECK(again == 0, "a second malloc_trim has nothing to give: %zu", again);
}

/* glibc alone: blocks freed below one still in use leave free pages in the
 * heap, which malloc_trim gives back (1). */
static void trim_glibc(void) {
  enum { N = 4000 };
  static void *b[N];
  for (int i = 0; i < N; i++) memset(b[i] = malloc(1000), 1, 1000);
  void *fence = malloc(1000); /* the heap's top stays in use */
  for (int i = 0; i < N; i++) free(b[i]);
  CHECK(malloc_trim(0) == 1, "glibc's malloc_trim gives the free pages back");
  free(fence);
}

/* The number after the first tag in text, 0 when absent. */
static unsigned long xml_size(const char *text, const char *tag) {
  const char *at = text ? strstr(text, tag) : NULL;
  return at ? strtoul(at + strlen(tag), NULL, 10) : 0;
}

/* malloc_info's text (free it), after checking glibc's shape and that
 * the memory it reports at most is at least what it reports now. */
static char *info_text(void) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  CHECK(f && malloc_info(0, f) == 0, "malloc_info");
  if (f) fclose(f);
  CHECK(text && !strncmp(text, "<malloc version=\"1\">", 20), "malloc_info: '%.60s'", text ? text : "");
  unsigned long c = xml_size(text, "<system type=\"current\" size=\""),
                m = xml_size(text, "<system type=\"max\" size=\"");
  CHECK(c > 0 && m >= c, "malloc_info: system max %lu, current %lu", m, c);
  return text;
}

static void info(void) {
  char *text = info_text();
  char want[80];
  snprintf(want, sizeof want, "<aspace type=\"total\" size=\"%lu\"/>", (unsigned long)region_size());
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
  bool anon = argc > 1 && !strcmp(argv[1], "--anon");
  if (argc > 1 && (anon || !strcmp(argv[1], "--preloaded")))
    CHECK(preloaded, "free_sized is not exported by the preload");
  void *probe = malloc(64);
  CHECK(!preloaded || anon || in_region(probe), "the preload serves malloc");
  free(probe);
  if (anon) {
    trim_anon();
  } else if (preloaded) {
    CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 0 && mallopt(M_ARENA_MAX, 1) == 0, "mallopt refuses");
    info(); /* first: a few small blocks, a chunk held */
    trim();
    info();
    sized();
  } else {
    CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1, "glibc's mallopt accepts");
    trim_glibc();
    free(info_text());
  }
  printf("extras: %s, %d failure(s)\n", preloaded ? "preloaded" : "glibc", g_failures);
  return g_failures ? 1 : 0;
}
