/* alloc.c - malloc-family semantics: pool first, jemalloc next (see alloc.h). */
#define _GNU_SOURCE
#include "alloc.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "guard.h"
#include "msg.h"
#include "fallback.h"
#include "pool.h"
#include "sizeclass.h"
#include "tcache.h"

#define MIN_ALIGN MP_GRANULE

static inline bool too_big(size_t n) { return n > (size_t)PTRDIFF_MAX; }

/* Does this request go to the region (MEMPOOL_MIN_SIZE/MAX_SIZE)? */
static inline bool routed(const mp_pool *p, size_t n) {
  return p && n >= p->policy.min_size && n <= p->policy.max_size;
}

static inline void *pool_alloc(mp_pool *p, size_t n, size_t align, bool zero, const char *caller) {
  if (__builtin_expect(p->policy.check, 0)) return mp_guard_alloc(p, n, align, zero, caller);
  void *r = mp_pool_alloc(p, n, align);
  if (r && zero) memset(r, 0, n); /* region memory is recycled or physical */
  return r;
}

static inline void pool_free(mp_pool *p, void *ptr, const char *caller) {
  if (__builtin_expect(p->policy.check, 0))
    mp_guard_free(p, ptr, caller);
  else
    mp_pool_free(p, ptr, caller);
}

static inline size_t pool_usable(mp_pool *p, const void *ptr, const char *caller) {
  if (__builtin_expect(p->policy.check, 0)) return mp_guard_usable_size(p, ptr, caller);
  return mp_pool_usable_size(p, ptr, caller);
}

/* The one allocation path: pool, then jemalloc (unless MEMPOOL_STRICT), then ENOMEM. */
static void *alloc_aligned(mp_pool *p, size_t n, size_t align, bool zero, const char *caller) {
  if (too_big(n)) {
    errno = ENOMEM;
    return NULL;
  }
  if (routed(p, n)) {
    void *r = pool_alloc(p, n, align, zero, caller);
    if (r) return r;
    mp_log(MP_LOG_DEBUG, "%s(%zu, align %zu): the region cannot serve it%s", caller, n, align,
           p->policy.strict ? " (strict: ENOMEM)" : "; jemalloc");
    if (p->policy.strict) {
      errno = ENOMEM;
      return NULL;
    }
  }
  void *r = mp_fallback_alloc(n, align, zero);
  if (!r) errno = ENOMEM;
  return r;
}

/* After the cache's hit missed (alloc.h): a refill, a medium class's hit
 * (the request the policy lets the region serve), or the general path. */
void *mp_malloc_slow(mp_pool *p, size_t n) {
  if (p && p->fast_small && n <= p->small.max_size && n <= p->policy.max_size) {
    unsigned cls = mp_class_of(n);
    void *r = n <= MP_HIT_MAX ? mp_tcache_alloc_slow(p, cls) : mp_tcache_alloc(p, cls);
    if (r) return r;
  }
  return alloc_aligned(p, n, MIN_ALIGN, false, "malloc");
}

void *mp_calloc(mp_pool *p, size_t nmemb, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(nmemb, size, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  return alloc_aligned(p, n, MIN_ALIGN, true, "calloc");
}

/* What free's fast path (alloc.h) does not finish. Only jemalloc may touch
 * errno here (munmap): free must keep it. */
void mp_free_slow(mp_pool *p, void *ptr) {
  if (!ptr) return;
  if (__builtin_expect(mp_pool_owns(p, ptr), 1)) {
    int saved = errno;         /* a first cache for this thread may mmap; a chunk may go back */
    pool_free(p, ptr, "free"); /* classifies it: a small object or a range block */
    errno = saved;
    return;
  }
  int saved = errno;
  mp_fallback_free(ptr);
  errno = saved;
}

/* C23: the size (and alignment) must be the block's own; where the pool
 * knows the block, a size it cannot hold or a misaligned pointer is the
 * trap of a mismatched free. Then as free. */
void mp_free_sized(mp_pool *p, void *ptr, size_t size, size_t align, const char *caller) {
  if (ptr && mp_pool_owns(p, ptr)) {
    size_t usable = pool_usable(p, ptr, caller);
    if (size > usable || (align && ((uintptr_t)ptr & (align - 1))))
      mp_fatal("%s(%p, %zu): the block holds %zu bytes%s: not the size (or alignment) it was allocated with", caller,
               ptr, size, usable, align && ((uintptr_t)ptr & (align - 1)) ? " and is not so aligned" : "");
  }
  mp_free(p, ptr);
}

size_t mp_malloc_usable_size(mp_pool *p, const void *ptr) {
  if (!ptr) return 0;
  if (mp_pool_owns(p, ptr)) return pool_usable(p, ptr, "malloc_usable_size");
  return mp_fallback_usable_size(ptr);
}

/* realloc of a block jemalloc holds: into the pool when the pool can take
 * it, else jemalloc's own realloc. */
static void *realloc_foreign(mp_pool *p, void *ptr, size_t n) {
  void *q = routed(p, n) ? pool_alloc(p, n, MIN_ALIGN, false, "realloc") : NULL;
  if (!q) {
    if (p && p->policy.strict && routed(p, n)) {
      errno = ENOMEM;
      return NULL;
    }
    q = mp_fallback_realloc(ptr, n);
    if (!q) errno = ENOMEM;
    return q;
  }
  size_t old = mp_fallback_usable_size(ptr);
  memcpy(q, ptr, old < n ? old : n);
  mp_fallback_free(ptr);
  return q;
}

/* A pool block's: classified once by mp_pool_realloc, which keeps it in
 * place or moves it within the region (a growing block gets 1/4 more room:
 * the next growth steps then stay in place, as tcmalloc's realloc does). What the region cannot serve (or the policy
 * keeps out of it, or MEMPOOL_CHECK's guarded blocks) moves by the general path. */
void *mp_realloc(mp_pool *p, void *ptr, size_t n) {
  if (!ptr) return mp_malloc(p, n);
  if (n == 0) { /* glibc: frees and returns NULL */
    mp_free(p, ptr);
    return NULL;
  }
  if (too_big(n)) {
    errno = ENOMEM;
    return NULL;
  }
  if (!mp_pool_owns(p, ptr)) return realloc_foreign(p, ptr, n);
  size_t old;
  void *q;
  if (!p->policy.check && routed(p, n)) {
    size_t room = n <= SIZE_MAX / 2 && routed(p, n + n / 4) ? n / 4 : 0;
    q = mp_pool_realloc(p, ptr, n, room, &old, "realloc");
    if (q) return q;
    mp_log(MP_LOG_DEBUG, "realloc(%p, %zu): the region cannot serve it%s", ptr, n,
           p->policy.strict ? " (strict: ENOMEM)" : "; jemalloc");
    q = p->policy.strict ? NULL : mp_fallback_alloc(n, MIN_ALIGN, false);
  } else {
    old = pool_usable(p, ptr, "realloc");
    q = alloc_aligned(p, n, MIN_ALIGN, false, "realloc");
  }
  if (!q) {
    errno = ENOMEM;
    return NULL; /* ptr untouched */
  }
  memcpy(q, ptr, old < n ? old : n);
  pool_free(p, ptr, "realloc");
  return q;
}

void *mp_reallocarray(mp_pool *p, void *ptr, size_t nmemb, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(nmemb, size, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  return mp_realloc(p, ptr, n);
}

static inline bool pow2(size_t a) { return a && !(a & (a - 1)); }

int mp_posix_memalign(mp_pool *p, void **out, size_t align, size_t n) {
  if (!pow2(align) || align % sizeof(void *)) return EINVAL;
  int saved = errno;
  void *r = alloc_aligned(p, n, align < MIN_ALIGN ? MIN_ALIGN : align, false, "posix_memalign");
  errno = saved; /* posix_memalign reports through its return value only */
  if (!r) return ENOMEM;
  *out = r;
  return 0;
}

void *mp_aligned_alloc(mp_pool *p, size_t align, size_t n) {
  if (!pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  return alloc_aligned(p, n, align < MIN_ALIGN ? MIN_ALIGN : align, false, "aligned_alloc");
}

void *mp_memalign(mp_pool *p, size_t align, size_t n) {
  if (align > SIZE_MAX / 2 + 1) { /* glibc: EINVAL above SIZE_MAX/2+1 */
    errno = EINVAL;
    return NULL;
  }
  if (align > MIN_ALIGN && !pow2(align))
    align = (size_t)1 << (64 - __builtin_clzll(align)); /* round up (glibc); ll: size_t may be 32-bit */
  return alloc_aligned(p, n, align < MIN_ALIGN ? MIN_ALIGN : align, false, "memalign");
}

static size_t page(void) {
  long ps = sysconf(_SC_PAGESIZE);
  return ps > 0 ? (size_t)ps : 4096;
}

void *mp_valloc(mp_pool *p, size_t n) { return mp_memalign(p, page(), n); }

void *mp_pvalloc(mp_pool *p, size_t n) {
  size_t ps = page(), rounded;
  if (__builtin_add_overflow(n, ps - 1, &rounded)) {
    errno = ENOMEM;
    return NULL;
  }
  rounded &= ~(ps - 1);
  return mp_memalign(p, ps, rounded ? rounded : ps);
}

/* ---- jemalloc's own API (a program linked with -ljemalloc) -----------------
 * Its flags: MALLOCX_LG_ALIGN in the low 6 bits, MALLOCX_ZERO (0x40); the
 * tcache and arena bits name jemalloc's own structures and are ignored:
 * the pool serves as for malloc. Pointers are routed by address. */
enum { JE_LG_ALIGN_MASK = 0x3f, JE_ZERO = 0x40 };
static inline size_t je_align(int flags) {
  size_t a = (flags & JE_LG_ALIGN_MASK) ? (size_t)1 << (flags & JE_LG_ALIGN_MASK) : 0;
  return a > MIN_ALIGN ? a : MIN_ALIGN;
}

/* MALLOCX_ZERO zeroes the whole usable block, as jemalloc does. */
static void zero_tail(mp_pool *p, void *q, size_t from) {
  size_t usable = mp_malloc_usable_size(p, q);
  if (usable > from) memset((char *)q + from, 0, usable - from);
}

void *mp_mallocx(mp_pool *p, size_t size, int flags) {
  void *q = alloc_aligned(p, size, je_align(flags), flags & JE_ZERO, "mallocx");
  if (q && (flags & JE_ZERO)) zero_tail(p, q, size);
  return q;
}

void *mp_rallocx(mp_pool *p, void *ptr, size_t size, int flags) {
  size_t align = je_align(flags);
  if (size == 0) size = 1; /* undefined for jemalloc: the smallest block */
  if (align == MIN_ALIGN && !(flags & JE_ZERO)) return mp_realloc(p, ptr, size);
  size_t old = mp_malloc_usable_size(p, ptr);
  if (size <= old && !((uintptr_t)ptr & (align - 1))) { /* fits, aligned: shrinks in place */
    if (!mp_pool_owns(p, ptr))
      mp_fallback_resize_in_place(ptr, size, 0);
    else if (!p->policy.check)
      mp_pool_resize(p, ptr, size, "rallocx");
    return ptr; /* nothing new to zero */
  }
  void *q = alloc_aligned(p, size, align, false, "rallocx");
  if (!q) return NULL;
  memcpy(q, ptr, old < size ? old : size);
  if (flags & JE_ZERO) zero_tail(p, q, old < size ? old : size);
  mp_free(p, ptr);
  return q;
}

size_t mp_xallocx(mp_pool *p, void *ptr, size_t size, size_t extra, int flags) {
  size_t old = mp_malloc_usable_size(p, ptr), now;
  if ((uintptr_t)ptr & (je_align(flags) - 1)) return old; /* not so aligned: in place cannot give it (jemalloc) */
  if (mp_pool_owns(p, ptr)) {
    if (!p->policy.check && (extra == 0 || size + extra < size || !mp_pool_resize(p, ptr, size + extra, "xallocx")))
      mp_pool_resize(p, ptr, size, "xallocx");
    now = pool_usable(p, ptr, "xallocx");
  } else {
    now = mp_fallback_resize_in_place(ptr, size, extra);
  }
  if ((flags & JE_ZERO) && now > old) memset((char *)ptr + old, 0, now - old);
  return now;
}

size_t mp_nallocx(mp_pool *p, size_t size, int flags) {
  size_t align = je_align(flags);
  if (too_big(size)) return 0;
  if (!routed(p, size)) return mp_fallback_good_size(size, align);
  if (p->policy.check) return size; /* MEMPOOL_CHECK: the size asked (the canary follows it) */
  return mp_pool_good_size(p, size, align);
}
