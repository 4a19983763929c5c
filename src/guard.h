/* guard.h - MEMPOOL_CHECK=1, a debugging aid for pool blocks (off by default).
 *
 *   - the whole region is filled with a "freed" pattern at start, and every
 *     freed block again: a block handed out must still hold it entirely, or
 *     something wrote to it after it was freed (use after free);
 *   - each block gets 16+ bytes more than asked; the bytes after the user's
 *     data hold a canary pattern and, in the last 8, the requested size
 *     (encoded): free verifies them (heap overflow).
 * Reports name the block, its size and offset, and the call, then abort().
 * This mode touches every page of the region at start and writes into the
 * region past each block's data: a debugging mode, not for shared hardware
 * buffers. malloc_usable_size returns exactly the requested size.
 */
#ifndef MP_GUARD_H
#define MP_GUARD_H

#include "mp_types.h"

void mp_guard_init(mp_pool *p);
void *mp_guard_alloc(mp_pool *p, size_t n, size_t align, bool zero, const char *caller);
void mp_guard_free(mp_pool *p, void *ptr, const char *caller);
size_t mp_guard_usable_size(mp_pool *p, const void *ptr, const char *caller);

#endif
