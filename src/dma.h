/* dma.h - what a device needs of a pool's blocks: their device (bus)
 * addresses and cache maintenance. The pool layer's view: region geometry,
 * chunk states, the cache instructions (cacheline.h) or the driver's sysfs
 * controls (region.h).
 *
 * Device memory is what this process maps of the device: the whole window
 * of an exclusive pool, the chunks it holds of a shared one. Not device
 * memory: "anon", a fork child's private copies (inherited chunks, an
 * exclusive window privatized at fork), a pool detached at fork. Every call
 * answers from that, in O(1) plus the range's chunks.
 */
#ifndef MP_DMA_H
#define MP_DMA_H

#include "mp_types.h"

/* The device address of ptr: 0, -EINVAL (not in the region, or in a chunk
 * this process does not hold) or -EOPNOTSUPP (not device memory). */
int mp_dma_phys(mp_pool *p, const void *ptr, uint64_t *out);
/* The reverse: 0 with *out, or the same errors for that address. */
int mp_dma_virt(mp_pool *p, uint64_t phys, void **out);
/* Cache maintenance of [ptr, ptr+len) before a device reads it (to_device)
 * or after it wrote (not to_device): 0, the errors above for any byte of
 * the range, -EOPNOTSUPP where it cannot be done from user space (a cached
 * mapping on 32-bit ARM), or a sysfs control's -errno. A shared window's
 * pool lock is held throughout (no chunk of the range goes meanwhile). */
int mp_dma_sync(mp_pool *p, const void *ptr, size_t len, bool to_device);

#endif
