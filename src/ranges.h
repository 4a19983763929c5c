/* ranges.h - address-ordered ranges of 16-byte granules, free or in use.
 *
 * INVARIANTS (checked by mp_ranges_check, which the tests call):
 *   I1  ranges tile [0, granules): the first starts at 0, each ends where the
 *       next starts (a start bit), sizes sum to granules;
 *   I2  no two adjacent ranges are free of the same kind (free coalesces
 *       both ways); the kinds are listed (allocatable) and parked (free but
 *       never handed out: a fork child's inherited copy, see chunks.h);
 *   I3  every free range has exactly one node, found in the bucket of its
 *       start; a listed one is in the segregated list of its size class, a
 *       parked one in none; no other node is live; fl/sl bitmaps mark
 *       exactly the non-empty lists;
 *   I4  bucket chains hold exactly the free ranges' nodes, each in the
 *       bucket of its start (a range is in use iff its start has no node);
 *   I5  the start bitmap's summary levels match level 0;
 *   I6  the counters (listed and parked free granules and ranges, in-use
 *       ranges) match;
 *   I7  the node arena holds a node for every free range that any sequence
 *       of frees can make ((free + in use + 1 + borders) / 2, see ranges.c):
 *       a free never needs memory. Operations that add ranges (alloc,
 *       carve, a shrinking resize, mp_ranges_reserve) grow the arena first
 *       and fail cleanly when that is refused.
 *
 * TIME BOUNDS (independent of how many ranges exist):
 *   alloc      O(1): two bitmap scans (TLSF good-fit), O(levels) bitmap update;
 *              amortized O(1) growth of the node arena (mremap, doubling)
 *   free       O(levels) to find the size and the previous range, plus a walk
 *              of at most 64 nodes in one bucket for itself and each neighbour
 *   size/grow  O(levels)
 *   carve      O(levels)
 *   split      O(levels)
 *   park_all   O(free ranges)
 * where levels <= 5 (64 GiB region). No metadata lives in the region.
 */
#ifndef MP_RANGES_H
#define MP_RANGES_H

#include "mp_types.h"

/* Sets up ranges for a region of `granules` granules, all free; metadata in
 * two private mappings (bitmaps and buckets; the node arena, which grows).
 * Returns 0 or -1 (errno from mmap). */
int mp_ranges_init(mp_ranges *r, uint32_t granules);
/* The same with every granule in use, as in-use ranges of `piece` granules
 * (the last may be shorter); piece >= granules: one in-use range. borders:
 * how many places a listed and a parked free range may touch (chunk borders
 * in a fork child: chunks.h), for I7. */
int mp_ranges_init_pieces(mp_ranges *r, uint32_t granules, uint32_t piece, uint32_t borders);
void mp_ranges_destroy(mp_ranges *r);

/* Allocates n >= 1 granules whose start g satisfies (phase + g) % align == 0
 * (align a power of two, in granules). Returns g or MP_NONE. */
uint32_t mp_ranges_alloc(mp_ranges *r, uint32_t n, uint32_t align, uint32_t phase);

enum mp_ranges_status {
  MP_RANGES_OK = 0,
  MP_RANGES_NOT_A_START = -1, /* interior or never-allocated address */
  MP_RANGES_NOT_IN_USE = -2,  /* double free */
};
/* Frees the in-use range starting at g; coalesces with free neighbours. */
int mp_ranges_free(mp_ranges *r, uint32_t g);
/* The same, as a parked range when parked (coalescing only with parked
 * neighbours); *merged (may be NULL) gets the free range it became part of. */
int mp_ranges_free_as(mp_ranges *r, uint32_t g, bool parked, mp_extent *merged);
/* [g, g+n) lying inside one free range (listed or parked) becomes an in-use
 * range; what is left of the free range stays free, of its kind. False (and
 * nothing changes) when [g, g+n) is not inside one free range. */
bool mp_ranges_carve(mp_ranges *r, uint32_t g, uint32_t n);
/* Splits the in-use range holding g so that one starts at g. True when a
 * range was made (false: g is a start already, or in a free range). O(levels). */
bool mp_ranges_split(mp_ranges *r, uint32_t g);
/* Makes room (I7) for up to more_free free and more_inuse in-use ranges
 * more, made by carve/split/free: false when the arena cannot grow. */
bool mp_ranges_reserve(mp_ranges *r, uint32_t more_free, uint32_t more_inuse);
/* Every listed free range becomes parked: nothing is allocatable. */
void mp_ranges_park_all(mp_ranges *r);
/* Status of g as a block start (MP_RANGES_OK if an in-use range starts there). */
int mp_ranges_classify(const mp_ranges *r, uint32_t g);

enum mp_range_kind { MP_RANGE_IN_USE, MP_RANGE_LISTED, MP_RANGE_PARKED };
/* The range holding granule g (< granules): its kind, and its extent in *range. O(levels). */
enum mp_range_kind mp_ranges_kind_at(const mp_ranges *r, uint32_t g, mp_extent *range);

/* Size in granules of the range starting at g (in use or free). */
uint32_t mp_ranges_size(const mp_ranges *r, uint32_t g);
/* Resizes the in-use range at g to n granules in place: shrinks always,
 * grows into a listed free successor when it is large enough. Returns true
 * on success. */
bool mp_ranges_resize(mp_ranges *r, uint32_t g, uint32_t n);

/* Largest free range, in granules (O(1) via the class bitmaps: the largest
 * non-empty class is scanned, at most its list length; used for statistics). */
uint32_t mp_ranges_largest_free(const mp_ranges *r);
/* Calls fn for every range in address order (O(ranges): statistics, fork, tests). */
void mp_ranges_walk(const mp_ranges *r, mp_range_fn fn, void *ctx);
/* The same for the ranges overlapping [g0, g1), each clipped to it. */
void mp_ranges_walk_in(const mp_ranges *r, uint32_t g0, uint32_t g1, mp_range_fn fn, void *ctx);
/* fn(ctx, byte offset, byte length) for every in-use range overlapping
 * [g0, g1), clipped to it, and for the free ones too when with_free. */
void mp_ranges_walk_bytes(const mp_ranges *r, uint32_t g0, uint32_t g1, bool with_free, mp_bytes_fn fn, void *ctx);
/* Bytes of metadata touched so far (bitmaps + live node arena). */
size_t mp_ranges_meta_bytes(const mp_ranges *r);

/* Verifies I1..I6 (O(ranges + nodes)); 0 when all hold, else the number of
 * the first violated invariant, with a description in why (may be NULL). */
int mp_ranges_check(const mp_ranges *r, char *why, size_t whylen);

#endif
