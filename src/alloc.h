/* alloc.h - the malloc family's semantics (C and glibc) over a pool and the
 * jemalloc fallback. pool may be NULL: everything then goes to jemalloc.
 *
 *   - the pool serves first; what it cannot serve goes to jemalloc, unless
 *     the policy is strict (then NULL + ENOMEM); requests outside the
 *     policy's size window go straight to jemalloc;
 *   - with the policy's check flag, pool blocks get patterns and canaries (guard.h);
 *   - ownership is decided by address (mp_pool_owns, O(1));
 *   - sizes above PTRDIFF_MAX, calloc overflow: NULL + ENOMEM;
 *   - malloc(0) returns a unique pointer; free(NULL) is a no-op; free keeps errno;
 *   - realloc(p, 0) frees p and returns NULL (glibc); realloc grows in place
 *     when the next range is free, else moves (pool first) keeping content;
 *   - posix_memalign: EINVAL unless align is a power of two multiple of
 *     sizeof(void *); aligned_alloc: EINVAL unless a power of two;
 *     memalign rounds a non-power-of-two alignment up (glibc).
 */
#ifndef MP_ALLOC_H
#define MP_ALLOC_H

#include "mp_types.h"
#include "pool.h"
#include "sizeclass.h"
#include "tcache.h"

/* Everything but the thread cache's hit (below). */
void *mp_malloc_slow(mp_pool *p, size_t n) __attribute__((noinline));
void mp_free_slow(mp_pool *p, void *ptr) __attribute__((noinline));

/* malloc's hit, inlined in the interposer's malloc: a small request from
 * the thread's cache, no lock, no pool; NULL when it misses (a larger
 * request, an empty bin, no cache: see mp_tcache_none). The interposer's
 * malloc is 26 instructions on x86-64 (TLS load and ret included; with
 * free's 33 and the two PLT stubs, 61 per pair: scripts/bench --callgrind).
 * The pool is the thread cache's (tcache.h). */
static inline void *mp_malloc_hit(size_t n) {
  return __builtin_expect(n <= MP_HIT_MAX, 1) ? mp_tcache_pop(mp_class_of_hit(n)) : NULL;
}
/* The same for pool p: the thread cache's pool, or NULL (no cache then). */
static inline void *mp_malloc(mp_pool *p, size_t n) {
  void *r = mp_t_tcache->pool == p ? mp_malloc_hit(n) : NULL;
  return __builtin_expect(r != NULL, 1) ? r : mp_malloc_slow(p, n);
}

/* free's hit, its mirror: a small object of the thread cache's pool into
 * the cache (a pointer that is not a held object traps, a full bin is
 * flushed: mp_pool_free_small_to's tail calls), true; false for the
 * caller's slow path (NULL, jemalloc's blocks, range blocks, a fork child's
 * inherited spans, a thread without a cache). The span byte's one compare
 * takes live spans only: class + 1 in 1..MP_SMALL_CLASSES. The
 * interposer's free is 33 instructions on x86-64, TLS load and ret included. */
static inline __attribute__((always_inline)) bool mp_free_hit(void *ptr) {
  mp_tcache *tc = mp_t_tcache;
  uintptr_t off = (uintptr_t)ptr - tc->base;
  if (__builtin_expect(off >= tc->size, 0)) return false; /* mp_tcache_none owns nothing */
  size_t c = tc->span_class[off >> MP_SPAN_SHIFT];
  if (__builtin_expect(c - 1 >= MP_SMALL_CLASSES, 0)) return false;
  mp_pool_free_small_to(tc, NULL, ptr, off, c, "free");
  return true;
}
static inline __attribute__((always_inline)) void mp_free(mp_pool *p, void *ptr) {
  if (__builtin_expect(!mp_free_hit(ptr), 0)) mp_free_slow(p, ptr);
}

void *mp_calloc(mp_pool *p, size_t nmemb, size_t size);
void *mp_realloc(mp_pool *p, void *ptr, size_t n);
void *mp_reallocarray(mp_pool *p, void *ptr, size_t nmemb, size_t size);
int mp_posix_memalign(mp_pool *p, void **out, size_t align, size_t n);
void *mp_aligned_alloc(mp_pool *p, size_t align, size_t n);
void *mp_memalign(mp_pool *p, size_t align, size_t n);
void *mp_valloc(mp_pool *p, size_t n);
void *mp_pvalloc(mp_pool *p, size_t n);
size_t mp_malloc_usable_size(mp_pool *p, const void *ptr);
/* free_sized / free_aligned_sized (align 0: none); traps a size larger than
 * the pool's block or a pointer off the alignment (caller names the call). */
void mp_free_sized(mp_pool *p, void *ptr, size_t size, size_t align, const char *caller);

/* jemalloc's own API for programs linked with -ljemalloc: its flags'
 * alignment and zeroing; arena and tcache bits ignored; pointers routed by
 * address. rallocx NULL on failure (ptr kept), xallocx never moves (the
 * size after, which may be below size), nallocx the pool's rounding (or
 * jemalloc's for requests the routing sends there); 0 when too large. */
void *mp_mallocx(mp_pool *p, size_t size, int flags);
void *mp_rallocx(mp_pool *p, void *ptr, size_t size, int flags);
size_t mp_xallocx(mp_pool *p, void *ptr, size_t size, size_t extra, int flags);
size_t mp_nallocx(mp_pool *p, size_t size, int flags);

#endif
