/* fallback.h - jemalloc, reached only through its own definitions of
 * mallocx, rallocx, xallocx, sallocx, dallocx, nallocx, looked up in
 * libjemalloc at the first request (the interposer exports those names
 * too, and "malloc" is ours). */
#ifndef MP_FALLBACK_H
#define MP_FALLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Looks jemalloc's definitions up now. The interposer calls it first in its
 * initialization, while its own requests go to jemalloc: what the dynamic
 * loader allocates for the lookup stays out of the region. */
void mp_fallback_init(void);

/* NULL on failure, errno untouched (the caller sets ENOMEM). Sizes below 16
 * are served as 16: aligned to 16 like every block (and mallocx(0) is
 * undefined in jemalloc). */
void *mp_fallback_alloc(size_t size, size_t align, bool zero);
void *mp_fallback_realloc(void *ptr, size_t size);
void mp_fallback_free(void *ptr);
size_t mp_fallback_usable_size(const void *ptr);
/* jemalloc's xallocx: resizes in place towards size (up to size + extra);
 * the block's size after (below size: it could not grow). */
size_t mp_fallback_resize_in_place(void *ptr, size_t size, size_t extra);
/* jemalloc's nallocx: what it would allocate for size (and align). */
size_t mp_fallback_good_size(size_t size, size_t align);

typedef struct mp_fallback_stats {
  uint64_t allocs, frees, bytes_total;
} mp_fallback_stats;
void mp_fallback_get_stats(mp_fallback_stats *out);

/* jemalloc's later messages (its warnings) go out as "mempool: jemalloc:"
 * lines, escaped and under the stderr rule, one per line of its text. What
 * jemalloc says while it loads (a bad MALLOC_CONF) comes before any code
 * of ours runs and is written by jemalloc itself. */
void mp_fallback_route_messages(void);
/* malloc_trim's part: jemalloc purges its unused pages (every arena). */
bool mp_fallback_trim(void);

#endif
