/* guard.c - freed-block pattern and canaries (see guard.h). */
#include "guard.h"

#include <string.h>

#include "msg.h"
#include "pool.h"

#define FREED_BYTE  MP_GUARD_FREED_BYTE
#define CANARY_BYTE 0xCAu
#define SIZE_KEY    0x6d656d706f6f6c21ull /* "mempool!": an encoded size is not a plain number */
#define PAD         16u

/* Chunks claimed later are filled as they are claimed (chunks.c). */
void mp_guard_init(mp_pool *p) {
  if (p->chunks.fixed) memset((void *)p->region.base, FREED_BYTE, p->region.size);
}

static inline uintptr_t offset(const mp_pool *p, const void *ptr) { return (uintptr_t)ptr - p->region.base; }

void *mp_guard_alloc(mp_pool *p, size_t n, size_t align, bool zero, const char *caller) {
  if (n > SIZE_MAX - PAD) return NULL;
  unsigned char *r = mp_pool_alloc(p, n + PAD, align);
  if (!r) return NULL;
  size_t u = mp_pool_usable_size(p, r, caller);
  for (size_t i = 0; i < u; i++)
    if (r[i] != FREED_BYTE)
      mp_fatal("%s: block %p (%zu bytes, pool offset %#llx) was written after it was freed: byte %zu is %#x", caller,
               (void *)r, u, (unsigned long long)offset(p, r), i, r[i]);
  if (zero) memset(r, 0, n);
  memset(r + n, CANARY_BYTE, u - 8 - n);
  uint64_t enc = (uint64_t)n ^ SIZE_KEY;
  memcpy(r + u - 8, &enc, 8);
  return r;
}

/* The requested size, after verifying the canary (traps on damage). */
static size_t verified_size(mp_pool *p, const unsigned char *r, size_t u, const char *caller) {
  uint64_t enc;
  memcpy(&enc, r + u - 8, 8);
  uint64_t n = enc ^ SIZE_KEY;
  if (n > u - PAD)
    mp_fatal("%s(%p): heap overflow: the canary at the end of the block (%zu bytes, pool offset %#llx) is destroyed",
             caller, (const void *)r, u, (unsigned long long)offset(p, r));
  for (size_t i = n; i < u - 8; i++)
    if (r[i] != CANARY_BYTE)
      mp_fatal(
          "%s(%p): heap overflow: byte %zu past the end of the block (%llu bytes requested, pool offset %#llx) was overwritten",
          caller, (const void *)r, i - (size_t)n, (unsigned long long)n, (unsigned long long)offset(p, r));
  return (size_t)n;
}

void mp_guard_free(mp_pool *p, void *ptr, const char *caller) {
  size_t u = mp_pool_usable_size(p, ptr, caller); /* traps on a bad pointer */
  verified_size(p, ptr, u, caller);
  memset(ptr, FREED_BYTE, u);
  mp_pool_free(p, ptr, caller);
}

size_t mp_guard_usable_size(mp_pool *p, const void *ptr, const char *caller) {
  size_t u = mp_pool_usable_size(p, ptr, caller);
  return verified_size(p, ptr, u, caller);
}
