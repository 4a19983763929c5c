/* lazy_ctor.c - a library whose constructor asks for a block the pool does
 * not serve (preload_lazy dlopen, MEMPOOL_MAX_SIZE=1K): jemalloc's first
 * use happens inside dlopen, with the dynamic loader's lock held. */
#include <stdlib.h>
#include <string.h>

void *lazy_ctor_block;

__attribute__((constructor)) static void lazy_ctor(void) {
  lazy_ctor_block = malloc(5000);
  if (lazy_ctor_block) memset(lazy_ctor_block, 0x5a, 5000);
}
