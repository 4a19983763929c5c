/* sizeclass.h - the 52 size classes spans serve (16 B .. 256 KiB), four per
 * doubling above 128 B (at most 25% internal waste), their spans' sizes,
 * and O(1) lookups. */
#ifndef MP_SIZECLASS_H
#define MP_SIZECLASS_H

#include "mp_types.h"

/* The class sizes, once: the size table and the division's reciprocals. */
/* clang-format off */
#define MP_CLASS_SIZES(X)                                                                                  \
  X(16) X(32) X(48) X(64) X(80) X(96) X(112) X(128) X(160) X(192) X(224) X(256) X(320) X(384) X(448)       \
  X(512) X(640) X(768) X(896) X(1024) X(1280) X(1536) X(1792) X(2048) X(2560) X(3072) X(3584) X(4096)      \
  X(5120) X(6144) X(7168) X(8192) X(10240) X(12288) X(14336) X(16384) X(20480) X(24576) X(28672) X(32768)  \
  X(40960) X(49152) X(57344) X(65536) X(81920) X(98304) X(114688) X(131072) X(163840) X(196608)            \
  X(229376) X(262144)
/* clang-format on */
#define MP_CLASS_SIZE_ITEM(s) s,
static const uint32_t mp_class_size[MP_SMALL_CLASSES] = {MP_CLASS_SIZES(MP_CLASS_SIZE_ITEM)};
#undef MP_CLASS_SIZE_ITEM
_Static_assert(sizeof mp_class_size / sizeof mp_class_size[0] == MP_SMALL_CLASSES, "a size per class");

/* The held map level of a class (mp_types.h): s = the exponent of the
 * largest power of two dividing its size, 16 at most. Its objects, at
 * multiples of the size from 64 KiB-aligned spans, then start on multiples
 * of 2^s, and (the size being at least 2^s) one at most in each 2^s block. */
#define MP_HELD_SHIFT_OF(s) \
  ((unsigned)__builtin_ctz(s) < MP_HELD_SHIFT_MAX ? (unsigned)__builtin_ctz(s) : MP_HELD_SHIFT_MAX)
#define MP_HELD_SHIFT_ITEM(s) MP_HELD_SHIFT_OF(s),
static const uint8_t mp_class_held_shift[MP_SMALL_CLASSES] = {MP_CLASS_SIZES(MP_HELD_SHIFT_ITEM)};
#undef MP_HELD_SHIFT_ITEM
#define MP_HELD_MASK_ITEM(s) (uint16_t)((1u << MP_HELD_SHIFT_OF(s)) - 1),
static const uint16_t mp_class_held_mask[MP_SMALL_CLASSES] = {MP_CLASS_SIZES(MP_HELD_MASK_ITEM)};
#undef MP_HELD_MASK_ITEM
#define MP_HELD_FITS(s)                                                            \
  ((s) % (1u << MP_HELD_SHIFT_OF(s)) == 0 && (s) >= (1u << MP_HELD_SHIFT_OF(s)) && \
   MP_HELD_SHIFT_OF(s) >= MP_HELD_SHIFT_MIN) &&
_Static_assert(MP_CLASS_SIZES(MP_HELD_FITS) 1,
               "a class's objects start on multiples of its level's 2^s, one in a block");
#undef MP_HELD_FITS

/* 64 KiB units of a class's span: the fewest that hold at least four
 * objects with at most 1/8 of the span left over (generated; tests/test_api.c
 * checks the rule for every class). */
static const uint8_t mp_class_units[MP_SMALL_CLASSES] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  1,  1,  1, 1, 1,
                                                         1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  1,  1,  1, 1, 1,
                                                         2, 2, 2, 2, 4, 3, 4, 4, 5, 6, 7, 8, 10, 12, 14, 16};
_Static_assert(MP_SPAN_UNITS_MAX == 16, "the last class's span is the largest");

/* Class of each 16-byte step up to MP_HIT_MAX (generated: the smallest
 * class holding 16 * index bytes; tests/test_api.c checks every size). */
static const uint8_t mp_class_of_step[MP_HIT_MAX / 16 + 1] = {
    0,  0,  1,  2,  3,  4,  5,  6,  7,  8,  8,  9,  9,  10, 10, 11, 11, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14,
    15, 15, 15, 15, 16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17, 17, 18, 18, 18, 18, 18, 18, 18, 18, 19,
    19, 19, 19, 19, 19, 19, 19, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 21, 21, 21, 21, 21, 21,
    21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 23, 23, 23,
    23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24,
    24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25,
    25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26,
    26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 27, 27, 27, 27, 27, 27, 27,
    27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 28, 28, 28, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    28, 28, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29,
    29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29,
    29, 29, 29, 29, 29, 29, 29, 29, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30,
    30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30,
    30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31,
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31,
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31};

/* Class of a size in [0, MP_HIT_MAX]: one load (malloc's inlined hit). */
static inline unsigned mp_class_of_hit(size_t size) { return mp_class_of_step[(size + 15) >> 4]; }

/* Class of a size in [0, MP_SMALL_MAX]: above MP_HIT_MAX, four classes per
 * doubling from the size's leading bits. */
_Static_assert(MP_HIT_MAX == 1u << 13 && MP_HIT_CLASSES == 32, "the medium classes start at 2^13 + 2^11");
static inline unsigned mp_class_of(size_t size) {
  if (size <= MP_HIT_MAX) return mp_class_of_hit(size);
  size_t m = size - 1;
  unsigned e = 63u - (unsigned)__builtin_clzll((unsigned long long)m); /* 13 .. 17 */
  return MP_HIT_CLASSES + 4 * (e - 13) + (unsigned)((m >> (e - 2)) & 3);
}

/* Bytes of a class's span, and its objects. */
static inline uint32_t mp_class_span_bytes(unsigned cls) { return (uint32_t)mp_class_units[cls] << MP_SPAN_SHIFT; }
static inline uint32_t mp_class_nobj(unsigned cls) { return mp_class_span_bytes(cls) / mp_class_size[cls]; }

/* floor(n / size) for n below a span's bytes, by a multiplication (exact:
 * n * size < 2^40 for every class and span). */
_Static_assert((uint64_t)MP_SPAN_UNITS_MAX *MP_SPAN_SIZE *MP_SMALL_MAX < (1ull << 40), "the division is exact");
static inline uint32_t mp_class_div(uint32_t n, unsigned cls) {
#define R(s) (((1ull << 40) / (s)) + 1),
  static const uint64_t recip[MP_SMALL_CLASSES] = {MP_CLASS_SIZES(R)};
#undef R
  return (uint32_t)(((uint64_t)n * recip[cls]) >> 40);
}

/* Objects a thread may cache per class: more for the small ones; a medium
 * bin holds 16 objects or 2 MiB (a working set of 8 objects of a class then
 * stays in the cache: tcmalloc's thread cache holds as much). A thread's
 * medium bins hold 20 MiB at most, idle ones give 3/4 back (GC), and a
 * request the region cannot serve reclaims them first (tcache.h). */
static inline uint32_t mp_class_cache_cap(unsigned cls) {
  uint32_t s = mp_class_size[cls], medium = (2u << 20) / s;
  return s <= 256 ? MP_TCACHE_MAX : s <= 1024 ? 64 : s <= 4096 ? 32 : s <= 8192 ? 16 : medium < 16 ? medium : 16;
}

/* Objects a class's transfer stack holds (span.c): MP_XFER_MAX, or about
 * 1 MiB of the larger classes. */
static inline uint32_t mp_class_xfer_cap(unsigned cls) {
  uint32_t n = (1u << 20) / mp_class_size[cls];
  return n < 4 ? 4 : n < MP_XFER_MAX ? n : MP_XFER_MAX;
}

#endif
