/* mem_allocator_c.c - the original design's C API over the public mempool API:
 * one pool per delegate. */
#define _GNU_SOURCE
#include "mem_allocator_c.h"

#include <errno.h>
#include <stdlib.h>

#include "mempool.h"
#include "mp_types.h"
#include "msg.h"

#define EXPORT __attribute__((visibility("default")))

EXPORT int init_mem_delegate(MemAllocDelegate *d, unsigned long base, unsigned long high) {
  if (!d) {
    mp_msg("init_mem_delegate: no delegate given");
    errno = EINVAL;
    return -1;
  }
  d->pool = NULL;
  if (base == 0 && high == 0) {
    base = MP_DEFAULT_BASE;
    high = MP_DEFAULT_HIGH;
  }
  /* secure_getenv: a setuid program must not be pointed at another device. */
  const char *dev = secure_getenv("MEMPOOL_DEVICE");
  const char *sync = secure_getenv("MEMPOOL_SYNC");
  struct mempool_params prm = {.device = dev ? dev : MP_DEFAULT_DEVICE,
                               .base = base,
                               .high = high,
                               .cached = sync && sync[0] == '0' && !sync[1]};
  char why[320];
  mempool_t *p = mempool_create(&prm, why, sizeof why);
  if (!p) {
    int e = errno;
    mp_msg("init_mem_delegate: %s", why);
    errno = e;
    return -1;
  }
  d->pool = p;
  return 0;
}

EXPORT void *mem_delegate_calloc(MemAllocDelegate *d, size_t nmemb, size_t size) {
  if (!d || !d->pool) {
    errno = EINVAL;
    return NULL;
  }
  return mempool_calloc(d->pool, nmemb, size);
}

EXPORT void mem_delegate_free(MemAllocDelegate *d, void *p) {
  if (!p) return;
  if (!d || !d->pool) mp_fatal("mem_delegate_free(%p): the delegate is not initialized", p);
  mempool_free(d->pool, p);
}

EXPORT void destroy_mem_delegate(MemAllocDelegate *d) {
  if (!d) return;
  mempool_destroy(d->pool);
  d->pool = NULL;
}
