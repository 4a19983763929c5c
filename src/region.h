/* region.h - the mapped window of the device. Holds user data only. */
#ifndef MP_REGION_H
#define MP_REGION_H

#include "mp_types.h"

/* Opens [cfg->base, cfg->high] of cfg->device (a device, a regular file
 * created when missing, or "anon") and reserves its addresses. Exclusive
 * mode (cfg->share false) locks and maps the whole window now; shared mode
 * maps nothing yet (mp_region_claim). Touches no page of the region.
 * Returns 0, or -errno with a one-line reason in err (no "mempool: " prefix;
 * the caller says what it does about it):
 *   EINVAL  BASE not page-aligned            ELOOP  the path is a symlink
 *   ENOENT  missing (never created in /dev)  EPERM  a file another user owns
 *   ENODEV  neither a character device nor   or others may write; mmap
 *           a regular file                   refused (System RAM)
 *   EFBIG   RLIMIT_FSIZE below the end       EBUSY  (exclusive) locked by another
 *   or what open/fstat/ftruncate/mmap said.
 * The descriptor is the library's own: close-on-exec, at a high number. */
int mp_region_open(const mp_config *cfg, mp_region *r, char *err, size_t errlen);
/* The mapping alignment a character device asks for (device dax:
 * SYSFS/dev/char/MAJ:MIN/align, 2 MiB by default), or 0 (none known).
 * sysfs_root NULL or empty: /sys. Reads one file; allocates nothing. */
uint64_t mp_region_device_align(const char *device, const char *sysfs_root);
void mp_region_close(mp_region *r);
/* u-dma-buf (a character device whose SYSFS/dev/char/MAJ:MIN directory,
 * its /sys/class/u-dma-buf/NAME, has phys_addr, size and sync_for_device):
 * true with the buffer's bus address and size. Reads two files. */
bool mp_region_udmabuf(const char *device, const char *sysfs_root, uint64_t *phys, uint64_t *size);
/* u-dma-buf's cache maintenance of [off, off+len) of the window (region
 * offsets): sync_offset, sync_size, sync_direction, then sync_for_device or
 * sync_for_cpu written. 0, or -errno (-EIO when a control is missing or
 * refused the value). Not atomic across processes: the controls are the
 * buffer's. Four opens and writes. */
int mp_region_sysfs_sync(const mp_region *r, size_t off, size_t len, bool to_device);

/* Shared mode. Claims [off, off+len) of the window (offsets from its start,
 * page-aligned) through an open of its own: a non-blocking OFD write lock on
 * those bytes of the device, real blocks for a regular file, a MAP_SHARED
 * mapping over the reservation, and the descriptor closed (the mapping keeps
 * the lock). 0, or -EBUSY (another holds part of it; *busy_end, when given,
 * is the window offset where that lock ends), -ENOSPC (file system full),
 * -ESTALE (the path no longer names the file the region opened), or what
 * open/mmap said. O(1) system calls. */
int mp_region_claim(mp_region *r, size_t off, size_t len, size_t *busy_end);
/* Unmaps a claimed range (addresses stay reserved): its lock goes with its
 * open file description. Claim and release ranges alike (one chunk each). */
void mp_region_release(mp_region *r, size_t off, size_t len);
/* What a private copy must carry: live(ctx, emit, state) calls emit(state,
 * off, len) for every extent holding data (region offsets, ascending). */
typedef void (*mp_live_fn)(void *ctx, mp_bytes_fn emit, void *state);

/* Replaces [off, off+len) by private anonymous memory holding the bytes
 * live() names; the rest of the range reads as zeros (or, less than a page
 * from live bytes, as the device held them). A regular file's range is
 * replaced in place and the live extents are read from the file with pread
 * (from the page cache: no second mapping, no page tables of the shared
 * pages); a device's is copied into a second mapping moved over the range,
 * or, without memory for that (ENOMEM: RLIMIT_AS, strict overcommit),
 * replaced in place and read back with pread (no address space more; what
 * the parent wrote after fork may show, as in any copy taken after
 * fork). 0, or -errno: the range is then the parent's, read-only (a
 * child that cannot even get that back is stopped: mp_fatal). O(live
 * bytes) copied. */
int mp_region_copy_private(mp_region *r, size_t off, size_t len, mp_live_fn live, void *ctx);

/* A fork child's copy of [off, off+len) that its parent made before fork
 * (shadow: private anonymous memory of len bytes, shared copy-on-write with
 * the parent), moved over the range: no byte is copied. Without room for
 * that, its live extents (live()) are copied from it into anonymous memory
 * in place. shadow NULL: anonymous zeros. Never read from the device (the
 * parent does not wait). The shadow is gone after. 0, or -errno: the range
 * may then be unmapped (the caller maps it read-only). */
int mp_region_adopt(mp_region *r, size_t off, size_t len, void *shadow, mp_live_fn live, void *ctx);

/* Around a fork child's copies of several ranges of a file: one open of it
 * for all, made by the first copy that reads the file (else each copy
 * opens its own). */
void mp_region_copies_begin(mp_region *r);
void mp_region_copies_end(mp_region *r);

/* Exclusive mode in a fork child: the whole mapping becomes a private copy. */
int mp_region_privatize(mp_region *r, mp_live_fn live, void *ctx);

static inline bool mp_region_contains(const mp_region *r, const void *p) { return (uintptr_t)p - r->base < r->size; }

/* Private anonymous memory for metadata (never from malloc). */
void *mp_meta_map(size_t len);
/* Addresses only (PROT_NONE: no commit charge, nothing for mlockall to
 * populate), made usable page range by page range with mp_meta_commit
 * (false: the kernel refused the commit, ENOMEM or a RLIMIT_MEMLOCK). */
void *mp_meta_reserve(size_t len);
bool mp_meta_commit(void *p, size_t len);
/* Is the last page of [p, p+len) (p page-aligned) resident? One mincore call. */
bool mp_meta_resident(void *p, size_t len);
void mp_meta_unmap(void *p, size_t len);

#endif
