/* fallback.c - the jemalloc side. */
#define _GNU_SOURCE
#include "fallback.h"

#include <jemalloc/jemalloc.h>

#include <dlfcn.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "msg.h"

#define MP_STR2(x) #x
#define MP_STR(x)  MP_STR2(x)

static mp_fallback_stats counters;

static inline void count(uint64_t *c, uint64_t v) { __atomic_fetch_add(c, v, __ATOMIC_RELAXED); }

/* ---- jemalloc's entry points -------------------------------------------------
 * The interposer exports jemalloc's own names (mallocx, rallocx, ...) to
 * route a program's calls by address, so a call of ours through those names
 * would come back to us. jemalloc's definitions are looked up once in
 * libjemalloc itself (dlopen RTLD_NOLOAD + dlsym), at the first request it
 * must serve. Requests made while that lookup runs (the dynamic loader may
 * allocate) are served from a small static buffer and never freed. */
static struct {
  void *(*mallocx)(size_t, int);
  void *(*rallocx)(void *, size_t, int);
  size_t (*xallocx)(void *, size_t, size_t, int);
  size_t (*sallocx)(const void *, int);
  void (*dallocx)(void *, int);
  size_t (*nallocx)(size_t, int);
} je;
enum { UNRESOLVED, RESOLVING, READY };
static int je_state;
static pid_t je_resolver; /* the thread resolving (its own requests use the buffer) */

static _Alignas(4096) char boot[256 << 10];
static size_t boot_used;

static bool in_boot(const void *p) { return (const char *)p >= boot && (const char *)p < boot + sizeof boot; }

/* A block of the buffer: its size in the 16 bytes before it (align <= 4096). */
static void *boot_alloc(size_t size, size_t align, bool zero) {
  (void)zero; /* the buffer is never reused: zero already */
  if (align < 16) align = 16;
  size_t at = (__atomic_load_n(&boot_used, __ATOMIC_RELAXED) + 16 + align - 1) & ~(align - 1);
  if (align > 4096 || at + size > sizeof boot) return NULL;
  __atomic_store_n(&boot_used, at + size, __ATOMIC_RELAXED);
  memcpy(boot + at - 16, &size, sizeof size);
  return boot + at;
}

static size_t boot_size(const void *p) {
  size_t n;
  memcpy(&n, (const char *)p - 16, sizeof n);
  return n;
}

static void resolve(void) {
  void *h = dlopen("libjemalloc.so.2", RTLD_NOW | RTLD_NOLOAD);
  if (!h) mp_fatal("jemalloc (libjemalloc.so.2) is not loaded: no fallback allocator");
  static const char *const names[] = {"mallocx", "rallocx", "xallocx", "sallocx", "dallocx", "nallocx"};
  void *fns[6];
  for (int i = 0; i < 6; i++)
    if (!(fns[i] = dlsym(h, names[i]))) mp_fatal("jemalloc has no %s: no fallback allocator", names[i]);
  memcpy(&je, fns, sizeof je);
  _Static_assert(sizeof je == sizeof fns, "one pointer per name");
}

/* True when je is usable; false for a request of the resolving thread itself. */
static __attribute__((noinline)) bool ready_slow(void) {
  int st = UNRESOLVED;
  pid_t me = gettid();
  if (__atomic_compare_exchange_n(&je_state, &st, RESOLVING, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    __atomic_store_n(&je_resolver, me, __ATOMIC_RELEASE);
    resolve();
    __atomic_store_n(&je_state, READY, __ATOMIC_RELEASE);
    return true;
  }
  if (__atomic_load_n(&je_resolver, __ATOMIC_ACQUIRE) == me) return false;
  while (__atomic_load_n(&je_state, __ATOMIC_ACQUIRE) != READY) sched_yield();
  return true;
}

static inline bool ready(void) {
  return __builtin_expect(__atomic_load_n(&je_state, __ATOMIC_ACQUIRE) == READY, 1) || ready_slow();
}

void mp_fallback_init(void) { (void)ready(); }

/* jemalloc's 8-byte class is only 8-aligned: every block gets 16 bytes at
 * least, so that all blocks are aligned for max_align_t. */
static inline size_t at_least_16(size_t size) { return size < 16 ? 16 : size; }

/* Every block keeps the region's 16-byte granule. jemalloc's quantum is
 * alignof(max_align_t): 16 on x86-64 and arm64, 8 on armhf, whose classes of
 * 24, 40, 56... bytes are only 8-aligned: there every request asks for 16. */
static inline int align_flags(size_t align) {
  if (align > 16) return MALLOCX_LG_ALIGN(__builtin_ctzl(align));
  return _Alignof(max_align_t) < 16 ? MALLOCX_LG_ALIGN(4) : 0;
}

void *mp_fallback_alloc(size_t size, size_t align, bool zero) {
  if (!ready()) return boot_alloc(size, align, zero);
  int flags = (zero ? MALLOCX_ZERO : 0) | align_flags(align);
  void *p = je.mallocx(at_least_16(size), flags);
  if (p) {
    count(&counters.allocs, 1);
    count(&counters.bytes_total, size);
  }
  return p;
}

void *mp_fallback_realloc(void *ptr, size_t size) {
  if (in_boot(ptr) || !ready()) { /* out of the buffer (never back into it) */
    void *n = mp_fallback_alloc(size, 16, false);
    size_t old = in_boot(ptr) ? boot_size(ptr) : je.sallocx(ptr, 0);
    if (n) memcpy(n, ptr, old < size ? old : size);
    if (n && !in_boot(ptr)) mp_fallback_free(ptr);
    return n;
  }
  void *p = je.rallocx(ptr, at_least_16(size), align_flags(16));
  if (p) count(&counters.bytes_total, size);
  return p;
}

void mp_fallback_free(void *ptr) {
  if (in_boot(ptr)) return;
  count(&counters.frees, 1);
  if (ready()) je.dallocx(ptr, 0);
}

size_t mp_fallback_usable_size(const void *ptr) {
  if (in_boot(ptr)) return boot_size(ptr);
  return ready() ? je.sallocx(ptr, 0) : 0;
}

size_t mp_fallback_resize_in_place(void *ptr, size_t size, size_t extra) {
  if (in_boot(ptr) || !ready()) return mp_fallback_usable_size(ptr);
  return je.xallocx(ptr, size, extra, 0);
}

size_t mp_fallback_good_size(size_t size, size_t align) {
  if (!ready()) return size;
  return je.nallocx(at_least_16(size), align_flags(align));
}

void mp_fallback_get_stats(mp_fallback_stats *out) {
  out->allocs = __atomic_load_n(&counters.allocs, __ATOMIC_RELAXED);
  out->frees = __atomic_load_n(&counters.frees, __ATOMIC_RELAXED);
  out->bytes_total = __atomic_load_n(&counters.bytes_total, __ATOMIC_RELAXED);
}

static void jemalloc_message(void *opaque, const char *s) {
  (void)opaque;
  char line[400];
  while (s && *s) {
    size_t n = strcspn(s, "\n"), k = n < sizeof line - 1 ? n : sizeof line - 1;
    memcpy(line, s, k);
    line[k] = '\0';
    if (k) mp_msg_stderr("jemalloc: %s", line);
    s += n + (s[n] == '\n');
  }
}

void mp_fallback_route_messages(void) { malloc_message = jemalloc_message; }

bool mp_fallback_trim(void) { return mallctl("arena." MP_STR(MALLCTL_ARENAS_ALL) ".purge", NULL, NULL, NULL, 0) == 0; }
