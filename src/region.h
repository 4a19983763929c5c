/* region.h - the mapped window of the device. Holds user data only. */
#ifndef MP_REGION_H
#define MP_REGION_H

#include "mp_types.h"

/* Maps [cfg->base, cfg->high] of cfg->device (a device, a regular file that
 * is created/extended sparse, or "anon"). Touches no page of the region.
 * Returns 0, or -errno (EINVAL, ENODEV, EBUSY: the range is locked by
 * another open, or what open/ftruncate/mmap said) with a one-line reason in
 * err (no "mempool: " prefix; the caller says what it does about it). */
int mp_region_open(const mp_config *cfg, mp_region *r, char *err, size_t errlen);
void mp_region_close(mp_region *r);

/* In a fork child: replace the shared mapping by a private anonymous one
 * holding a copy of the bytes that copy_ranges() copies. Returns 0 or -errno. */
typedef void (*mp_copy_fn)(void *ctx, uintptr_t dst_base);
int mp_region_privatize(mp_region *r, mp_copy_fn copy_ranges, void *ctx);

static inline bool mp_region_contains(const mp_region *r, const void *p) {
  return (uintptr_t)p - r->base < r->size;
}

/* Private anonymous memory for metadata (never from malloc). */
void *mp_meta_map(size_t len);
void mp_meta_unmap(void *p, size_t len);

#endif
