/* mempool.h - libmempool's public API: allocators that serve only from a
 * window of a device (a physical range through /dev/mem, a character device
 * such as /dev/udmabuf0, a regular file standing in for one, or anonymous
 * memory), independent of the LD_PRELOAD interposer.
 *
 * A pool is the same allocator the interposer uses: address-ordered ranges of
 * 16-byte granules, split on allocation and coalesced on free, with all
 * metadata outside the region (the region holds user data only, so it may be
 * shared with hardware). Unlike the interposer, a pool never falls back to
 * another allocator: when its region cannot serve a request the call returns
 * NULL with errno = ENOMEM.
 *
 *   - Several pools may live in one process, each over its own region (other
 *     devices/files, or disjoint ranges of one). Each region holds an open
 *     file description lock on its byte range of the device, so a range is
 *     used by one pool at a time, in this process or any other (this includes
 *     the interposer's own region when the library is preloaded or linked).
 *   - Every function is thread-safe (one lock per pool) and none allocates
 *     through malloc: the API works inside programs running under the
 *     interposer, and from the malloc family's own callers.
 *   - Sizes are rounded up to 16 bytes; every block is aligned to at least 16.
 *   - A pointer given to free/realloc/usable_size that is not the start of a
 *     live block of that pool (double free, interior pointer, a pointer of
 *     another pool or of malloc) is a bug: one "mempool:" line on stderr
 *     naming the call and the pointer, then abort().
 *   - fork: the child gets a private copy of every pool (in-use blocks are
 *     copied to anonymous memory at the same addresses), as with the
 *     interposer; the parent's regions are unaffected by the child.
 *
 * Link with -lmempool_api (pkg-config mempool): the API without the malloc
 * interposer. (libmempool.so, the LD_PRELOAD library, exports this API too,
 * but a program linked with it would also have its malloc replaced.)
 */
#ifndef MEMPOOL_H
#define MEMPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mempool mempool_t;

/* What to map. The region is [base, high] of the device (inclusive), i.e.
 * device offsets / physical addresses. */
struct mempool_params {
  const char *device; /* "/dev/mem", another character device, a regular file
                         (created, or extended sparse, to reach high+1; its
                         offsets stand in for physical addresses), or "anon"
                         (private anonymous memory of the same size) */
  uint64_t base;      /* first byte; a multiple of the page size */
  uint64_t high;      /* last byte; high > base, at least one page, at most 64 GiB (2 GiB where size_t
                         has 32 bits); base and high are 64-bit device offsets on every target */
  bool cached;        /* /dev/mem only: open without O_SYNC (MEMPOOL_SYNC=0;
                         needed on arm64, see README.md) */
};

/* Maps the region (lazily: no page is touched) and returns a pool, or NULL
 * with errno set and a one-line reason (no "mempool:" prefix, no newline) in
 * err when err is not NULL:
 *   EINVAL  no device, high <= base, base not page-aligned, region smaller
 *           than a page or larger than 64 GiB (2 GiB on a 32-bit target);
 *           a u-dma-buf (see mempool_phys) whose buffer the window passes,
 *           or whose phys_addr + size wraps
 *   EBUSY   the range (or an overlapping range of the device) is held by
 *           another pool, the interposer, or another process
 *   ENODEV  the device is neither a character device nor a regular file
 *   other   the errno of the failing open/ftruncate/mmap (ENOENT, EACCES,
 *           EPERM for /dev/mem ranges the kernel refuses, ENOMEM, ...) */
mempool_t *mempool_create(const struct mempool_params *params, char *err, size_t errlen);
/* Unmaps the region and releases its lock; every block of the pool is gone.
 * NULL is a no-op. */
void mempool_destroy(mempool_t *pool);

/* A block of at least size bytes, aligned to 16. size 0 gives a unique
 * block. NULL + ENOMEM when the region cannot serve it. */
void *mempool_alloc(mempool_t *pool, size_t size);
/* As mempool_alloc, aligned to align (a power of two; below 16 means 16).
 * NULL + EINVAL for a bad alignment, NULL + ENOMEM when it cannot be served. */
void *mempool_aligned_alloc(mempool_t *pool, size_t align, size_t size);
/* nmemb * size zeroed bytes; NULL + ENOMEM on overflow or when full. */
void *mempool_calloc(mempool_t *pool, size_t nmemb, size_t size);
/* Resizes in place when it can (shrinking, or growing into a free
 * successor), else moves within the pool keeping the content. p NULL is
 * mempool_alloc; size 0 frees p and returns NULL (as glibc's realloc). On
 * failure: NULL + ENOMEM, p untouched. */
void *mempool_realloc(mempool_t *pool, void *p, size_t size);
/* Returns the block to the pool (coalescing with free neighbours). NULL is a
 * no-op; errno is preserved. */
void mempool_free(mempool_t *pool, void *p);
/* The block's usable size (its size rounded up to 16); 0 for NULL. */
size_t mempool_usable_size(mempool_t *pool, const void *p);
/* true when p lies in the pool's region (whether or not it is a live block). */
bool mempool_owns(const mempool_t *pool, const void *p);
/* Virtual address of the region's first byte: walk offsets are relative to it. */
void *mempool_base(const mempool_t *pool);

struct mempool_stats {
  uint64_t region_bytes;    /* usable bytes of the region */
  uint64_t bytes_in_use;    /* in live blocks, 16-byte rounded */
  uint64_t peak_bytes;      /* highest bytes_in_use so far */
  uint64_t bytes_free;      /* region_bytes - bytes_in_use */
  uint64_t largest_free;    /* largest free range: the biggest block that fits */
  uint64_t allocations;     /* blocks handed out (a moving realloc counts one) */
  uint64_t frees;           /* blocks returned (a moving realloc counts one) */
  uint64_t failed_requests; /* requests answered NULL + ENOMEM */
  uint64_t ranges_in_use;   /* live blocks */
  uint64_t ranges_free;     /* free ranges (1 when nothing is allocated) */
  uint64_t metadata_bytes;  /* metadata touched so far, outside the region */
};
/* Fills *out with a consistent snapshot. 0, or -1 + EINVAL for NULL args. */
int mempool_get_stats(mempool_t *pool, struct mempool_stats *out);

/* Calls fn for every range of the region in address order, free or in use;
 * the ranges tile the region (sizes sum to region_bytes). offset is from
 * mempool_base(): the range's device (physical) address is
 * mempool_phys(pool, mempool_base(pool)) + offset where the pool has them
 * (see mempool_phys). fn runs under the pool's lock: it must not call into
 * the same pool. 0, or -1 + EINVAL for NULL args. */
typedef void (*mempool_walk_fn)(size_t offset, size_t size, bool in_use, void *ctx);
int mempool_walk(mempool_t *pool, mempool_walk_fn fn, void *ctx);

/* Verifies the allocator's invariants (O(ranges)): 0 when they hold, else the
 * number of the first violated one with a description in why (why may be
 * NULL); -1 for a NULL pool. Meant for tests and debugging. */
int mempool_check(mempool_t *pool, char *why, size_t whylen);

/* ---- DMA: the interposer's pool, device addresses, cache maintenance ------ */

/* The interposer's pool (the one that serves malloc under LD_PRELOAD of
 * libmempool.so), or NULL when there is none: the interposer is not loaded
 * (libmempool_api.so alone), or its region is not in use (a refused
 * configuration, a device that could not be opened). A program that does
 * not link the library finds it with dlsym(RTLD_DEFAULT, "mempool_default").
 * O(1), never fails otherwise, sets no errno.
 *
 * The handle is the interposer's, for the calls below and mempool_owns,
 * mempool_base, mempool_get_stats, mempool_walk and mempool_check.
 * mempool_destroy ignores it. The allocation calls work on it too but are
 * the region's own, without malloc's policies (MEMPOOL_MIN_SIZE/MAX_SIZE,
 * MEMPOOL_CHECK's canaries): a block goes back the way it came (malloc's
 * to free, mempool_alloc's to mempool_free). */
mempool_t *mempool_default(void);

/* What mempool_phys returns on failure. */
#define MEMPOOL_NO_PHYS ((uint64_t)-1)

/* The device (physical, bus) address of the byte at ptr:
 *   /dev/mem          the physical address (the window's device offset)
 *   u-dma-buf         phys_addr (its sysfs) + the device offset
 *   device dax        resource (its sysfs) + the device offset
 *   another device    the device offset (what mmap's offset means to its driver)
 *   a regular file    the file offset, standing in for a physical address
 * MEMPOOL_NO_PHYS with errno:
 *   EINVAL      pool NULL; ptr not in the pool's region; ptr in a part of a
 *               shared window (MEMPOOL_SHARE=1) this process does not hold
 *   EOPNOTSUPP  the memory at ptr is not the device's: "anon", or a fork
 *               child's private copy (the blocks a child inherits, of a
 *               shared window or of an exclusive one, are copies in
 *               anonymous memory: a device does not see them; a block the
 *               child allocates later from a chunk it claims is the
 *               device's again), or a pool detached at fork
 * O(1): a lock taken and released on a shared window. */
uint64_t mempool_phys(const mempool_t *pool, const void *ptr);
/* The reverse: the address in this process of device address phys, or NULL
 * with errno EINVAL (pool NULL, phys outside the window, or in a part of it
 * this process does not hold) or EOPNOTSUPP (as for mempool_phys). O(1). */
void *mempool_virt(const mempool_t *pool, uint64_t phys);

/* Cache maintenance of [ptr, ptr+len), cache-line exact (the lines that
 * range touches): sync_for_device makes the CPU's writes visible to a
 * device that reads memory (before handing it the address); sync_for_cpu
 * drops stale lines before the CPU reads what a device wrote. What is done
 * depends on the backing, known at creation:
 *   cached mapping (a regular file, /dev/mem with cached = true or
 *   MEMPOOL_SYNC=0, another device): x86 clflushopt (when CPUID has it,
 *   else clflush) per line then sfence (mfence after clflush); arm64
 *   dc cvac (for the device) / dc civac (for the CPU) per line of
 *   CTR_EL0's data line size, then dsb sy
 *   uncached mapping (/dev/mem opened with O_SYNC, the default):
 *   nothing (0)
 *   u-dma-buf: its sysfs controls (sync_offset, sync_size, sync_direction,
 *   then sync_for_device or sync_for_cpu), nothing when its dma_coherent
 *   reads 1. The controls are the buffer's: two processes syncing one
 *   buffer at once may mix their ranges (calls of one process are
 *   serialized by the pool's lock)
 * len 0 does nothing (0) for a ptr in the region. 0 on success, else -1 with
 * errno:
 *   EINVAL      pool NULL; [ptr, ptr+len) not wholly inside the region; a
 *               byte of it in a part of a shared window this process does
 *               not hold
 *   EOPNOTSUPP  the range is not the device's memory (as for mempool_phys);
 *               or a cached mapping where user space cannot maintain caches:
 *               32-bit ARM (no user cache maintenance to the point of
 *               coherency) and other architectures; use /dev/mem with
 *               O_SYNC or u-dma-buf's sysfs controls there
 *   EIO, other  u-dma-buf: a control missing or refusing the value (the
 *               errno of its write)
 * Time: O(len / line size) instructions, or four sysfs writes; on a shared
 * window (and for u-dma-buf) under the pool's lock, so no part of the range
 * goes back to the device meanwhile. Safe from the malloc family's callers:
 * nothing allocates. */
int mempool_sync_for_device(const mempool_t *pool, const void *ptr, size_t len);
int mempool_sync_for_cpu(const mempool_t *pool, const void *ptr, size_t len);

#ifdef __cplusplus
}
#endif

#endif
