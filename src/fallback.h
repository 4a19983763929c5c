/* fallback.h - jemalloc, reached only through its unique names (mallocx,
 * dallocx, rallocx, sallocx): never through the name "malloc", which is ours. */
#ifndef MP_FALLBACK_H
#define MP_FALLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* NULL on failure, errno untouched (the caller sets ENOMEM). Sizes below 16
 * are served as 16: aligned to 16 like every block (and mallocx(0) is
 * undefined in jemalloc). */
void *mp_fallback_alloc(size_t size, size_t align, bool zero);
void *mp_fallback_realloc(void *ptr, size_t size);
void mp_fallback_free(void *ptr);
size_t mp_fallback_usable_size(const void *ptr);

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
