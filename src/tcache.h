/* tcache.h - per-thread caches of small objects: the malloc/free fast path
 * takes no lock. A cache belongs to one thread and one pool (the pool with
 * small objects enabled); it refills from and flushes to the spans in batches
 * of half its capacity, and is flushed when its thread exits.
 * TIME BOUNDS: hit O(1); miss O(batch) under one class lock.
 */
#ifndef MP_TCACHE_H
#define MP_TCACHE_H

#include "mp_types.h"
#include "sizeclass.h"
#include "span.h"

extern __thread mp_tcache *mp_t_tcache __attribute__((tls_model("initial-exec")));

int mp_tcache_init(mp_pool *p); /* the thread-exit key; once per pool */
void *mp_tcache_alloc_slow(mp_pool *p, unsigned cls);
void mp_tcache_free_slow(mp_pool *p, void *obj, unsigned cls);
/* Flushes the calling thread's cache (exhaustion path, tests). */
void mp_tcache_flush_current(mp_pool *p);
/* A fork child whose only thread may have been inside its cache: the cache
 * is left as it is, never used again, and the thread's next request makes a
 * new one. */
void mp_tcache_abandon_current(mp_pool *p);
/* Sums the small-object counters of every cache (live and retired). */
void mp_tcache_totals(mp_pool *p, uint64_t *allocs, uint64_t *frees, uint64_t *bytes_in_use);

/* The hit: an object of class cls from the calling thread's cache, now
 * held by the user; NULL when the thread has no cache for p or it is empty.
 * About 12 instructions and an atomic or. */
static inline void *mp_tcache_pop(mp_pool *p, unsigned cls) {
  mp_tcache *tc = mp_t_tcache;
  if (__builtin_expect(tc != NULL && tc->pool == p, 1)) {
    mp_tcache_bin *b = &tc->bins[cls];
    if (__builtin_expect(b->n != 0, 1)) {
      void *obj = b->items[--b->n];
      mp_span_mark_alloc(p, (uintptr_t)obj - p->region.base, cls);
      tc->allocs[cls]++;
      return obj;
    }
  }
  return NULL;
}

/* The mirror: obj (it has passed mp_span_mark_free) into the calling
 * thread's cache; false when the thread has no cache for p or it is full.
 * About 10 instructions. */
static inline bool mp_tcache_push(mp_pool *p, void *obj, unsigned cls) {
  mp_tcache *tc = mp_t_tcache;
  if (__builtin_expect(tc != NULL && tc->pool == p, 1)) {
    mp_tcache_bin *b = &tc->bins[cls];
    if (__builtin_expect(b->n < b->cap, 1)) {
      b->items[b->n++] = obj;
      tc->frees[cls]++;
      return true;
    }
  }
  return false;
}

/* The same, refilling or flushing in batches when the hit misses. */
static inline void *mp_tcache_alloc(mp_pool *p, unsigned cls) {
  void *obj = mp_tcache_pop(p, cls);
  return obj ? obj : mp_tcache_alloc_slow(p, cls);
}
static inline void mp_tcache_free(mp_pool *p, void *obj, unsigned cls) {
  if (!mp_tcache_push(p, obj, cls)) mp_tcache_free_slow(p, obj, cls);
}

#endif
