/* sizeclass.h - the 52 size classes spans serve (16 B .. 256 KiB), four per
 * doubling above 128 B (at most 25% internal waste), their spans' sizes,
 * and O(1) lookups. */
#ifndef MP_SIZECLASS_H
#define MP_SIZECLASS_H

#include "mp_types.h"

static const uint32_t mp_class_size[MP_SMALL_CLASSES] = {
    16,    32,    48,    64,    80,    96,    112,   128,    160,    192,    224,    256,    320,
    384,   448,   512,   640,   768,   896,   1024,  1280,   1536,   1792,   2048,   2560,   3072,
    3584,  4096,  5120,  6144,  7168,  8192,  10240, 12288,  14336,  16384,  20480,  24576,  28672,
    32768, 40960, 49152, 57344, 65536, 81920, 98304, 114688, 131072, 163840, 196608, 229376, 262144};

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
  static const uint64_t recip[MP_SMALL_CLASSES] = {
#define R(s) (((1ull << 40) / (s)) + 1)
      R(16),    R(32),    R(48),     R(64),     R(80),     R(96),     R(112),    R(128),   R(160),   R(192),   R(224),
      R(256),   R(320),   R(384),    R(448),    R(512),    R(640),    R(768),    R(896),   R(1024),  R(1280),  R(1536),
      R(1792),  R(2048),  R(2560),   R(3072),   R(3584),   R(4096),   R(5120),   R(6144),  R(7168),  R(8192),  R(10240),
      R(12288), R(14336), R(16384),  R(20480),  R(24576),  R(28672),  R(32768),  R(40960), R(49152), R(57344), R(65536),
      R(81920), R(98304), R(114688), R(131072), R(163840), R(196608), R(229376), R(262144)};
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
