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

/* The calling thread's cache: its own once its first small request made
 * it, else mp_tcache_none, a cache that owns no memory and whose bins are all
 * empty and full at once (n = cap = 0). So the hit paths below have one test
 * each, and a thread without a cache (none yet, kept out of the pool by the
 * interposer, or past its thread exit) always misses. A thread's own cache
 * belongs to the one pool whose small objects are enabled (the
 * interposer's): the hit paths take no pool. */
extern mp_tcache mp_tcache_none;
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
/* While out (the interposer's calls that jemalloc must serve), the calling
 * thread's hit paths see mp_tcache_none; its cache stays its own. */
void mp_tcache_keep_out(bool out);
/* Sums the small-object counters of every cache (live and retired). */
void mp_tcache_totals(mp_pool *p, uint64_t *allocs, uint64_t *frees, uint64_t *bytes_in_use);

/* The hit: an object of class cls from the calling thread's cache, now
 * held by the user; NULL when the bin is empty (or the thread has no cache).
 * 21 instructions on x86-64 with the TLS load, one an atomic or. */
/* The bin's address, kept in a register: without this, GCC derives every
 * slot's address from the cache's again (4 instructions more per hit). */
static inline mp_tcache_bin *mp_tcache_bin_of(mp_tcache *tc, size_t cls) {
  mp_tcache_bin *b = &tc->bins[cls];
  __asm__("" : "+r"(b));
  return b;
}

static inline void *mp_tcache_pop_from(mp_tcache *tc, size_t cls) {
  mp_tcache_bin *b = mp_tcache_bin_of(tc, cls);
  uint32_t n = b->n - 1;
  if (__builtin_expect(n >= b->cap, 0)) return NULL; /* n was 0, or cap is 0: no cache */
  void *obj = b->items[n];
  if (!obj) __builtin_unreachable(); /* a cached object is never NULL: the caller's test folds */
  b->n = n;
  mp_held_set_at(tc->held_by_address, (uintptr_t)obj);
  tc->allocs[cls]++;
  return obj;
}
static inline void *mp_tcache_pop(size_t cls) { return mp_tcache_pop_from(mp_t_tcache, cls); }

/* The mirror: obj (its held bit already cleared: mp_span_unhold) into the
 * calling thread's cache; false when the bin is full (or the thread has no
 * cache). 12 instructions with the TLS load. */
static inline bool mp_tcache_push_to(mp_tcache *tc, void *obj, size_t cls) {
  mp_tcache_bin *b = mp_tcache_bin_of(tc, cls);
  uint32_t n = b->n;
  if (__builtin_expect(n >= b->cap, 0)) return false; /* full, or cap is 0: no cache */
  b->items[n] = obj;
  b->n = n + 1;
  tc->frees[cls]++;
  return true;
}
static inline bool mp_tcache_push(void *obj, size_t cls) { return mp_tcache_push_to(mp_t_tcache, obj, cls); }

/* The same, refilling or flushing in batches when the hit misses. */
static inline void *mp_tcache_alloc(mp_pool *p, unsigned cls) {
  void *obj = mp_tcache_pop(cls);
  return obj ? obj : mp_tcache_alloc_slow(p, cls);
}
static inline void mp_tcache_free(mp_pool *p, void *obj, unsigned cls) {
  if (!mp_tcache_push(obj, cls)) mp_tcache_free_slow(p, obj, cls);
}

#endif
