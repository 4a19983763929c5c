/* mem_allocator_c.c - the original design's C API over the public mempool API:
 * one pool per delegate, calloc() where the pool cannot serve. */
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
  d->ready = 0;
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
    if (e == EINVAL) { /* the caller's window: a bug, not a missing device */
      mp_msg("init_mem_delegate: %s", why);
      errno = e;
      return -1;
    }
    mp_msg("init_mem_delegate: %s; blocks come from calloc", why);
  }
  d->pool = p;
  d->ready = 1;
  return 0;
}

EXPORT void *mem_delegate_calloc(MemAllocDelegate *d, size_t nmemb, size_t size) {
  if (!d || !d->ready) {
    errno = EINVAL;
    return NULL;
  }
  int saved = errno;
  void *q = d->pool ? mempool_calloc(d->pool, nmemb, size) : NULL;
  if (q) return q;
  errno = saved;
  return calloc(nmemb, size); /* its own overflow check: NULL + ENOMEM */
}

EXPORT void mem_delegate_free(MemAllocDelegate *d, void *p) {
  if (!p) return;
  if (!d || !d->ready) mp_fatal("mem_delegate_free(%p): the delegate is not initialized", p);
  if (mempool_owns(d->pool, p))
    mempool_free(d->pool, p);
  else
    free(p);
}

EXPORT void destroy_mem_delegate(MemAllocDelegate *d) {
  if (!d) return;
  mempool_destroy(d->pool);
  d->pool = NULL;
  d->ready = 0;
}
