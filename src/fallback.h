/* fallback.h - jemalloc, linked into the library under names of its own
 * (mpje_*: jemalloc-static.sh; the interposer exports mallocx, ... and
 * "malloc" is ours), initialized at its first use: a process the pool
 * serves pays nothing of jemalloc's start-up. */
#ifndef MP_FALLBACK_H
#define MP_FALLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True once jemalloc has initialized (a request reached it). */
bool mp_fallback_started(void);

/* jemalloc's fork handlers. Its initialization registers them with
 * pthread_atfork itself, unless the interposer registered its own handlers
 * with this call first: then the interposer's call jemalloc's (forkorder.h:
 * prepare last, parent and child first), and the prepare handler waits for
 * (single: only tries) an initialization in progress. */
int mp_fallback_register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));
void mp_fallback_fork_prepare(bool single);
void mp_fallback_fork_parent(void);
void mp_fallback_fork_child(void);

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

/* jemalloc's messages (its warnings, a bad MALLOC_CONF at its first use) go
 * out as "mempool: jemalloc:" lines, escaped and under the stderr rule, one
 * per line of its text. */
/* jemalloc's control and statistics calls (the interposer exports them). */
int mp_fallback_mallctl(const char *name, void *old, size_t *oldlen, void *new, size_t newlen);
int mp_fallback_mallctlnametomib(const char *name, size_t *mib, size_t *miblen);
int mp_fallback_mallctlbymib(const size_t *mib, size_t miblen, void *old, size_t *oldlen, void *new, size_t newlen);
void mp_fallback_stats_print(void (*write_cb)(void *, const char *), void *opaque, const char *opts);
/* malloc_trim's part: jemalloc purges its unused pages (every arena). */
bool mp_fallback_trim(void);

#endif
