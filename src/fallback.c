/* fallback.c - the jemalloc side. */
#define _GNU_SOURCE
#include "fallback.h"

#include <jemalloc/jemalloc.h>

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forkorder.h"
#include "msg.h"
#include "nocancel.h"

#define MP_STR2(x) #x
#define MP_STR(x)  MP_STR2(x)

static mp_fallback_stats counters;

static inline void count(uint64_t *c, uint64_t v) { __atomic_fetch_add(c, v, __ATOMIC_RELAXED); }

/* ---- jemalloc, linked in --------------------------------------------------
 * jemalloc is linked into the library (jemalloc-static.sh: every name it
 * defines prefixed mpje_, its constructor removed, its pthread_atfork call
 * renamed mpje_hook_atfork): the interposer exports jemalloc's own names
 * (mallocx, rallocx, ...) to route a program's calls by address, and
 * libjemalloc.so.2 (with the libstdc++, libm and libgcc_s it needs) is never
 * loaded. Nothing is looked up, so nothing here enters the dynamic loader.
 *
 * jemalloc initializes itself at its first call, which is ours and made in
 * start_jemalloc only: under je_lock (the fork handlers take it: no child
 * inherits an initialization in progress), with the asynchronous signals
 * blocked (a handler that forks sees it done or not begun) and cancellation
 * off (jemalloc opens and reads files). Its initialization allocates
 * nothing of ours and takes no lock of ours. je_lock is recursive: if
 * pthread_atfork allocates in mp_fallback_register_atfork, that allocation
 * may be jemalloc's first. Invariant: je_ready set means jemalloc's
 * initialization is complete and its fork handlers are known (chained) or
 * registered. */
#define JE_FN(ret, name, args) extern __attribute__((visibility("hidden"))) ret mpje_##name args
JE_FN(void *, mallocx, (size_t, int));
JE_FN(void *, rallocx, (void *, size_t, int));
JE_FN(size_t, xallocx, (void *, size_t, size_t, int));
JE_FN(size_t, sallocx, (const void *, int));
JE_FN(void, dallocx, (void *, int));
JE_FN(size_t, nallocx, (size_t, int));
JE_FN(int, mallctl, (const char *, void *, size_t *, void *, size_t));
JE_FN(int, mallctlnametomib, (const char *, size_t *, size_t *));
JE_FN(int, mallctlbymib, (const size_t *, size_t, void *, size_t *, void *, size_t));
JE_FN(void, malloc_stats_print, (void (*)(void *, const char *), void *, const char *));
extern __attribute__((visibility("hidden"))) void (*mpje_malloc_message)(void *, const char *);
int mpje_hook_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));

static pthread_mutex_t je_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static int je_ready;
static bool je_chained;                     /* the interposer's fork handlers call jemalloc's */
static void (*je_fork[3])(void);            /* jemalloc's prepare, parent, child (chained) */
static bool je_fork_locked, je_fork_called; /* this fork's prepare took je_lock, called jemalloc's */

/* What only jemalloc's heap profiling calls, weak references
 * (jemalloc-static.sh): NULL unless the process loaded libm and libgcc_s. */
extern const char mp_weak_log[] __asm__("log") __attribute__((weak));
extern const char mp_weak_exp[] __asm__("exp") __attribute__((weak));
extern const char mp_weak_round[] __asm__("round") __attribute__((weak));
extern const char mp_weak_backtrace[] __asm__("_Unwind_Backtrace") __attribute__((weak));
extern const char mp_weak_getip[] __asm__("_Unwind_GetIP") __attribute__((weak));

/* jemalloc reads this configuration after MALLOC_CONF (it has the last word). */
extern __attribute__((visibility("hidden"))) const char *mpje_malloc_conf_2_conf_harder;

/* Does jemalloc's configuration (what it reads at its start: MALLOC_CONF,
 * the name /etc/malloc.conf links to) mention prof at all? */
static bool conf_mentions_prof(void) {
  char link[256];
  const char *env = secure_getenv("MALLOC_CONF");
  ssize_t n = readlink("/etc/malloc.conf", link, sizeof link - 1);
  link[n > 0 ? n : 0] = '\0';
  return (env && strstr(env, "prof")) || strstr(link, "prof");
}

/* Heap profiling (MALLOC_CONF prof:true) only where the process has loaded
 * what it calls; else it stays off (jemalloc would call NULL at its start).
 * Said only when asked for: a jemalloc built without profiling (armhf)
 * refuses the key, with a line. */
static void prof_only_with_libraries(void) {
  if (mp_weak_log && mp_weak_exp && mp_weak_round && mp_weak_backtrace && mp_weak_getip) return;
  if (conf_mentions_prof()) mpje_malloc_conf_2_conf_harder = "prof:false";
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

static __attribute__((noinline)) void start_jemalloc(void) {
  int cancel = mp_nocancel_begin();
  sigset_t mask = mp_fork_atomic_begin();
  pthread_mutex_lock(&je_lock);
  if (!__atomic_load_n(&je_ready, __ATOMIC_RELAXED)) {
    mp_msg_remember_stderr();               /* jemalloc may start before the constructors (a stream of another's) */
    mpje_malloc_message = jemalloc_message; /* its start's messages (MALLOC_CONF) too */
    prof_only_with_libraries();
    (void)mpje_nallocx(1, 0); /* malloc_init */
    __atomic_store_n(&je_ready, 1, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&je_lock);
  mp_fork_atomic_end(&mask);
  mp_nocancel_end(cancel);
}

static inline void ready(void) {
  if (__builtin_expect(!__atomic_load_n(&je_ready, __ATOMIC_ACQUIRE), 0)) start_jemalloc();
}

/* Called by jemalloc's initialization (under je_lock). */
int mpje_hook_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void)) {
  if (!je_chained) return pthread_atfork(prepare, parent, child);
  je_fork[0] = prepare, je_fork[1] = parent, je_fork[2] = child;
  return 0;
}

int mp_fallback_register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void)) {
  pthread_mutex_lock(&je_lock);
  int rc = pthread_atfork(prepare, parent, child);
  if (rc == 0 && !__atomic_load_n(&je_ready, __ATOMIC_RELAXED)) je_chained = true;
  pthread_mutex_unlock(&je_lock);
  return rc;
}

void mp_fallback_fork_prepare(bool single) {
  if (!je_chained) return;
  je_fork_locked = (single ? pthread_mutex_trylock(&je_lock) : pthread_mutex_lock(&je_lock)) == 0;
  je_fork_called = je_fork_locked && __atomic_load_n(&je_ready, __ATOMIC_ACQUIRE) && je_fork[0];
  if (je_fork_called) je_fork[0]();
}

void mp_fallback_fork_parent(void) {
  if (je_fork_called) je_fork[1]();
  if (je_fork_locked) pthread_mutex_unlock(&je_lock);
}

void mp_fallback_fork_child(void) {
  if (je_fork_called) je_fork[2]();
  if (je_fork_locked) je_lock = (pthread_mutex_t)PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
}

bool mp_fallback_started(void) { return __atomic_load_n(&je_ready, __ATOMIC_ACQUIRE); }

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
  ready();
  int flags = (zero ? MALLOCX_ZERO : 0) | align_flags(align);
  void *p = mpje_mallocx(at_least_16(size), flags);
  if (p) {
    count(&counters.allocs, 1);
    count(&counters.bytes_total, size);
  }
  return p;
}

void *mp_fallback_realloc(void *ptr, size_t size) {
  ready();
  void *p = mpje_rallocx(ptr, at_least_16(size), align_flags(16));
  if (p) count(&counters.bytes_total, size);
  return p;
}

void mp_fallback_free(void *ptr) {
  ready();
  count(&counters.frees, 1);
  mpje_dallocx(ptr, 0);
}

size_t mp_fallback_usable_size(const void *ptr) {
  ready();
  return mpje_sallocx(ptr, 0);
}

size_t mp_fallback_resize_in_place(void *ptr, size_t size, size_t extra) {
  ready();
  return mpje_xallocx(ptr, size, extra, 0);
}

size_t mp_fallback_good_size(size_t size, size_t align) {
  ready();
  return mpje_nallocx(at_least_16(size), align_flags(align));
}

int mp_fallback_mallctl(const char *name, void *old, size_t *oldlen, void *new, size_t newlen) {
  ready();
  return mpje_mallctl(name, old, oldlen, new, newlen);
}

int mp_fallback_mallctlnametomib(const char *name, size_t *mib, size_t *miblen) {
  ready();
  return mpje_mallctlnametomib(name, mib, miblen);
}

int mp_fallback_mallctlbymib(const size_t *mib, size_t miblen, void *old, size_t *oldlen, void *new, size_t newlen) {
  ready();
  return mpje_mallctlbymib(mib, miblen, old, oldlen, new, newlen);
}

void mp_fallback_stats_print(void (*write_cb)(void *, const char *), void *opaque, const char *opts) {
  ready();
  mpje_malloc_stats_print(write_cb, opaque, opts);
}

void mp_fallback_get_stats(mp_fallback_stats *out) {
  out->allocs = __atomic_load_n(&counters.allocs, __ATOMIC_RELAXED);
  out->frees = __atomic_load_n(&counters.frees, __ATOMIC_RELAXED);
  out->bytes_total = __atomic_load_n(&counters.bytes_total, __ATOMIC_RELAXED);
}

bool mp_fallback_trim(void) {
  if (!mp_fallback_started()) return false; /* nothing of jemalloc to purge */
  return mpje_mallctl("arena." MP_STR(MALLCTL_ARENAS_ALL) ".purge", NULL, NULL, NULL, 0) == 0;
}
