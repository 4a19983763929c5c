/* dma.c - device addresses and cache maintenance of a pool's blocks (dma.h). */
#define _GNU_SOURCE
#include "dma.h"

#include <errno.h>

#include "cacheline.h"
#include "chunks.h"
#include "region.h"

/* Whether [off, off+len) of the region (len >= 1, inside it) is device
 * memory of this process. Pool lock held for a shared window. */
static int device_memory(const mp_pool *p, size_t off, size_t len) {
  const mp_region *r = &p->region;
  if (r->anon || p->detached || (p->chunks.fixed && !r->shared)) return -EOPNOTSUPP; /* anon, or privatized */
  uint32_t g = (uint32_t)(off >> MP_GRANULE_SHIFT), last = (uint32_t)((off + len - 1) >> MP_GRANULE_SHIFT);
  uint32_t step = p->chunks.granules;
  for (uint32_t k = g / step; k <= last / step; k++) {
    unsigned st = p->chunks.state[k];
    if (st == MP_CHUNK_AWAY) return -EINVAL;
    if (st == MP_CHUNK_INHERITED) return -EOPNOTSUPP;
  }
  return 0;
}

/* The region offset of [ptr, ptr+len) when it lies in the region, else -1. */
static int64_t offset_in(const mp_pool *p, const void *ptr, size_t len) {
  uintptr_t off = (uintptr_t)ptr - p->region.base;
  if (off >= p->region.size || len > p->region.size - off) return -1;
  return (int64_t)off;
}

/* device_memory under the lock a shared window needs (and the sysfs
 * controls, one sequence at a time); the lock stays held (*locked) when
 * keep and the answer is 0. */
static int check_range(mp_pool *p, size_t off, size_t len, bool keep, bool *locked) {
  *locked = !p->chunks.fixed || p->region.dma == MP_DMA_SYSFS;
  if (*locked) pthread_mutex_lock(&p->lock);
  int rc = device_memory(p, off, len ? len : 1);
  if (*locked && (rc != 0 || !keep)) {
    pthread_mutex_unlock(&p->lock);
    *locked = false;
  }
  return rc;
}

int mp_dma_phys(mp_pool *p, const void *ptr, uint64_t *out) {
  int64_t off = offset_in(p, ptr, 1);
  bool locked;
  int rc = off < 0 ? -EINVAL : check_range(p, (size_t)off, 1, false, &locked);
  if (rc == 0) *out = p->region.dev_offset + (uint64_t)off + p->region.bus_offset;
  return rc;
}

int mp_dma_virt(mp_pool *p, uint64_t phys, void **out) {
  uint64_t start = p->region.dev_offset + p->region.bus_offset;
  if (phys < start || phys - start >= p->region.size) return -EINVAL;
  void *ptr = (void *)(p->region.base + (uintptr_t)(phys - start));
  uint64_t back;
  int rc = mp_dma_phys(p, ptr, &back);
  if (rc == 0) *out = ptr;
  return rc;
}

int mp_dma_sync(mp_pool *p, const void *ptr, size_t len, bool to_device) {
  int64_t off = offset_in(p, ptr, len);
  bool locked;
  if (off < 0) return -EINVAL;
  int rc = check_range(p, (size_t)off, len, true, &locked);
  if (rc == 0 && len > 0) {
    if (p->region.dma == MP_DMA_SYSFS)
      rc = mp_region_sysfs_sync(&p->region, (size_t)off, len, to_device);
    else if (p->region.dma == MP_DMA_CPU && !mp_cache_sync(ptr, len, to_device))
      rc = -EOPNOTSUPP;
  }
  if (locked) pthread_mutex_unlock(&p->lock);
  return rc;
}
