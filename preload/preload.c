/* preload.c - the interposer: exported malloc-family symbols, lazy
 * thread-safe initialization, fork handlers, statistics at exit. It holds no
 * allocator logic: every call is dispatched to src/alloc.c.
 *
 * Initialization happens on the first call (which may come from the dynamic
 * loader or libstdc++ before any constructor runs). During it nothing
 * allocates; if something we call does (pthread_atfork may), the recursive
 * call sees t_not_pool and is served by jemalloc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include "alloc.h"
#include "api.h"
#include "config.h"
#include "fallback.h"
#include "forkorder.h"
#include "guard.h"
#include "map.h"
#include "msg.h"
#include "nocancel.h"
#include "pool.h"
#include "preload.h"
#include "stats.h"

#define EXPORT    __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)

static mp_pool g_pool;
static mp_pool *g_active; /* &g_pool once the region is usable, else NULL */
static mp_config g_cfg;
static int g_ready; /* set (release) once initialization is complete */
static pthread_mutex_t g_init_lock = PTHREAD_MUTEX_INITIALIZER;
/* Nonzero while this thread's requests must not come from the pool: inside
 * initialize() (a recursive call), and inside libc's stream constructors
 * (stdio.c). Either way jemalloc serves them. */
static __thread int t_not_pool __attribute__((tls_model("initial-exec")));

/* This thread's view of the pool: NULL until its first request after
 * initialization, and again while t_not_pool changes; then g_active. One
 * thread-local load is the whole test on the fast path. */
static __thread mp_pool *t_pool __attribute__((tls_model("initial-exec")));

void mp_preload_not_pool(int delta) {
  t_not_pool += delta;
  t_pool = NULL;                       /* the next request looks again (pool_slow) */
  mp_tcache_keep_out(t_not_pool != 0); /* and misses the thread cache */
}

/* The environment is read once, at initialization, and every value is
 * copied here: a program that rewrites its environment block to set its
 * process title (nginx, postgres) keeps its device name and its statistics
 * and map paths. A value longer than MP_VALUE_MAX is copied cut at
 * MP_VALUE_MAX + 1 bytes, which the configuration refuses as too long. */
enum { ENV_READS_MAX = 24 };
static char g_env_copy[ENV_READS_MAX * (MP_VALUE_MAX + 2)];
static size_t g_env_used;

static const char *env(const char *name) {
  const char *v = secure_getenv(name);
  if (!v) return NULL;
  size_t n = strnlen(v, MP_VALUE_MAX + 1);
  if (g_env_used + n + 1 > sizeof g_env_copy) return NULL; /* more reads than config makes: unset */
  char *copy = g_env_copy + g_env_used;
  memcpy(copy, v, n);
  copy[n] = '\0';
  g_env_used += n + 1;
  return copy;
}

/* The pool the prepare handler locked (g_active may be published between
 * prepare and the other handlers by a concurrent first initialization).
 * The order of the locks: forkorder.h. */
static mp_pool *g_forking;
static mp_fork_state g_fork;
static bool g_init_locked;

static void fork_prepare(void) {
  mp_fork_begin(&g_fork);
  /* no child inherits an initialization in progress */
  g_init_locked = (g_fork.single ? pthread_mutex_trylock(&g_init_lock) : pthread_mutex_lock(&g_init_lock)) == 0;
  if (g_init_locked && g_fork.single) { /* nothing can take it before fork: inherited free (pool.c) */
    pthread_mutex_unlock(&g_init_lock);
    g_init_locked = false;
  }
  g_forking = __atomic_load_n(&g_active, __ATOMIC_ACQUIRE);
  if (g_forking) mp_pool_fork_prepare(g_forking, g_fork.single);
  mp_fallback_fork_prepare(g_fork.single);
}
static void fork_parent(void) {
  mp_fallback_fork_parent();
  if (g_forking) mp_pool_fork_parent(g_forking);
  if (g_init_locked) pthread_mutex_unlock(&g_init_lock);
  mp_fork_end_parent(&g_fork);
}
static void fork_child(void) {
  mp_fallback_fork_child();
  if (g_init_locked) pthread_mutex_init(&g_init_lock, NULL); /* else the interrupted initialization's */
  int rc = g_forking ? mp_pool_fork_child(g_forking) : 0;
  if (rc != 0)
    mp_msg(
        "fork: no memory for the child's private copy of the pool (%s): the child allocates from jemalloc and "
        "the region is read-only in it",
        mp_strerror(-rc));
  mp_fork_end_child(&g_fork);
}

static mp_file_id region_id(void) {
  if (__atomic_load_n(&g_active, __ATOMIC_ACQUIRE)) return (mp_file_id){g_pool.region.dev, g_pool.region.ino};
  return mp_file_id_of(g_cfg.device);
}

/* The pool is not used: the reason said (MEMPOOL_STRICT: no pool, no
 * program). A process of the tree that runs as another user (a privilege
 * drop before exec) may not open the device: like a window others hold,
 * that is said at level 2 only. */
static void refuse(const char *err, int rc) {
  if (g_cfg.policy.strict) mp_fatal("%s (MEMPOOL_STRICT=1: stopping)", err);
  mp_log(rc == -EACCES ? MP_LOG_INFO : MP_LOG_PROBLEM, "%s; running on jemalloc only", err);
}

/* Initialization is two steps, each once, under g_init_lock with this
 * thread's requests on jemalloc (t_not_pool), cancellation off and the
 * asynchronous signals blocked (a fork from a handler sees no half-mapped
 * region):
 *   configure: the environment is read and copied (the constructor: before
 *     main can rewrite it), configuration errors are said (MEMPOOL_STRICT
 *     stops there);
 *   open: the region is opened and the fork handlers registered, at the
 *     first request that needs the pool (or a report at exit; at start
 *     with MEMPOOL_LOG=2, which says where the region is). A program
 *     that never allocates (/bin/true, a shell's exec'd tools that only
 *     exec) opens, maps and registers nothing.
 * Invariant: g_ready set means both steps are done and g_active is final. */
static bool g_configured, g_want_pool;

static void configure(void) {
  char err[320];
  if (getauxval(AT_SECURE)) return; /* setuid/setgid: ignore the environment */
  mp_msg_remember_stderr();
  int rc = mp_config_load(&g_cfg, env, err, sizeof err);
  mp_log_setup(g_cfg.log_level, g_cfg.log_path, g_cfg.log_path ? region_id() : (mp_file_id){0, 0});
  if (g_cfg.stats == MP_STATS_STDERR) mp_stats_keep_stderr();
  if (rc != 0) refuse(err, rc);
  mp_api_default_opener(mp_preload_pool); /* mempool_default() before any request */
  g_want_pool = rc == 0;
}

static void open_region(void) {
  char err[320];
  int rc = mp_pool_open(&g_pool, &g_cfg, err, sizeof err);
  if (rc != 0) {
    refuse(err, rc);
    return;
  }
  mp_log_avoid((mp_file_id){g_pool.region.dev, g_pool.region.ino}); /* a file just created */
  if (mp_fallback_register_atfork(fork_prepare, fork_parent, fork_child) != 0) {
    mp_msg("cannot register fork handlers; running on jemalloc only");
    mp_pool_close(&g_pool);
    return;
  }
  if (g_cfg.policy.check) mp_guard_init(&g_pool);
  mp_pool_enable_small(&g_pool); /* small regions stay on the range path */
  mp_log(MP_LOG_INFO, "region %.160s %#llx..%#llx mapped at %p (%llu bytes)%s%s", g_cfg.device,
         (unsigned long long)g_cfg.base, (unsigned long long)g_cfg.high, (void *)g_pool.region.base,
         (unsigned long long)g_pool.region.size, g_pool.small.enabled ? ", thread caches on" : "",
         g_cfg.policy.strict ? ", strict" : "");
  __atomic_store_n(&g_active, &g_pool, __ATOMIC_RELEASE);
  mp_api_publish_default(&g_pool); /* mempool_default() */
}

/* Runs what is not done yet of configure, and of open when asked. */
static void initialize(bool open) {
  pthread_mutex_lock(&g_init_lock);
  if (!__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE)) {
    t_not_pool++;
    int cancel = mp_nocancel_begin();       /* open, close and write are cancellation points */
    sigset_t mask = mp_fork_atomic_begin(); /* a fork from a handler sees no half-mapped region */
    if (!g_configured) configure();
    g_configured = true;
    open = open || g_cfg.log_level >= MP_LOG_INFO; /* MEMPOOL_LOG=2 says where the region is, at start */
    if (open && g_want_pool) open_region();
    mp_fork_atomic_end(&mask);
    mp_nocancel_end(cancel);
    t_not_pool--;
    if (open) __atomic_store_n(&g_ready, 1, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&g_init_lock);
}

static __attribute__((noinline)) mp_pool *pool_slow(void) {
  if (t_not_pool) return NULL; /* a call from inside initialize() or a stream constructor: jemalloc */
  if (!__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE)) initialize(true);
  mp_pool *p = __atomic_load_n(&g_active, __ATOMIC_ACQUIRE);
  t_pool = p; /* NULL (no pool in use): every request comes here, and goes to jemalloc */
  return p;
}

static inline mp_pool *pool(void) {
  mp_pool *p = t_pool;
  if (likely(p != NULL)) return p;
  return pool_slow();
}

/* Pointers can only be in the region once it is active: free needs no init. */
static inline mp_pool *owner_pool(void) { return __atomic_load_n(&g_active, __ATOMIC_ACQUIRE); }

/* The environment is read before main can rewrite it (process titles). */
__attribute__((constructor)) static void at_start(void) { initialize(false); }

/* A report covers the pool (opened for it when nothing was allocated). */
__attribute__((destructor)) static void at_exit(void) {
  if (g_cfg.stats == MP_STATS_OFF && !g_cfg.map_path) return;
  mp_pool *p = pool();
  int cancel = mp_nocancel_begin();
  mp_stats_report_to(&g_cfg, p, region_id());
  char err[320];
  if (p && g_cfg.map_path && mp_map_write_to(g_cfg.map_path, p, err, sizeof err) != 0) mp_msg("%s; no map", err);
  mp_nocancel_end(cancel);
}

/* ---- the malloc family ---------------------------------------------------- */

/* What malloc's hit (mp_malloc_hit) does not serve. */
static __attribute__((noinline)) void *malloc_slow(size_t n) { return mp_malloc_slow(pool(), n); }
EXPORT void *malloc(size_t n) {
  void *r = mp_malloc_hit(n);
  if (__builtin_expect(r != NULL, 1)) return r;
  return malloc_slow(n); /* a tail call: no frame on the fast path */
}
EXPORT void *calloc(size_t nmemb, size_t size) { return mp_calloc(pool(), nmemb, size); }
EXPORT void *realloc(void *p, size_t n) { return mp_realloc(pool(), p, n); }
EXPORT void *reallocarray(void *p, size_t nmemb, size_t size) { return mp_reallocarray(pool(), p, nmemb, size); }
static __attribute__((noinline)) void free_slow(void *p) { mp_free_slow(owner_pool(), p); }
EXPORT void free(void *p) {
  if (__builtin_expect(!mp_free_hit(p), 0)) free_slow(p); /* a tail call */
}
EXPORT void cfree(void *p) { free(p); }
EXPORT int posix_memalign(void **out, size_t align, size_t n) { return mp_posix_memalign(pool(), out, align, n); }
EXPORT void *aligned_alloc(size_t align, size_t n) { return mp_aligned_alloc(pool(), align, n); }
EXPORT void *memalign(size_t align, size_t n) { return mp_memalign(pool(), align, n); }
EXPORT void *valloc(size_t n) { return mp_valloc(pool(), n); }
EXPORT void *pvalloc(size_t n) { return mp_pvalloc(pool(), n); }
EXPORT size_t malloc_usable_size(void *p) { return mp_malloc_usable_size(owner_pool(), p); }

/* glibc's statistics calls report the pool. */
EXPORT struct mallinfo2 mallinfo2(void) {
  struct mallinfo2 m;
  mp_stats_mallinfo2(pool(), &m);
  return m;
}

EXPORT struct mallinfo mallinfo(void) {
  struct mallinfo2 m2;
  mp_stats_mallinfo2(pool(), &m2);
  struct mallinfo m = {.arena = (int)m2.arena,
                       .ordblks = (int)m2.ordblks,
                       .hblkhd = (int)m2.hblkhd,
                       .usmblks = (int)m2.usmblks,
                       .uordblks = (int)m2.uordblks,
                       .fordblks = (int)m2.fordblks,
                       .keepcost = (int)m2.keepcost};
  return m;
}

EXPORT void malloc_stats(void) { mp_stats_report_stderr(pool(), MP_STATS_TEXT); }

/* jemalloc's own API (Debian's libjemalloc exports it unprefixed): a
 * program linked with -ljemalloc hands these pool pointers too. mallctl,
 * mallctlnametomib, mallctlbymib and malloc_stats_print reach the fallback
 * jemalloc (linked in) and cover its blocks and statistics only. */
EXPORT void *mallocx(size_t size, int flags) { return mp_mallocx(pool(), size, flags); }
EXPORT void *rallocx(void *p, size_t size, int flags) { return mp_rallocx(pool(), p, size, flags); }
EXPORT size_t xallocx(void *p, size_t size, size_t extra, int flags) {
  return mp_xallocx(owner_pool(), p, size, extra, flags);
}
EXPORT size_t sallocx(const void *p, int flags) {
  (void)flags;
  return mp_malloc_usable_size(owner_pool(), p);
}
EXPORT void dallocx(void *p, int flags) {
  (void)flags;
  mp_free(owner_pool(), p);
}
EXPORT void sdallocx(void *p, size_t size, int flags) {
  mp_free_sized(owner_pool(), p, size, (flags & 0x3f) ? (size_t)1 << (flags & 0x3f) : 0, "sdallocx");
}
EXPORT size_t nallocx(size_t size, int flags) { return mp_nallocx(pool(), size, flags); }
EXPORT int mallctl(const char *name, void *old, size_t *oldlen, void *new, size_t newlen) {
  return mp_fallback_mallctl(name, old, oldlen, new, newlen);
}
EXPORT int mallctlnametomib(const char *name, size_t *mib, size_t *miblen) {
  return mp_fallback_mallctlnametomib(name, mib, miblen);
}
EXPORT int mallctlbymib(const size_t *mib, size_t miblen, void *old, size_t *oldlen, void *new, size_t newlen) {
  return mp_fallback_mallctlbymib(mib, miblen, old, oldlen, new, newlen);
}
EXPORT void malloc_stats_print(void (*write_cb)(void *, const char *), void *opaque, const char *opts) {
  mp_fallback_stats_print(write_cb, opaque, opts);
}

/* C23 (glibc 2.43 declares them; older headers do not). */
EXPORT void free_sized(void *p, size_t size) { mp_free_sized(owner_pool(), p, size, 0, "free_sized"); }
EXPORT void free_aligned_sized(void *p, size_t align, size_t size) {
  mp_free_sized(owner_pool(), p, size, align, "free_aligned_sized");
}

/* 1 when memory was given back: the pool's wholly free chunks (or an anon
 * region's free pages); jemalloc purges its unused pages too (not counted). */
EXPORT int malloc_trim(size_t pad) {
  (void)pad; /* chunks go back whole: no pad to keep at a top */
  mp_pool *p = pool();
  bool gave = p && mp_pool_trim(p);
  mp_fallback_trim();
  return gave;
}

/* glibc's options tune glibc's heap, which does not serve this program:
 * none has a meaning here, and each is refused (0), as glibc refuses an
 * option it does not know. */
EXPORT int mallopt(int param, int value) {
  (void)param;
  (void)value;
  return 0;
}

/* glibc's XML shape: one heap (the pool: free ranges, held bytes, peak,
 * window) and the totals, with jemalloc's requests as "mmap". */
EXPORT int malloc_info(int options, FILE *fp) {
  if (options != 0) return EINVAL;
  if (!fp) return EINVAL;
  mp_pool *p = pool();
  mp_pool_info in = {0};
  if (p) mp_pool_get_info(p, &in);
  mp_fallback_stats fb;
  mp_fallback_get_stats(&fb);
  char buf[1536];
  unsigned long long held = in.held_bytes + in.inherited_bytes, peak = in.mapped_peak;
  mp_format(buf, sizeof buf,
            "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n</sizes>\n"
            "<total type=\"fast\" count=\"0\" size=\"0\"/>\n<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n"
            "<system type=\"current\" size=\"%llu\"/>\n<system type=\"max\" size=\"%llu\"/>\n"
            "<aspace type=\"total\" size=\"%llu\"/>\n<aspace type=\"mprotect\" size=\"%llu\"/>\n</heap>\n"
            "<total type=\"fast\" count=\"0\" size=\"0\"/>\n<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n"
            "<total type=\"mmap\" count=\"%llu\" size=\"%llu\"/>\n"
            "<system type=\"current\" size=\"%llu\"/>\n<system type=\"max\" size=\"%llu\"/>\n"
            "<aspace type=\"total\" size=\"%llu\"/>\n<aspace type=\"mprotect\" size=\"%llu\"/>\n</malloc>\n",
            (unsigned long long)in.free_ranges, (unsigned long long)in.free_bytes, held, peak,
            (unsigned long long)in.region_bytes, held, (unsigned long long)in.free_ranges,
            (unsigned long long)in.free_bytes, (unsigned long long)(fb.allocs - fb.frees),
            (unsigned long long)fb.bytes_total, held, peak, (unsigned long long)in.region_bytes, held);
  return fputs(buf, fp) < 0 ? -1 : 0;
}

/* For the C++ operators (cxx_new.c). */
mp_pool *mp_preload_pool(void) { return pool(); }
mp_pool *mp_preload_owner_pool(void) { return owner_pool(); }
