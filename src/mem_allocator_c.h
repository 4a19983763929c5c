/* mem_allocator_c.h - the original design's C allocator API, kept so its
 * users can move to libmempool by rebuilding and linking with -lmempool_api
 * (pkg-config mempool).
 *
 * A delegate is one mempool (mempool.h) over a window of a device; it serves
 * only from that window: when the window is full, mem_delegate_calloc
 * returns NULL (errno = ENOMEM), it never falls back to malloc.
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
  struct mempool *pool; /* NULL until init_mem_delegate succeeds */
} MemAllocDelegate;

/* Maps [base, high] (inclusive device offsets / physical addresses) of the
 * device; base = high = 0 means the defaults 0x10000000..0x1DFFEFFF. Returns
 * 0, or -1 with errno set and one "mempool: <reason>" line on stderr. */
int init_mem_delegate(MemAllocDelegate *d, unsigned long base, unsigned long high);
/* nmemb * size zeroed bytes from the delegate's window, or NULL (ENOMEM on
 * overflow or when the window is full; EINVAL if d is not initialized). */
void *mem_delegate_calloc(MemAllocDelegate *d, size_t nmemb, size_t size);
/* Returns a block; NULL is a no-op. A pointer that is not a live block of
 * this delegate aborts with one "mempool:" line. */
void mem_delegate_free(MemAllocDelegate *d, void *p);
/* Unmaps the window: every block is gone. Safe on a failed or destroyed
 * delegate. */
void destroy_mem_delegate(MemAllocDelegate *d);

#ifdef __cplusplus
}
#endif

#endif
