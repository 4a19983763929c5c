/* api.c - the public mempool_* API (mempool.h): pools over a device window
 * that serve only from their region, built on the mp_pool layer.
 *
 * The mempool_t object lives in its own private mapping (mp_meta_map), never
 * in malloc'ed memory: the API is usable inside the interposer. Live pools
 * are kept in a list so that fork can give the child a private copy of each,
 * as the interposer does for its own pool.
 *
 * API pools serve everything from ranges: the small-object spans and thread
 * caches (mp_pool_enable_small) exist once per process, for the interposer.
 */
#define _GNU_SOURCE
#include "mempool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "dma.h"
#include "msg.h"
#include "forkorder.h"
#include "pool.h"

#define EXPORT __attribute__((visibility("default")))

/* A mempool_t is a handle on an mp_pool: its own (mempool_create), or the
 * interposer's (mempool_default: a static handle, never in g_pools, never
 * destroyed; the interposer handles its fork). */
struct mempool {
  mp_pool *pool; /* &own, or the interposer's */
  mp_pool own;
  struct mempool *prev, *next; /* g_pools, under g_lock */
  uint64_t rejected;           /* calloc overflows: refused before the pool saw them */
  size_t map_len;              /* this object's mapping; 0 for the default handle */
  char names[];                /* the device and the sysfs root: the region keeps pointers to them */
};

static mempool_t g_default; /* .pool set (release) once the interposer's pool is in use */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static mempool_t *g_pools;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;
static int g_atfork_rc = -1;

/* ---- fork: every pool's lock is held across fork; the child privatizes ---- */

static mp_fork_state g_fork; /* the order of the locks: forkorder.h */
static bool g_fork_locked;

static void fork_prepare(void) {
  mp_fork_begin(&g_fork);
  g_fork_locked = (g_fork.single ? pthread_mutex_trylock(&g_lock) : pthread_mutex_lock(&g_lock)) == 0;
  /* The list changes with signals blocked: a fork from a signal handler
   * finds it free. Without it (a handler interrupted a handler), no pool
   * is touched. */
  for (mempool_t *m = g_fork_locked ? g_pools : NULL; m; m = m->next) mp_pool_fork_prepare(m->pool, g_fork.single);
}

static void fork_parent(void) {
  if (g_fork_locked) {
    for (mempool_t *m = g_pools; m; m = m->next) mp_pool_fork_parent(m->pool);
    pthread_mutex_unlock(&g_lock);
  }
  mp_fork_end_parent(&g_fork);
}

static void fork_child(void) {
  for (mempool_t *m = g_fork_locked ? g_pools : NULL; m; m = m->next) {
    int rc = mp_pool_fork_child(m->pool);
    if (rc != 0) /* the pool is detached: NULL for every request, region read-only */
      mp_msg("fork: no memory for the child's private copy of pool %.160s %#llx (%s): it serves nothing in the child",
             m->names, (unsigned long long)m->pool->region.dev_offset, mp_strerror(-rc));
  }
  if (g_fork_locked) pthread_mutex_init(&g_lock, NULL);
  mp_fork_end_child(&g_fork);
}

static void register_atfork(void) { g_atfork_rc = pthread_atfork(fork_prepare, fork_parent, fork_child); }

/* ---- creation ------------------------------------------------------------- */

static mempool_t *fail(char *err, size_t errlen, int e, const char *why) {
  if (err && errlen) mp_format(err, errlen, "%s", why);
  errno = e;
  return NULL;
}

/* The region mapped and the pool listed for fork; 0, or -errno and why. */
static int open_and_list(mempool_t *m, const mp_config *cfg, char *why, size_t whylen) {
  int rc = mp_pool_open(m->pool, cfg, why, whylen);
  if (rc != 0) return rc;
  /* After the open: pthread_atfork may allocate, and under the interposer
   * (libmempool.so linked rather than preloaded) that first malloc would
   * otherwise let the interposer lock this very range before us. */
  pthread_once(&g_atfork_once, register_atfork);
  if (g_atfork_rc != 0) {
    mp_pool_close(m->pool);
    mp_format(why, whylen, "cannot register the fork handlers");
    return -ENOMEM;
  }
  pthread_mutex_lock(&g_lock);
  m->next = g_pools;
  if (g_pools) g_pools->prev = m;
  g_pools = m;
  pthread_mutex_unlock(&g_lock);
  return 0;
}

EXPORT mempool_t *mempool_create(const struct mempool_params *prm, char *err, size_t errlen) {
  char why[320];
  long pg = sysconf(_SC_PAGESIZE);
  uint64_t page = pg > 0 ? (uint64_t)pg : 4096;

  if (!prm || !prm->device || !*prm->device)
    return fail(err, errlen, EINVAL, "no device given (a device path, a regular file or \"anon\")");
  if (mp_check_window(prm->base, prm->high, "base", "high", why, sizeof why) != 0)
    return fail(err, errlen, EINVAL, why);
  if (prm->base % page) {
    mp_format(why, sizeof why, "base (%#llx) is not aligned to the page size (%llu)", (unsigned long long)prm->base,
              (unsigned long long)page);
    return fail(err, errlen, EINVAL, why);
  }
  /* API pools read sysfs where the interposer does (MEMPOOL_SYSFS_ROOT, tests) */
  const char *root = secure_getenv("MEMPOOL_SYSFS_ROOT");
  size_t dlen = strlen(prm->device), rlen = root ? strnlen(root, MP_VALUE_MAX + 1) : 0;
  if (rlen > MP_VALUE_MAX)
    return fail(err, errlen, EINVAL, "MEMPOOL_SYSFS_ROOT is longer than " MP_VALUE_MAX_STR " bytes");
  size_t len = (sizeof(mempool_t) + dlen + 1 + rlen + 1 + page - 1) / page * page;
  mempool_t *m = mp_meta_map(len);
  if (!m) {
    int e = errno;
    mp_format(why, sizeof why, "cannot map %llu bytes for the pool object: %s", (unsigned long long)len,
              mp_strerror(e));
    return fail(err, errlen, e, why);
  }
  m->map_len = len;
  m->pool = &m->own;
  memcpy(m->names, prm->device, dlen + 1);
  if (rlen) memcpy(m->names + dlen + 1, root, rlen); /* NUL: the fresh mapping's zeros */
  mp_config cfg = {.device = m->names,
                   .base = prm->base,
                   .high = prm->high,
                   .sync = !prm->cached,
                   .stats = MP_STATS_OFF,
                   .sysfs_root = rlen ? m->names + dlen + 1 : NULL};
  /* A fork from a signal handler sees the pool mapped and listed, or
   * neither: its child copies every listed pool (forkorder.h). */
  sigset_t old = mp_fork_atomic_begin();
  int rc = open_and_list(m, &cfg, why, sizeof why);
  mp_fork_atomic_end(&old);
  if (rc != 0) {
    if (rc == -EBUSY) /* the lock is per open: another pool or the interposer counts too */
      mp_format(why, sizeof why,
                "region %.160s %#llx..%#llx is in use (by another pool, the interposer or another process)",
                prm->device, (unsigned long long)prm->base, (unsigned long long)prm->high);
    mp_meta_unmap(m, len);
    return fail(err, errlen, -rc, why);
  }
  return m;
}

EXPORT void mempool_destroy(mempool_t *m) {
  if (!m || m == &g_default) return;     /* the interposer's pool lives as long as the process */
  sigset_t old = mp_fork_atomic_begin(); /* unlisted and unmapped, or neither (forkorder.h) */
  pthread_mutex_lock(&g_lock);
  if (m->prev)
    m->prev->next = m->next;
  else
    g_pools = m->next;
  if (m->next) m->next->prev = m->prev;
  pthread_mutex_unlock(&g_lock);
  mp_pool_close(m->pool);
  mp_fork_atomic_end(&old);
  mp_meta_unmap(m, m->map_len);
}

/* ---- allocation ------------------------------------------------------------ */

/* Pointers handed back must be this pool's: mp_pool_* trusts its caller on
 * that (a foreign pointer's granule index would be meaningless). */
static void owned_or_trap(mempool_t *m, const void *p, const char *caller) {
  if (!m) mp_fatal("%s(%p): no pool given", caller, p);
  if (!mp_pool_owns(m->pool, p))
    mp_fatal("%s(%p): invalid pointer: not in this pool's region (%p, %llu bytes)", caller, p,
             (void *)m->pool->region.base, (unsigned long long)m->pool->region.size);
}

static void *serve(mempool_t *m, size_t size, size_t align) {
  if (!m) {
    errno = EINVAL;
    return NULL;
  }
  /* mp_pool_alloc refuses (and counts) sizes above the region, so anything
   * above PTRDIFF_MAX as well. */
  void *q = mp_pool_alloc(m->pool, size, align);
  if (!q) errno = ENOMEM;
  return q;
}

EXPORT void *mempool_alloc(mempool_t *m, size_t size) { return serve(m, size, MP_GRANULE); }

EXPORT void *mempool_aligned_alloc(mempool_t *m, size_t align, size_t size) {
  if (align == 0 || (align & (align - 1))) {
    errno = EINVAL;
    return NULL;
  }
  return serve(m, size, align < MP_GRANULE ? MP_GRANULE : align);
}

EXPORT void *mempool_calloc(mempool_t *m, size_t nmemb, size_t size) {
  size_t n;
  if (!m) return serve(m, 0, MP_GRANULE);
  if (__builtin_mul_overflow(nmemb, size, &n)) {
    __atomic_fetch_add(&m->rejected, 1, __ATOMIC_RELAXED);
    errno = ENOMEM;
    return NULL;
  }
  void *q = serve(m, n, MP_GRANULE);
  /* Freed blocks keep their bytes (the region may be a file or a device). */
  if (q) memset(q, 0, n);
  return q;
}

EXPORT void *mempool_realloc(mempool_t *m, void *p, size_t size) {
  if (!p) return mempool_alloc(m, size);
  owned_or_trap(m, p, "mempool_realloc");
  if (size == 0) {
    mp_pool_free(m->pool, p, "mempool_realloc");
    return NULL;
  }
  size_t old = mp_pool_usable_size(m->pool, p, "mempool_realloc"); /* traps if not a live block */
  if (mp_pool_resize(m->pool, p, size, "mempool_realloc")) return p;
  void *q = serve(m, size, MP_GRANULE);
  if (!q) return NULL;
  memcpy(q, p, old < size ? old : size);
  mp_pool_free(m->pool, p, "mempool_realloc");
  return q;
}

EXPORT void mempool_free(mempool_t *m, void *p) {
  if (!p) return;
  int saved = errno;
  owned_or_trap(m, p, "mempool_free");
  mp_pool_free(m->pool, p, "mempool_free");
  errno = saved;
}

EXPORT size_t mempool_usable_size(mempool_t *m, const void *p) {
  if (!p) return 0;
  owned_or_trap(m, p, "mempool_usable_size");
  return mp_pool_usable_size(m->pool, p, "mempool_usable_size");
}

EXPORT bool mempool_owns(const mempool_t *m, const void *p) { return m && mp_pool_owns(m->pool, p); }

EXPORT void *mempool_base(const mempool_t *m) { return m ? (void *)m->pool->region.base : NULL; }

/* ---- inspection ------------------------------------------------------------- */

EXPORT int mempool_get_stats(mempool_t *m, struct mempool_stats *out) {
  if (!m || !out) {
    errno = EINVAL;
    return -1;
  }
  mp_pool_info in;
  mp_pool_get_info(m->pool, &in);
  *out = (struct mempool_stats){
      .region_bytes = in.region_bytes,
      .bytes_in_use = in.used_bytes,
      .peak_bytes = in.stats.region_peak,
      .bytes_free = in.free_bytes,
      .largest_free = in.largest_free,
      .allocations = in.stats.pool_allocs + in.small_allocs,
      .frees = in.stats.pool_frees + in.small_frees,
      .failed_requests = in.stats.pool_failed + __atomic_load_n(&m->rejected, __ATOMIC_RELAXED),
      .ranges_in_use = in.used_ranges,
      .ranges_free = in.free_ranges,
      .metadata_bytes = in.meta_bytes,
  };
  return 0;
}

struct walk_ctx {
  mempool_walk_fn fn;
  void *ctx;
};

static void walk_one(void *vctx, uint32_t start, uint32_t size, bool in_use) {
  struct walk_ctx *w = vctx;
  w->fn((size_t)start << MP_GRANULE_SHIFT, (size_t)size << MP_GRANULE_SHIFT, in_use, w->ctx);
}

EXPORT int mempool_walk(mempool_t *m, mempool_walk_fn fn, void *ctx) {
  if (!m || !fn) {
    errno = EINVAL;
    return -1;
  }
  struct walk_ctx w = {fn, ctx};
  mp_pool_walk(m->pool, walk_one, &w);
  return 0;
}

EXPORT int mempool_check(mempool_t *m, char *why, size_t whylen) {
  if (!m) {
    if (why && whylen) mp_format(why, whylen, "no pool given");
    return -1;
  }
  return mp_pool_check(m->pool, why, whylen);
}

/* ---- the interposer's pool, device addresses, cache maintenance --------------- */

static mp_pool *(*g_default_opener)(void);

void mp_api_default_opener(mp_pool *(*open)(void)) { g_default_opener = open; }

void mp_api_publish_default(mp_pool *p) {
  g_default.rejected = 0;
  __atomic_store_n(&g_default.pool, p, __ATOMIC_RELEASE);
}

EXPORT mempool_t *mempool_default(void) {
  if (!__atomic_load_n(&g_default.pool, __ATOMIC_ACQUIRE) && g_default_opener) g_default_opener();
  return __atomic_load_n(&g_default.pool, __ATOMIC_ACQUIRE) ? &g_default : NULL;
}

/* -errno of the layer below as the API's -1 / errno. */
static int api_rc(int rc) {
  if (rc == 0) return 0;
  errno = -rc;
  return -1;
}

_Static_assert(MEMPOOL_NO_PHYS == MP_NO_PHYS, "the public failure value is the one the pool layer keeps free");

EXPORT uint64_t mempool_phys(const mempool_t *m, const void *ptr) {
  uint64_t phys = 0;
  if (api_rc(m ? mp_dma_phys(m->pool, ptr, &phys) : -EINVAL) != 0) return MEMPOOL_NO_PHYS;
  return phys;
}

EXPORT void *mempool_virt(const mempool_t *m, uint64_t phys) {
  void *ptr = NULL;
  if (api_rc(m ? mp_dma_virt(m->pool, phys, &ptr) : -EINVAL) != 0) return NULL;
  return ptr;
}

EXPORT int mempool_sync_for_device(const mempool_t *m, const void *ptr, size_t len) {
  return api_rc(m ? mp_dma_sync(m->pool, ptr, len, true) : -EINVAL);
}

EXPORT int mempool_sync_for_cpu(const mempool_t *m, const void *ptr, size_t len) {
  return api_rc(m ? mp_dma_sync(m->pool, ptr, len, false) : -EINVAL);
}
