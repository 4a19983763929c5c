/* pool.c - the region served through its ranges, under one lock. */
#define _GNU_SOURCE
#include "pool.h"

#include <errno.h>
#include <string.h>

#include "msg.h"
#include "ranges.h"

int mp_pool_open(mp_pool *p, const mp_config *cfg, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  pthread_mutex_init(&p->lock, NULL);
  if (mp_region_open(cfg, &p->region, err, errlen) != 0) return -1;
  int saved = errno;
  if (mp_ranges_init(&p->ranges, (uint32_t)(p->region.size >> MP_GRANULE_SHIFT)) != 0) {
    mp_format(err, errlen, "cannot map metadata for %lu bytes of region: %s; running on jemalloc only",
              (unsigned long)p->region.size, mp_strerror(errno));
    mp_region_close(&p->region);
    errno = saved;
    return -1;
  }
  return 0;
}

void mp_pool_close(mp_pool *p) {
  mp_ranges_destroy(&p->ranges);
  mp_region_close(&p->region);
  pthread_mutex_destroy(&p->lock);
}

static inline uint32_t granule_of(const mp_pool *p, const void *ptr) {
  return (uint32_t)(((uintptr_t)ptr - p->region.base) >> MP_GRANULE_SHIFT);
}

/* The one-line trap for a pointer that is not an in-use block start. */
static void check_block(mp_pool *p, const void *ptr, const char *caller) {
  int st = ((uintptr_t)ptr & (MP_GRANULE - 1)) ? MP_RANGES_NOT_A_START
                                                : mp_ranges_classify(&p->ranges, granule_of(p, ptr));
  if (st == MP_RANGES_OK) return;
  pthread_mutex_unlock(&p->lock);
  if (st == MP_RANGES_NOT_IN_USE)
    mp_fatal("%s(%p): double free or use of a freed block (pointer into the pool at offset %#lx)",
             caller, ptr, (unsigned long)((uintptr_t)ptr - p->region.base));
  mp_fatal("%s(%p): invalid pointer: inside the pool (offset %#lx) but not the start of an allocated block",
           caller, ptr, (unsigned long)((uintptr_t)ptr - p->region.base));
}

void *mp_pool_alloc(mp_pool *p, size_t size, size_t align) {
  if (size > p->region.size || align > p->region.size) {
    __atomic_fetch_add(&p->stats.pool_failed, 1, __ATOMIC_RELAXED);
    return NULL;
  }
  uint32_t n = size ? (uint32_t)((size + MP_GRANULE - 1) >> MP_GRANULE_SHIFT) : 1;
  uint32_t a = align > MP_GRANULE ? (uint32_t)(align >> MP_GRANULE_SHIFT) : 1;
  uint32_t phase = (uint32_t)(p->region.base >> MP_GRANULE_SHIFT);
  pthread_mutex_lock(&p->lock);
  uint32_t g = mp_ranges_alloc(&p->ranges, n, a, phase);
  if (g == MP_NONE) {
    p->stats.pool_failed++;
    pthread_mutex_unlock(&p->lock);
    return NULL;
  }
  p->stats.pool_allocs++;
  p->stats.pool_bytes += (uint64_t)n << MP_GRANULE_SHIFT;
  if (p->stats.pool_bytes > p->stats.pool_peak) p->stats.pool_peak = p->stats.pool_bytes;
  pthread_mutex_unlock(&p->lock);
  return (void *)(p->region.base + ((uintptr_t)g << MP_GRANULE_SHIFT));
}

void mp_pool_free(mp_pool *p, void *ptr, const char *caller) {
  pthread_mutex_lock(&p->lock);
  check_block(p, ptr, caller);
  uint32_t g = granule_of(p, ptr);
  uint64_t bytes = (uint64_t)mp_ranges_size(&p->ranges, g) << MP_GRANULE_SHIFT;
  mp_ranges_free(&p->ranges, g);
  p->stats.pool_frees++;
  p->stats.pool_bytes -= bytes;
  pthread_mutex_unlock(&p->lock);
}

size_t mp_pool_usable_size(mp_pool *p, const void *ptr, const char *caller) {
  pthread_mutex_lock(&p->lock);
  check_block(p, ptr, caller);
  size_t n = (size_t)mp_ranges_size(&p->ranges, granule_of(p, ptr)) << MP_GRANULE_SHIFT;
  pthread_mutex_unlock(&p->lock);
  return n;
}

bool mp_pool_resize(mp_pool *p, void *ptr, size_t size, const char *caller) {
  if (size > p->region.size) return false;
  uint32_t n = size ? (uint32_t)((size + MP_GRANULE - 1) >> MP_GRANULE_SHIFT) : 1;
  pthread_mutex_lock(&p->lock);
  check_block(p, ptr, caller);
  uint32_t g = granule_of(p, ptr);
  uint32_t old = mp_ranges_size(&p->ranges, g);
  bool ok = mp_ranges_resize(&p->ranges, g, n);
  if (ok) {
    p->stats.pool_bytes += ((uint64_t)n << MP_GRANULE_SHIFT);
    p->stats.pool_bytes -= ((uint64_t)old << MP_GRANULE_SHIFT);
    if (p->stats.pool_bytes > p->stats.pool_peak) p->stats.pool_peak = p->stats.pool_bytes;
  }
  pthread_mutex_unlock(&p->lock);
  return ok;
}

/* ---- fork ---------------------------------------------------------------- */

void mp_pool_fork_prepare(mp_pool *p) { pthread_mutex_lock(&p->lock); }
void mp_pool_fork_parent(mp_pool *p) { pthread_mutex_unlock(&p->lock); }

struct copy_ctx {
  mp_pool *pool;
  uintptr_t dst;
};

static void copy_one(void *vctx, uint32_t start, uint32_t size, bool in_use) {
  struct copy_ctx *c = vctx;
  if (!in_use) return;
  size_t off = (size_t)start << MP_GRANULE_SHIFT;
  memcpy((void *)(c->dst + off), (const void *)(c->pool->region.base + off), (size_t)size << MP_GRANULE_SHIFT);
}

static void copy_in_use(void *vctx, uintptr_t dst) {
  struct copy_ctx *c = vctx;
  c->dst = dst;
  mp_ranges_walk(&c->pool->ranges, copy_one, c);
}

int mp_pool_fork_child(mp_pool *p) {
  /* The child is single-threaded: the lock taken in prepare is re-made. */
  pthread_mutex_init(&p->lock, NULL);
  struct copy_ctx c = {p, 0};
  return mp_region_privatize(&p->region, copy_in_use, &c);
}

/* ---- inspection ---------------------------------------------------------- */

void mp_pool_get_info(mp_pool *p, mp_pool_info *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&p->lock);
  const mp_ranges *r = &p->ranges;
  out->region_bytes = p->region.size;
  out->free_bytes = (uint64_t)r->free_granules << MP_GRANULE_SHIFT;
  out->used_bytes = out->region_bytes - out->free_bytes;
  out->largest_free = (uint64_t)mp_ranges_largest_free(r) << MP_GRANULE_SHIFT;
  out->used_ranges = r->inuse_ranges;
  out->free_ranges = r->free_ranges;
  out->meta_bytes = mp_ranges_meta_bytes(r);
  out->stats = p->stats;
  pthread_mutex_unlock(&p->lock);
}

void mp_pool_walk(mp_pool *p, mp_range_fn fn, void *ctx) {
  pthread_mutex_lock(&p->lock);
  mp_ranges_walk(&p->ranges, fn, ctx);
  pthread_mutex_unlock(&p->lock);
}

int mp_pool_check(mp_pool *p, char *why, size_t whylen) {
  pthread_mutex_lock(&p->lock);
  int rc = mp_ranges_check(&p->ranges, why, whylen);
  pthread_mutex_unlock(&p->lock);
  return rc;
}
