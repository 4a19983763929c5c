/* mem_allocator_c.h - the original design's C allocator API, kept so its
 * users can move to libmempool by rebuilding and linking with -lmempool_api
 * (pkg-config mempool).
 *
 * A delegate is one mempool (mempool.h) over a window of a device, as the
 * original promises: blocks come from the window first, and from calloc()
 * when the window cannot serve them (full, or a request larger than it);
 * without a usable device (no /dev/mem, no permission, the range held by
 * another) the delegate serves everything from calloc. mem_delegate_free
 * routes a block by its address: the window's go back to it, others to
 * free().
 *
 * Differences from the original, deliberate:
 *   - blocks are rounded to 16 bytes (not to a page) and aligned to 16;
 *   - the device is MEMPOOL_DEVICE from the environment when set (a regular
 *     file may stand in for /dev/mem), else /dev/mem; MEMPOOL_SYNC=0 opens
 *     /dev/mem without O_SYNC, as for the interposer;
 *   - the struct's layout is libmempool's own: rebuild, do not just relink
 *     old objects.
 */
#ifndef MEM_ALLOCATOR_C_H
#define MEM_ALLOCATOR_C_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct MemAllocDelegate {
  struct mempool *pool; /* the window; NULL when calloc serves everything */
  int ready;            /* 1 once init_mem_delegate succeeded, 0 before and after destroy */
} MemAllocDelegate;

/* Maps [base, high] (inclusive device offsets / physical addresses) of the
 * device; base = high = 0 means the defaults 0x10000000..0x1DFFEFFF. 0 on
 * success, also when the device cannot be used (one "mempool:
 * init_mem_delegate: <reason>; blocks come from calloc" line on stderr, and
 * calloc serves). -1 with errno EINVAL (and one line) only for d NULL or a
 * bad window (high <= base, base not page-aligned, above 64 GiB). */
int init_mem_delegate(MemAllocDelegate *d, unsigned long base, unsigned long high);
/* nmemb * size zeroed bytes: from the window, else from calloc; NULL with
 * ENOMEM when neither can (overflow, out of memory), EINVAL when d is not
 * initialized. */
void *mem_delegate_calloc(MemAllocDelegate *d, size_t nmemb, size_t size);
/* Returns a block; NULL is a no-op. A block in the window goes back to it
 * (a pointer into the window that is not a live block aborts with one
 * "mempool:" line); any other goes to free(). */
void mem_delegate_free(MemAllocDelegate *d, void *p);
/* Unmaps the window: every block is gone. Safe on a failed or destroyed
 * delegate. */
void destroy_mem_delegate(MemAllocDelegate *d);

#ifdef __cplusplus
}
#endif

#endif
