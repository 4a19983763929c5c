/* pool.h - a region, its ranges, a lock and statistics. */
#ifndef MP_POOL_H
#define MP_POOL_H

#include "mp_types.h"
#include "region.h"
#include "span.h"
#include "tcache.h"

/* Maps the region and sets up its ranges. 0, or -errno with a reason in err
 * (see mp_region_open). */
int mp_pool_open(mp_pool *p, const mp_config *cfg, char *err, size_t errlen);
void mp_pool_close(mp_pool *p);
/* Serves sizes up to MP_HIT_MAX from spans through per-thread caches (one
 * pool per process: the caches are thread-local), and up to MP_SMALL_MAX
 * in a region of MP_MEDIUM_MIN_REGION. Needs an 8 MiB region. */
int mp_pool_enable_small(mp_pool *p);

static inline bool mp_pool_owns(const mp_pool *p, const void *ptr) { return p && mp_region_contains(&p->region, ptr); }

/* A block of at least size bytes aligned to align (a power of two >= 16),
 * or NULL when the region cannot serve it (errno untouched). */
void *mp_pool_alloc(mp_pool *p, size_t size, size_t align);
/* The same without reclaiming cached objects or counting a failure: for
 * optional requests (realloc's extra room). */
void *mp_pool_try_alloc(mp_pool *p, size_t size, size_t align);
/* The usable size mp_pool_alloc(size, align) gives when the region serves it
 * as it serves most requests (a small class, else 16-byte granules). O(1). */
size_t mp_pool_good_size(const mp_pool *p, size_t size, size_t align);
/* ptr must be owned (mp_pool_owns): the functions below do not range-check.
 * The pointer checks below trap (one "mempool:" line naming the pointer and
 * the caller, then abort) unless ptr is the start of an in-use block. */
void mp_pool_free(mp_pool *p, void *ptr, const char *caller);
size_t mp_pool_usable_size(mp_pool *p, const void *ptr, const char *caller);
/* Resizes in place (shrinks, or grows into a free successor); false if not. */
bool mp_pool_resize(mp_pool *p, void *ptr, size_t size, const char *caller);
/* realloc within the region, ptr classified and checked once: it keeps
 * its place when size still fits it (a small object near its class, a range
 * block resized in place, or left as it is when size is within its last
 * quarter), else moves to a new block of the region (a growing block asks
 * for room bytes more first: 0 for none), its content copied and ptr freed. NULL when the region cannot serve size:
 * ptr untouched. *old: ptr's usable size either way. A range block takes
 * the pool lock once in place, twice when it moves. */
void *mp_pool_realloc(mp_pool *p, void *ptr, size_t size, size_t room, size_t *old, const char *caller);

/* The one-line trap: "mempool: CALLER(PTR): double free ..." or "invalid
 * pointer ...", then abort(). */
_Noreturn void mp_pool_trap(mp_pool *p, const void *ptr, const char *caller, bool freed) __attribute__((cold));

/* free's slow path for a small object of p (offset off, span byte
 * span_byte): its held byte checked (a pointer not held traps) and
 * cleared, then into the thread's cache the slow way (a full bin is
 * flushed, a first cache made), or, a fork child's inherited object,
 * straight back to its span. */
void mp_pool_free_small_slow(mp_pool *p, void *ptr, uintptr_t off, size_t span_byte, const char *caller)
    __attribute__((noinline));
/* A pointer in a span of class cls that is not a held object: the trap (a
 * call that returns in the compiler's eyes, so that the callers below can
 * tail-call it and the free fast path needs no frame). */
void mp_pool_not_held(mp_pool *p, const void *ptr, unsigned cls, const char *caller) __attribute__((cold, noinline));

/* Frees a small object of p (offset off, span byte span_byte: see span.h)
 * into the calling thread's cache tc (mp_t_tcache), its held byte checked
 * and cleared by the hit (mp_tcache_free_bin) or by the slow path. free's
 * fast path: always inlined, every other case a tail call. p NULL: the
 * cache's own pool, read on the paths that need it only. */
static inline __attribute__((always_inline)) void mp_pool_free_small_to(mp_tcache *tc, mp_pool *p, void *ptr,
                                                                        uintptr_t off, size_t span_byte,
                                                                        const char *caller) {
  size_t cls = mp_span_cls(span_byte);
  int r = __builtin_expect(span_byte & MP_SPAN_INHERITED, 0) ? MP_FREE_MISS /* never cached */
                                                             : mp_tcache_free_bin(tc, mp_tcache_bin_of(tc, cls), ptr);
  if (__builtin_expect(r == MP_FREE_CACHED, 1)) return;
  if (r == MP_FREE_NOT_HELD) return mp_pool_not_held(p ? p : tc->pool, ptr, cls, caller);
  return mp_pool_free_small_slow(p ? p : tc->pool, ptr, off, span_byte, caller);
}
static inline void mp_pool_free_small(mp_pool *p, void *ptr, uintptr_t off, unsigned span_byte, const char *caller) {
  mp_pool_free_small_to(mp_t_tcache, p, ptr, off, span_byte, caller);
}

/* fork (the order: forkorder.h): prepare takes the locks (single: only
 * tries them, and gives them back at once when it got them all;
 * p->fork_locked says whether it did) and takes the child's snapshot of a
 * shared window (chunks.h), parent releases them, child re-makes them and
 * replaces a shared region by a
 * private copy of its in-use ranges (when prepare did not get the locks:
 * of what it holds, touching no metadata, and the pool then serves
 * nothing). */
void mp_pool_fork_prepare(mp_pool *p, bool single);
void mp_pool_fork_parent(mp_pool *p);
/* 0, or -errno when the copy failed: the pool is then detached (serves
 * nothing, region read-only) and the caller should say so. */
int mp_pool_fork_child(mp_pool *p);

/* malloc_trim: the calling thread's cache and empty spans go back, then
 * every wholly free chunk (shared window), or the free pages of an anon
 * region (MADV_DONTNEED). True when something was given back. */
bool mp_pool_trim(mp_pool *p);

typedef struct mp_pool_info {
  uint64_t region_bytes;                             /* the window */
  uint64_t chunk_bytes, held_bytes, inherited_bytes; /* chunk size; device bytes held; private copies */
  uint64_t mapped_peak;                              /* highest held + inherited bytes so far */
  uint64_t used_bytes, free_bytes, largest_free;     /* of what is held or inherited */
  uint64_t used_ranges, free_ranges, meta_bytes;
  uint64_t small_allocs, small_frees, small_bytes; /* objects served from spans */
  mp_stats stats;
} mp_pool_info;
void mp_pool_get_info(mp_pool *p, mp_pool_info *out);
/* Calls fn on every range under the lock (O(ranges)). */
void mp_pool_walk(mp_pool *p, mp_range_fn fn, void *ctx);
/* Checks the ranges' invariants under the lock: 0 if they hold. */
int mp_pool_check(mp_pool *p, char *why, size_t whylen);

#endif
