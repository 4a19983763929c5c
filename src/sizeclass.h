/* sizeclass.h - the 32 small size classes (16 B .. 8 KiB), four per doubling
 * above 128 B (at most 25% internal waste), and O(1) lookups. */
#ifndef MP_SIZECLASS_H
#define MP_SIZECLASS_H

#include "mp_types.h"

static const uint16_t mp_class_size[MP_SMALL_CLASSES] = {
    16,  32,  48,  64,   80,   96,   112,  128,  160,  192,  224,  256,  320,  384,  448,  512,
    640, 768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192};

/* Class of each 16-byte step up to 1 KiB: one load on the common sizes. */
static const uint8_t mp_class_of_step[65] = {0,  0,  1,  2,  3,  4,  5,  6,  7,  8,  8,  9,  9,  10, 10, 11, 11,
                                             12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15, 16,
                                             16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17, 17, 18, 18,
                                             18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19, 19};

/* Class of a size in [0, MP_SMALL_MAX]: a table up to 1 KiB, then the top bits. */
static inline unsigned mp_class_of(size_t size) {
  if (__builtin_expect(size <= 1024, 1)) return mp_class_of_step[(size + 15) >> 4];
  unsigned lg = 63u - (unsigned)__builtin_clzll(size - 1);    /* 2^lg < size <= 2^(lg+1); ll: size_t may be 32-bit */
  unsigned quarter = (unsigned)((size - 1) >> (lg - 2)) & 3u; /* which quarter of the doubling */
  return 8u + (lg - 7u) * 4u + quarter;
}

/* floor(n / size) for n < 2^16, by multiplication (exact for these ranges). */
static inline uint32_t mp_class_div(uint32_t n, unsigned cls) {
  static const uint32_t recip[MP_SMALL_CLASSES] = {
#define R(s) (uint32_t)(0xFFFFFFFFu / (s) + 1)
      R(16),   R(32),   R(48),   R(64),   R(80),   R(96),   R(112),  R(128),  R(160),  R(192),  R(224),
      R(256),  R(320),  R(384),  R(448),  R(512),  R(640),  R(768),  R(896),  R(1024), R(1280), R(1536),
      R(1792), R(2048), R(2560), R(3072), R(3584), R(4096), R(5120), R(6144), R(7168), R(8192)};
#undef R
  return (uint32_t)(((uint64_t)n * recip[cls]) >> 32);
}

/* Objects a thread may cache per class: more for the small ones. */
static inline uint32_t mp_class_cache_cap(unsigned cls) {
  uint16_t s = mp_class_size[cls];
  return s <= 256 ? 128 : s <= 1024 ? 64 : s <= 4096 ? 32 : 16;
}

#endif
