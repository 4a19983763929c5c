/* pool.c - the region served through its ranges, under one lock. */
#define _GNU_SOURCE
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <string.h>

#include "chunks.h"
#include "config.h"
#include "msg.h"
#include "ranges.h"
#include "span.h"
#include "tcache.h"

#define SMALL_MIN_REGION (8u << 20) /* below this, spans would crowd the region */

/* A device that maps only in units of its alignment (device dax): chunks
 * are a multiple of it, and the window must start and end on it. */
static int fit_device_align(mp_config *c, char *err, size_t errlen) {
  uint64_t a = strcmp(c->device, "anon") ? mp_region_device_align(c->device, c->sysfs_root) : 0;
  if (a <= 1) return 0;
  if ((a & (a - 1)) || c->base % a || (c->high + 1) % a) {
    mp_format(err, errlen,
              "%s maps in units of %llu bytes: MEMPOOL_BASE (%#llx) and MEMPOOL_HIGH+1 (%#llx) must be multiples",
              c->device, (unsigned long long)a, (unsigned long long)c->base, (unsigned long long)(c->high + 1));
    return -EINVAL;
  }
  if (c->chunk < a) c->chunk = a;
  return 0;
}

/* u-dma-buf: the window defaults to the whole buffer and must lie in it. */
static int fit_udmabuf(mp_config *c, char *err, size_t errlen) {
  uint64_t phys, size;
  if (!strcmp(c->device, "anon") || !mp_region_udmabuf(c->device, c->sysfs_root, &phys, &size)) return 0;
  if (c->window_default && size > 0) {
    c->base = 0;
    c->high = size - 1;
    if (mp_check_window(c->base, c->high, "the buffer's start", "its end", err, errlen) != 0) return -EINVAL;
  }
  if (phys > MP_NO_PHYS - size) { /* every device address of the buffer is below MP_NO_PHYS */
    mp_format(err, errlen, "%s is a u-dma-buf at %#llx of %llu bytes: its end is past the last bus address", c->device,
              (unsigned long long)phys, (unsigned long long)size);
    return -EINVAL;
  }
  if (c->high >= size) {
    mp_format(err, errlen, "%s is a u-dma-buf of %llu bytes (at %#llx): the window %#llx..%#llx does not fit in it",
              c->device, (unsigned long long)size, (unsigned long long)phys, (unsigned long long)c->base,
              (unsigned long long)c->high);
    return -EINVAL;
  }
  return 0;
}

int mp_pool_open(mp_pool *p, const mp_config *cfg, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  p->fork_pipe[0] = p->fork_pipe[1] = -1;
  p->policy = cfg->policy;
  if (!p->policy.max_size) p->policy.max_size = UINT64_MAX; /* 0: no limit */
  pthread_mutex_init(&p->lock, NULL);
  mp_config c = *cfg;
  int rc = fit_udmabuf(&c, err, errlen);
  if (rc != 0) return rc;
  if (!c.chunk) c.chunk = mp_chunk_size_for(c.high - c.base + 1);
  rc = fit_device_align(&c, err, errlen);
  if (rc == 0) rc = mp_region_open(&c, &p->region, err, errlen);
  if (rc != 0) return rc;
  int saved = errno;
  bool fixed = !c.share || !p->region.shared; /* exclusive, or anon */
  if ((rc = mp_chunks_init(p, c.chunk, fixed)) != 0) {
    mp_format(err, errlen, "cannot map metadata for %llu bytes of region: %s", (unsigned long long)p->region.size,
              mp_strerror(-rc));
    mp_region_close(&p->region);
    errno = saved;
    return rc;
  }
  return 0;
}

int mp_pool_enable_small(mp_pool *p) {
  if (p->region.size < SMALL_MIN_REGION) return -1;
  if (mp_small_init(p) != 0) return -1;
  if (mp_tcache_init(p) != 0) {
    mp_small_destroy(p);
    return -1;
  }
  p->fast_small = !p->policy.check && p->policy.min_size == 0 && p->policy.max_size >= MP_HIT_MAX;
  return 0;
}

void mp_pool_close(mp_pool *p) {
  mp_tcache_abandon_current(p); /* the calling thread's cache of p (other threads' must be gone) */
  mp_small_destroy(p);
  mp_ranges_destroy(&p->ranges);
  mp_chunks_destroy(p);
  mp_region_close(&p->region);
  pthread_mutex_destroy(&p->lock);
}

static inline uint32_t granule_of(const mp_pool *p, const void *ptr) {
  return (uint32_t)(((uintptr_t)ptr - p->region.base) >> MP_GRANULE_SHIFT);
}

/* The one-line traps for a pointer that is not a block held by the user. */
void mp_pool_trap(mp_pool *p, const void *ptr, const char *caller, bool freed) {
  if (freed)
    mp_fatal("%s(%p): double free or use of a freed block (pointer into the pool at offset %#llx)", caller, ptr,
             (unsigned long long)((uintptr_t)ptr - p->region.base));
  mp_fatal(
      "%s(%p): invalid pointer: inside the pool (offset %#llx) but not the start of an allocated block"
      " (interior pointer, never allocated, or already freed)",
      caller, ptr, (unsigned long long)((uintptr_t)ptr - p->region.base));
}

/* Range-level check, pool lock held (released before trapping). A pointer
 * into a chunk this process does not hold is never a block of its own. */
static void check_block(mp_pool *p, const void *ptr, const char *caller) {
  uint32_t g = granule_of(p, ptr);
  int st = ((uintptr_t)ptr & (MP_GRANULE - 1)) || mp_chunk_state_at(p, g) == MP_CHUNK_AWAY
               ? MP_RANGES_NOT_A_START
               : mp_ranges_classify(&p->ranges, g);
  if (st == MP_RANGES_OK) return;
  pthread_mutex_unlock(&p->lock);
  mp_pool_trap(p, ptr, caller, st == MP_RANGES_NOT_IN_USE);
}

/* The class serving size bytes at alignment align from spans, or
 * MP_SMALL_CLASSES (spans off, or a range block's size). */
static inline unsigned small_class(const mp_pool *p, size_t size, size_t align) {
  size_t n = size < align ? align : size;
  if (!p->small.enabled || n > p->small.max_size || align > 4096) return MP_SMALL_CLASSES;
  unsigned cls = mp_class_of(n);
  /* Objects sit at multiples of the class size from 64 KiB-aligned spans. */
  if (align > MP_GRANULE)
    while (cls < MP_SMALL_CLASSES && mp_class_size[cls] % align) cls++;
  return cls;
}

void mp_pool_not_held(mp_pool *p, const void *ptr, unsigned cls, const char *caller) {
  mp_pool_trap(p, ptr, caller, mp_span_not_held(p, (uintptr_t)ptr - p->region.base, cls) == MP_SMALL_NOT_HELD);
}

void mp_pool_free_small_slow(mp_pool *p, void *ptr, uintptr_t off, size_t span_byte, const char *caller) {
  unsigned cls = (unsigned)mp_span_cls(span_byte);
  if (!mp_span_unhold(p, off, cls)) return mp_pool_not_held(p, ptr, cls, caller);
  if (span_byte & MP_SPAN_INHERITED)
    mp_span_give(p, cls, &ptr, 1);
  else
    mp_tcache_free_slow(p, ptr, cls);
}

/* How pool_alloc serves: TRY, a speculative request (realloc's extra room):
 * no reclaiming of cached objects, not counted as a failure; GROWS, a
 * block realloc moves (a growing buffer): above MP_HIT_MAX a range block,
 * which grows in place, not a medium class's object (a buffer grown
 * through the medium classes would leave a partial span in each: 3.4 times
 * the region's peak in bench/realloc). */
enum { TRY = 1, GROWS = 2 };

/* A block from the region, as flags say. */
static void *pool_alloc(mp_pool *p, size_t size, size_t align, unsigned flags) {
  bool try = flags & TRY;
  if (size > p->region.size || align > p->region.size || p->detached) {
    if (!try) __atomic_fetch_add(&p->stats.pool_failed, 1, __ATOMIC_RELAXED);
    return NULL;
  }
  unsigned cls = (flags & GROWS) && size > MP_HIT_MAX ? MP_SMALL_CLASSES : small_class(p, size, align);
  if (cls < MP_SMALL_CLASSES) {
    void *obj = mp_tcache_alloc(p, cls);
    if (obj) return obj;
  }
  uint32_t n = size ? (uint32_t)((size + MP_GRANULE - 1) >> MP_GRANULE_SHIFT) : 1;
  uint32_t a = align > MP_GRANULE ? (uint32_t)(align >> MP_GRANULE_SHIFT) : 1;
  pthread_mutex_lock(&p->lock);
  uint32_t g = mp_chunks_alloc(p, n, a, !try, true);
  if (g == MP_NONE && p->small.enabled && !try) {
    /* Exhausted: give every thread's cached small objects and the empty
     * spans back, retry once. */
    pthread_mutex_unlock(&p->lock);
    bool reclaimed = mp_tcache_reclaim_all(p, NULL, NULL);
    mp_small_release_empty(p);
    pthread_mutex_lock(&p->lock);
    g = mp_chunks_alloc(p, n, a, true, true);
    if (reclaimed) mp_tcache_reclaim_done(p, g != MP_NONE);
  }
  if (g == MP_NONE && !try) __atomic_fetch_add(&p->stats.pool_failed, 1, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&p->lock);
  if (g == MP_NONE) return NULL;
  return (void *)(p->region.base + ((uintptr_t)g << MP_GRANULE_SHIFT));
}

void *mp_pool_alloc(mp_pool *p, size_t size, size_t align) { return pool_alloc(p, size, align, 0); }

size_t mp_pool_good_size(const mp_pool *p, size_t size, size_t align) {
  unsigned cls = small_class(p, size, align);
  if (cls < MP_SMALL_CLASSES) return mp_class_size[cls];
  return size ? (size + MP_GRANULE - 1) & ~(size_t)(MP_GRANULE - 1) : MP_GRANULE;
}
void *mp_pool_try_alloc(mp_pool *p, size_t size, size_t align) { return pool_alloc(p, size, align, TRY); }

void mp_pool_free(mp_pool *p, void *ptr, const char *caller) {
  uintptr_t off = (uintptr_t)ptr - p->region.base;
  unsigned c = mp_small_class_at(p, off);
  if (c) {
    mp_pool_free_small(p, ptr, off, c, caller);
    return;
  }
  pthread_mutex_lock(&p->lock);
  check_block(p, ptr, caller);
  mp_chunks_free(p, granule_of(p, ptr), true);
  pthread_mutex_unlock(&p->lock);
}

/* The span byte of a held small object at ptr (trapping on a bad one), or
 * 0: not a small object. */
static unsigned small_held(mp_pool *p, const void *ptr, const char *caller) {
  uintptr_t off = (uintptr_t)ptr - p->region.base;
  unsigned c = mp_small_class_at(p, off);
  if (!c) return 0;
  int st = mp_span_check_held(p, off, mp_span_cls(c));
  if (st != MP_SMALL_OK) mp_pool_trap(p, ptr, caller, st == MP_SMALL_NOT_HELD);
  return c;
}

/* Does a small object of class cls stay in place when resized to size?
 * While size still belongs near its class. */
static bool small_stays(size_t cls, size_t size) {
  size_t cs = mp_class_size[cls];
  return size <= cs && (size > cs / 2 || mp_class_of(size ? size : 1) == cls);
}

static inline uint32_t granules_for(size_t size) {
  return size ? (uint32_t)((size + MP_GRANULE - 1) >> MP_GRANULE_SHIFT) : 1;
}

size_t mp_pool_usable_size(mp_pool *p, const void *ptr, const char *caller) {
  unsigned c = small_held(p, ptr, caller);
  if (c) return mp_class_size[mp_span_cls(c)];
  pthread_mutex_lock(&p->lock);
  check_block(p, ptr, caller);
  size_t n = (size_t)mp_ranges_size(&p->ranges, granule_of(p, ptr)) << MP_GRANULE_SHIFT;
  pthread_mutex_unlock(&p->lock);
  return n;
}

bool mp_pool_resize(mp_pool *p, void *ptr, size_t size, const char *caller) {
  unsigned c = small_held(p, ptr, caller);
  if (c) return small_stays(mp_span_cls(c), size);
  if (size > p->region.size) return false;
  pthread_mutex_lock(&p->lock);
  check_block(p, ptr, caller);
  uint32_t g = granule_of(p, ptr);
  bool ok = mp_chunks_resize(p, g, mp_ranges_size(&p->ranges, g), granules_for(size));
  pthread_mutex_unlock(&p->lock);
  return ok;
}

/* A small object's realloc (span byte c, checked): in place, or moved
 * (growing: with room bytes more). */
static void *realloc_small(mp_pool *p, void *ptr, unsigned c, size_t size, size_t room, size_t *old,
                           const char *caller) {
  size_t cls = mp_span_cls(c);
  *old = mp_class_size[cls];
  if (small_stays(cls, size)) return ptr;
  void *q = size > *old && room ? pool_alloc(p, size + room, MP_GRANULE, TRY | GROWS) : NULL;
  if (!q) q = pool_alloc(p, size, MP_GRANULE, size > *old ? GROWS : 0);
  if (!q) return NULL;
  memcpy(q, ptr, *old < size ? *old : size);
  mp_pool_free_small(p, ptr, (uintptr_t)ptr - p->region.base, c, caller);
  return q;
}

/* A range block's (checked under the lock taken here): resized in place,
 * else a new range under the same lock (room more first), else the
 * general path; the old range is freed under the lock again, where it is
 * checked once more (a racing free of it by another thread traps). */
static void *realloc_range(mp_pool *p, void *ptr, size_t size, size_t room, size_t *old, const char *caller) {
  uint32_t g = granule_of(p, ptr), n = granules_for(size), ng = MP_NONE;
  pthread_mutex_lock(&p->lock);
  check_block(p, ptr, caller);
  uint32_t og = mp_ranges_size(&p->ranges, g);
  *old = (size_t)og << MP_GRANULE_SHIFT;
  bool fits = size <= p->region.size && !p->detached;
  /* Within its last quarter the range stays as it is: the room a move gave
   * it serves the next growth steps. */
  if (fits && ((n <= og && n >= og - og / 4) || mp_chunks_resize(p, g, og, n))) {
    pthread_mutex_unlock(&p->lock);
    return ptr;
  }
  if (fits && room && size + room <= p->region.size) ng = mp_chunks_alloc(p, granules_for(size + room), 1, false, true);
  bool small = size <= MP_HIT_MAX && small_class(p, size, MP_GRANULE) < MP_SMALL_CLASSES; /* from a cache */
  if (fits && ng == MP_NONE && !small) ng = mp_chunks_alloc(p, n, 1, true, true);
  pthread_mutex_unlock(&p->lock);
  void *q = ng != MP_NONE ? (void *)(p->region.base + ((uintptr_t)ng << MP_GRANULE_SHIFT))
                          : pool_alloc(p, size, MP_GRANULE, size > *old ? GROWS : 0);
  if (!q) return NULL;
  memcpy(q, ptr, *old < size ? *old : size);
  pthread_mutex_lock(&p->lock);
  check_block(p, ptr, caller);
  mp_chunks_free(p, g, true);
  pthread_mutex_unlock(&p->lock);
  return q;
}

void *mp_pool_realloc(mp_pool *p, void *ptr, size_t size, size_t room, size_t *old, const char *caller) {
  unsigned c = small_held(p, ptr, caller);
  return c ? realloc_small(p, ptr, c, size, room, old, caller) : realloc_range(p, ptr, size, room, old, caller);
}

/* ---- fork ---------------------------------------------------------------- */

/* Lock order: steal lock, class locks, cache list lock, pool lock.
 * A shared window's blocks in use are copied by prepare into the parent's
 * snapshot (chunks.h), which fork shares with the child and the child
 * moves in place. Without one (a fork that interrupted the pool, no
 * memory, exclusive mode) the child copies them from the device and the
 * parent waits (on a pipe) until it is done, so that nothing the forking
 * thread writes after fork() returns can reach the child's copy. The pool
 * lock alone says whether the ranges (and chunks) are whole: they change
 * only under it.
 *
 * One thread, every lock got: nothing can take them again before fork
 * (no other thread, the signals blocked), so they are given back at once
 * and the child inherits them free: the child re-makes none and the
 * parent unlocks none after fork, where each write to a page both share
 * is a copy-on-write fault (the class locks lie on about ten pages). */
static inline bool fork_released(const mp_pool *p) { return p->fork_single && p->fork_locked; }
static void walk_live(mp_pool *p, uint32_t g0, uint32_t g1, mp_bytes_fn emit, void *state);

void mp_pool_fork_prepare(mp_pool *p, bool single) {
  bool small = mp_small_fork_prepare(p, single);
  p->fork_single = single;
  p->fork_ranges = (single ? pthread_mutex_trylock(&p->lock) : pthread_mutex_lock(&p->lock)) == 0;
  p->fork_locked = small && p->fork_ranges;
  /* The child's copy, made now (chunks.h): it then copies nothing. */
  p->fork_snap = p->fork_locked && p->region.shared && !p->chunks.fixed && mp_chunks_fork_snapshot(p, walk_live) == 0;
  if (small && (!p->fork_locked || fork_released(p)))
    mp_small_fork_parent(p); /* the pool lock is held by the code fork interrupted, or given back */
  if (fork_released(p)) pthread_mutex_unlock(&p->lock);
  p->fork_pipe[0] = p->fork_pipe[1] = -1;
  if (p->region.shared && !p->fork_snap && pipe2(p->fork_pipe, O_CLOEXEC) != 0) p->fork_pipe[0] = p->fork_pipe[1] = -1;
}

void mp_pool_fork_parent(mp_pool *p) {
  if (p->fork_pipe[0] >= 0) {
    char c;
    close(p->fork_pipe[1]);
    while (read(p->fork_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    close(p->fork_pipe[0]);
  }
  if (p->fork_snap && p->chunks.shadow_bytes > MP_SNAPSHOT_KEEP) mp_chunks_fork_drop(p);
  if (fork_released(p)) return;
  if (p->fork_ranges) pthread_mutex_unlock(&p->lock);
  if (p->fork_locked) mp_small_fork_parent(p);
}

static void whole_window(void *vctx, mp_bytes_fn emit, void *state) {
  mp_pool *p = vctx;
  emit(state, 0, p->region.map_len);
}

/* What an exclusive window's private copy carries after an interrupted
 * call: the blocks in use (small spans whole), and the free ranges too
 * under MEMPOOL_CHECK (their freed-block pattern). */
static void window_live(void *vctx, mp_bytes_fn emit, void *state) {
  mp_pool *p = vctx;
  mp_ranges_walk_bytes(&p->ranges, 0, p->ranges.granules, p->policy.check, emit, state);
}

/* What a copy carries after a fork that interrupted nothing: the blocks in
 * use, of a small span its held objects only, so that a fork costs the
 * bytes in use (a program of a few KiB of small objects has a span of
 * 64 KiB per size class it uses). Under MEMPOOL_CHECK everything, as
 * window_live (free objects carry the pattern a later allocation checks). */
struct live_walk {
  mp_pool *pool;
  mp_bytes_fn emit;
  void *state;
};

static void live_range(void *vctx, uint32_t start, uint32_t size, bool in_use) {
  struct live_walk *w = vctx;
  size_t off = (size_t)start << MP_GRANULE_SHIFT;
  if (!in_use) return;
  if (mp_small_class_at(w->pool, off))
    mp_small_emit_held(w->pool, off, (size_t)size << MP_GRANULE_SHIFT, w->emit, w->state);
  else
    w->emit(w->state, off, (size_t)size << MP_GRANULE_SHIFT);
}

static void walk_live(mp_pool *p, uint32_t g0, uint32_t g1, mp_bytes_fn emit, void *state) {
  struct live_walk w = {p, emit, state};
  if (p->policy.check)
    mp_ranges_walk_bytes(&p->ranges, g0, g1, true, emit, state);
  else
    mp_ranges_walk_in(&p->ranges, g0, g1, live_range, &w);
}

static void window_held(void *vctx, mp_bytes_fn emit, void *state) {
  mp_pool *p = vctx;
  walk_live(p, 0, p->ranges.granules, emit, state);
}

/* A fork child without memory for its copy must still run, typically to
 * exec: it allocates from jemalloc only and the region becomes read-only, so
 * that a write to an inherited block faults instead of reaching the
 * parent's memory. */
static void detach(mp_pool *p) {
  mprotect((void *)p->region.base, p->region.map_len, PROT_READ);
  p->detached = true;
  p->fast_small = false;
  mp_tcache_abandon_current(p); /* the child's one thread */
}

/* fork interrupted this process's only thread inside the library (a fork
 * in a signal handler): what it was changing is half-changed, and the
 * child resumes that change when the handler returns. So nothing is
 * changed here and no lock re-made that the interrupted call holds: what
 * this process holds is copied (its blocks in use when the pool lock was
 * free, so that the ranges are whole; else all of it), and the pool serves
 * nothing more in the child. */
static int fork_child_interrupted(mp_pool *p) {
  int rc = 0;
  bool whole = !p->fork_ranges;
  if (p->fork_ranges) pthread_mutex_init(&p->lock, NULL); /* prepare's */
  if (p->region.shared)
    rc = p->chunks.fixed ? mp_region_privatize(&p->region, whole ? whole_window : window_live, p)
                         : mp_chunks_fork_child_copy(p, whole);
  if (rc != 0) detach(p); /* no private copy: read-only, never the parent's memory written */
  p->detached = true;
  p->fast_small = false;
  mp_tcache_abandon_current(p); /* it may have been inside it: left as it is */
  return rc;
}

/* The parent waits (mp_pool_fork_parent) until the child has its copy:
 * rc, or what writing to it said. */
static int release_parent(mp_pool *p, int rc) {
  if (p->fork_pipe[0] < 0) return rc;
  close(p->fork_pipe[0]);
  if (rc == 0 && write(p->fork_pipe[1], "", 1) < 0) rc = -errno;
  close(p->fork_pipe[1]);
  p->fork_pipe[0] = p->fork_pipe[1] = -1;
  return rc;
}

int mp_pool_fork_child(mp_pool *p) {
  if (!p->fork_locked) return release_parent(p, fork_child_interrupted(p));
  /* The child is single-threaded: the locks taken in prepare are re-made
   * (given back already: free as inherited). */
  if (!fork_released(p)) {
    pthread_mutex_init(&p->lock, NULL);
    mp_small_fork_child(p);
  }
  if (!p->region.shared) return 0;
  int rc = p->chunks.fixed ? mp_region_privatize(&p->region, window_held, p)
                           : mp_chunks_fork_child(p, walk_live, p->fork_snap);
  int said = release_parent(p, rc); /* the parent goes on: what follows is the child's own metadata */
  if (!p->chunks.fixed) mp_small_fork_purge(p, !p->fork_single); /* spans of inherited chunks serve nothing new */
  if (rc != 0) detach(p);
  return said;
}

struct advise {
  mp_pool *pool;
  bool gave; /* a free page was resident: memory went back */
};

/* Is any page of [a, e) (page-aligned) resident? */
static bool resident(uintptr_t a, uintptr_t e) {
  unsigned char vec[256];
  for (; a < e; a += sizeof vec * 4096) {
    size_t len = e - a < sizeof vec * 4096 ? e - a : sizeof vec * 4096;
    if (mincore((void *)a, len, vec) != 0) return true; /* cannot tell: say it went back */
    for (size_t i = 0; i < (len + 4095) / 4096; i++)
      if (vec[i] & 1) return true;
  }
  return false;
}

static void advise_free(void *vctx, uint32_t start, uint32_t size, bool in_use) {
  struct advise *ad = vctx;
  if (in_use) return;
  uintptr_t a = ad->pool->region.base + ((uintptr_t)start << MP_GRANULE_SHIFT);
  uintptr_t e = a + ((uintptr_t)size << MP_GRANULE_SHIFT);
  a = (a + 4095) & ~(uintptr_t)4095;
  e &= ~(uintptr_t)4095;
  if (e <= a) return;
  if (!ad->gave) ad->gave = resident(a, e);
  madvise((void *)a, e - a, MADV_DONTNEED);
}

bool mp_pool_trim(mp_pool *p) {
  if (p->small.enabled) {
    mp_tcache_flush_current(p);
    mp_small_release_empty(p);
  }
  pthread_mutex_lock(&p->lock);
  bool gave = false;
  if (!p->chunks.fixed)
    gave = mp_chunks_release_free(p) > 0;
  else if (!p->region.shared && !p->region.is_file && !p->detached && !p->policy.check) {
    /* anon: its free pages (not under MEMPOOL_CHECK: they hold the freed-block pattern) */
    struct advise ad = {p, false};
    mp_ranges_walk(&p->ranges, advise_free, &ad);
    gave = ad.gave;
  }
  pthread_mutex_unlock(&p->lock);
  return gave;
}

/* ---- inspection ---------------------------------------------------------- */

void mp_pool_get_info(mp_pool *p, mp_pool_info *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&p->lock);
  const mp_ranges *r = &p->ranges;
  const mp_chunks *c = &p->chunks;
  out->region_bytes = p->region.size;
  out->chunk_bytes = (uint64_t)1 << c->shift;
  out->held_bytes = c->held_bytes;
  out->inherited_bytes = c->inherited_bytes;
  out->mapped_peak = c->mapped_peak;
  out->free_bytes = (uint64_t)r->free_granules << MP_GRANULE_SHIFT;
  out->used_bytes = p->stats.region_used;
  out->largest_free = (uint64_t)mp_ranges_largest_free(r) << MP_GRANULE_SHIFT;
  out->used_ranges = r->inuse_ranges - c->away_ranges; /* not the ranges standing for chunks away */
  out->free_ranges = r->free_ranges;
  out->meta_bytes = mp_ranges_meta_bytes(r) + c->meta_len;
  out->stats = p->stats;
  pthread_mutex_unlock(&p->lock);
  uint64_t sa, sf, sbytes;
  mp_tcache_totals(p, &sa, &sf, &sbytes);
  out->small_allocs = sa;
  out->small_frees = sf;
  out->small_bytes = sbytes;
  out->meta_bytes += mp_small_meta_bytes(p);
}

void mp_pool_walk(mp_pool *p, mp_range_fn fn, void *ctx) {
  pthread_mutex_lock(&p->lock);
  mp_ranges_walk(&p->ranges, fn, ctx);
  pthread_mutex_unlock(&p->lock);
}

int mp_pool_check(mp_pool *p, char *why, size_t whylen) {
  pthread_mutex_lock(&p->lock);
  int rc = mp_ranges_check(&p->ranges, why, whylen);
  if (rc == 0) rc = mp_chunks_check(p, why, whylen);
  pthread_mutex_unlock(&p->lock);
  if (rc == 0) rc = mp_small_check(p, why, whylen);
  return rc;
}
