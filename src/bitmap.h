/* bitmap.h - hierarchical bitmap over a caller-provided memory block.
 *
 * Level 0 holds one bit per item; level k+1 one bit per non-zero word of
 * level k; the top level is a single word. set/clear cost O(levels) at most,
 * next_set/prev_set O(levels): at most 2 * levels word reads, whatever the
 * distance to the answer. 64 GiB of 16-byte granules need 5 levels.
 */
#ifndef MP_BITMAP_H
#define MP_BITMAP_H

#include "mp_types.h"

/* Bytes needed for n bits, all levels. */
size_t mp_bitmap_bytes(uint64_t n);
/* Lays the levels out in mem (zeroed, mp_bitmap_bytes(n) long). */
void mp_bitmap_init(mp_bitmap *b, uint64_t n, void *mem);

static inline bool mp_bitmap_test(const mp_bitmap *b, uint64_t i) { return (b->level[0][i >> 6] >> (i & 63)) & 1; }
void mp_bitmap_set(mp_bitmap *b, uint64_t i);
void mp_bitmap_clear(mp_bitmap *b, uint64_t i);
/* Smallest set index >= i, or UINT64_MAX. */
uint64_t mp_bitmap_next_set(const mp_bitmap *b, uint64_t i);
/* Largest set index <= i, or UINT64_MAX. */
uint64_t mp_bitmap_prev_set(const mp_bitmap *b, uint64_t i);
/* Checks that every summary bit matches its word below; 0 if consistent. */
int mp_bitmap_check(const mp_bitmap *b);

#endif
