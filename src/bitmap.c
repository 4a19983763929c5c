/* bitmap.c - hierarchical bitmap (see bitmap.h for the bounds). */
#include "bitmap.h"

#define WORDS(n) (((n) + 63) >> 6)

size_t mp_bitmap_bytes(uint64_t n) {
  size_t bytes = 0;
  do {
    n = WORDS(n);
    bytes += n * 8;
  } while (n > 1);
  return bytes;
}

void mp_bitmap_init(mp_bitmap *b, uint64_t n, void *mem) {
  uint64_t *w = mem;
  unsigned l = 0;
  for (;;) {
    b->level[l] = w;
    b->nbits[l] = n;
    w += WORDS(n);
    l++;
    if (WORDS(n) <= 1) break;
    n = WORDS(n);
  }
  b->nlevels = l;
}

void mp_bitmap_set(mp_bitmap *b, uint64_t i) {
  for (unsigned l = 0; l < b->nlevels; l++) {
    uint64_t *w = &b->level[l][i >> 6];
    bool was_empty = *w == 0;
    *w |= 1ull << (i & 63);
    if (!was_empty) return;
    i >>= 6;
  }
}

void mp_bitmap_clear(mp_bitmap *b, uint64_t i) {
  for (unsigned l = 0; l < b->nlevels; l++) {
    uint64_t *w = &b->level[l][i >> 6];
    *w &= ~(1ull << (i & 63));
    if (*w) return;
    i >>= 6;
  }
}

uint64_t mp_bitmap_next_set(const mp_bitmap *b, uint64_t i) {
  unsigned l = 0;
  for (;; l++) {
    if (l == b->nlevels || i >= b->nbits[l]) return UINT64_MAX;
    uint64_t w = b->level[l][i >> 6] & (~0ull << (i & 63));
    if (w) {
      i = (i & ~63ull) | (uint64_t)__builtin_ctzll(w);
      break;
    }
    i = (i >> 6) + 1;
  }
  while (l-- > 0) i = (i << 6) | (uint64_t)__builtin_ctzll(b->level[l][i]);
  return i;
}

uint64_t mp_bitmap_prev_set(const mp_bitmap *b, uint64_t i) {
  unsigned l = 0;
  if (i >= b->nbits[0]) i = b->nbits[0] - 1;
  for (;; l++) {
    if (l == b->nlevels) return UINT64_MAX;
    uint64_t w = b->level[l][i >> 6] & (~0ull >> (63 - (i & 63)));
    if (w) {
      i = (i & ~63ull) | (uint64_t)(63 - __builtin_clzll(w));
      break;
    }
    if ((i >> 6) == 0) return UINT64_MAX;
    i = (i >> 6) - 1;
  }
  while (l-- > 0) i = (i << 6) | (uint64_t)(63 - __builtin_clzll(b->level[l][i]));
  return i;
}

int mp_bitmap_check(const mp_bitmap *b) {
  for (unsigned l = 0; l + 1 < b->nlevels; l++) {
    for (uint64_t wi = 0; wi < WORDS(b->nbits[l]); wi++) {
      bool nonzero = b->level[l][wi] != 0;
      bool summary = (b->level[l + 1][wi >> 6] >> (wi & 63)) & 1;
      if (nonzero != summary) return -1;
    }
  }
  return 0;
}
