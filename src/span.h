/* span.h - small and medium objects: spans of one size class, 1 to 16 units
 * of 64 KiB, carved from the ranges, with their state out of band (see
 * mp_span in mp_types.h).
 *
 * INVARIANTS (checked by mp_small_check):
 *   S1  a span's objects are each in exactly one state: avail (free in the
 *       span), held (by the user), or neither (in a thread cache or its
 *       class's transfer stack, at most MP_XFER_MAX); held bits are set only
 *       at objects' first granules;
 *   S2  navail = popcount(avail); a span is on its class's partial list iff
 *       navail > 0; span_class[] is non-zero exactly for live spans; a
 *       class keeps at most one empty span (mp_class.empty; a fork child's
 *       inherited spans none), so that a class whose last objects come and
 *       go does not give its span back and take a new one each time;
 *   S3  a span is an in-use range of exactly mp_class_span_bytes(class)
 *       bytes; each of its units has its class byte and its first unit.
 * TIME BOUNDS: take/give O(objects moved + bitmap words); mark O(1).
 * METADATA: 32 bytes per span, a bit per object (512 bytes for a span of
 * 16-byte objects, 32 bytes for 256-byte objects), only for live spans, and
 * the held bitmap: a bit per granule, 512 bytes per span, committed 64 KiB
 * (128 spans) at a time as spans are made.
 * Lock order: class lock, then the pool lock (never the reverse).
 */
#ifndef MP_SPAN_H
#define MP_SPAN_H

#include "mp_types.h"
#include "sizeclass.h"

int mp_small_init(mp_pool *p);
void mp_small_destroy(mp_pool *p);

/* Moves up to want free objects of class cls into out; returns how many
 * (0 when no span could be had: the region is full). */
uint32_t mp_span_take(mp_pool *p, unsigned cls, void **out, uint32_t want);
/* Returns n objects of class cls: up to MP_XFER_MAX wait in the class's
 * transfer stack for the next mp_span_take, the others go to their spans;
 * an emptied span goes back to the ranges unless it is its class's last
 * one. */
void mp_span_give(mp_pool *p, unsigned cls, void *const *objs, uint32_t n);
/* Empties the transfer stacks into the spans and releases every empty span
 * still kept (exhaustion path, trim): O(classes x MP_XFER_MAX). */
void mp_small_release_empty(mp_pool *p);

/* span_class[] holds class + 1, with this flag for a span a fork child
 * inherited: its freed objects go straight back to it, never to a cache
 * (inherited memory is never handed out again). */
#define MP_SPAN_INHERITED 0x80u
_Static_assert(MP_SMALL_CLASSES < MP_SPAN_INHERITED, "class + 1 and the flag share a byte");

/* The span byte of region offset off: 0 (not in a span), or class + 1
 * (| MP_SPAN_INHERITED). */
static inline unsigned mp_small_class_at(const mp_pool *p, uintptr_t off) {
  return p->small.span_class ? p->small.span_class[off >> MP_SPAN_SHIFT] : 0;
}
/* The class of a non-zero span byte. */
static inline size_t mp_span_cls(size_t span_byte) { return (span_byte & ~(size_t)MP_SPAN_INHERITED) - 1; }

enum { MP_SMALL_OK = 0, MP_SMALL_INTERIOR = -1, MP_SMALL_NOT_HELD = -2 };

/* The held bit's mask in its word, for a region offset or an address (the
 * region's base is aligned to MP_HELD_SPAN: the same bit). */
#define MP_HELD_BIT(a) (1ull << (((a) >> MP_GRANULE_SHIFT) & 63))

/* Why off is not a held object of class cls (the trap's words): not an
 * object's start, or an object not held (freed twice, never given out). */
int mp_span_not_held(const mp_pool *p, uintptr_t off, unsigned cls) __attribute__((cold, noinline));

/* The held bitmap is addressed by the object's address, through the
 * bitmap's address biased by the region's base (mp_held_by_address; the
 * base is aligned to MP_HELD_SPAN, the region a held word covers).
 * mp_held_set_at: the object at address a passes to the user. */
#define MP_HELD_SPAN (MP_GRANULE * 64u)
_Static_assert(MP_HELD_SPAN <= 4096, "a region's base, page-aligned, is aligned to a held word's span");
static inline uint64_t *mp_held_word(uintptr_t held_by_address, uintptr_t a) {
  return (uint64_t *)(held_by_address + (a / MP_HELD_SPAN) * sizeof(uint64_t));
}
#if defined(__x86_64__)
/* bts and btr with a register offset address the bit string itself (the
 * quadword at base + 8 * (offset / 64), offset % 64 in it: the same word and
 * bit as below): 4 instructions fewer per pair than an index and a mask, and
 * 0.3 ns slower per pair here (bench of 2026-12-01). */
static inline void mp_held_set_at(uintptr_t held_by_address, uintptr_t a) {
  __asm__ __volatile__("lock btsq %1, (%0)" ::"r"(held_by_address), "r"(a / MP_GRANULE) : "memory", "cc");
}
static inline bool mp_held_bit_clear(uintptr_t held_by_address, uintptr_t a) {
  bool was;
  __asm__ __volatile__("lock btrq %2, (%1)" : "=@ccc"(was) : "r"(held_by_address), "r"(a / MP_GRANULE) : "memory");
  return was;
}
#else
static inline void mp_held_set_at(uintptr_t held_by_address, uintptr_t a) {
  __atomic_fetch_or(mp_held_word(held_by_address, a), MP_HELD_BIT(a), __ATOMIC_RELAXED);
}
static inline bool mp_held_bit_clear(uintptr_t held_by_address, uintptr_t a) {
  uint64_t bit = MP_HELD_BIT(a);
  return __atomic_fetch_and(mp_held_word(held_by_address, a), ~bit, __ATOMIC_RELAXED) & bit;
}
#endif
static inline uintptr_t mp_held_by_address(const mp_pool *p) {
  return (uintptr_t)p->small.held - p->region.base / MP_HELD_SPAN * sizeof(uint64_t);
}
static inline void mp_span_mark_alloc(mp_pool *p, uintptr_t off) {
  mp_held_set_at(mp_held_by_address(p), p->region.base + off);
}
/* The held bit of the object at region offset off (a racy read). */
static inline bool mp_span_held_bit(const mp_pool *p, uintptr_t off) {
  return __atomic_load_n(mp_held_word(mp_held_by_address(p), p->region.base + off), __ATOMIC_RELAXED) &
         MP_HELD_BIT(off);
}

/* Can off be an object's start at all? (Inside a granule it never is; a
 * held bit there would be the granule's object's.) */
static inline bool mp_span_granule_start(uintptr_t off) { return !(off & (MP_GRANULE - 1)); }

/* The user gives the object at off back: true, or false when it is not a
 * held object (mp_span_not_held says why). The mirror of
 * mp_span_mark_alloc: an atomic and, and a test (an interior granule's bit
 * is never set, so clearing it changes nothing). */
static inline bool mp_held_clear_at(uintptr_t held_by_address, uintptr_t a) {
  if (!mp_span_granule_start(a)) return false; /* the base is granule-aligned */
  return mp_held_bit_clear(held_by_address, a);
}
static inline bool mp_span_unhold(mp_pool *p, uintptr_t off) {
  return mp_held_clear_at(mp_held_by_address(p), p->region.base + off);
}

/* Is the object at off held by the user (for usable_size/realloc checks)? */
static inline int mp_span_check_held(const mp_pool *p, uintptr_t off, unsigned cls) {
  if (__builtin_expect(mp_span_granule_start(off) && mp_span_held_bit(p, off), 1)) return MP_SMALL_OK;
  return mp_span_not_held(p, off, cls);
}

/* The held objects of the span at region offset off, clipped to [off, off
 * + len) (a part of a span: a walk of one chunk sees the part of a span in
 * it), as byte extents in address order, adjacent objects as one: what a
 * fork child's copy of the span carries (its free and cached objects are
 * never handed out there). O(the span's held words + held objects). */
void mp_small_emit_held(const mp_pool *p, size_t off, size_t len, mp_bytes_fn emit, void *state);

/* Metadata bytes in use by spans and caches. */
size_t mp_small_meta_bytes(const mp_pool *p);

bool mp_small_fork_prepare(mp_pool *p, bool single); /* forkorder.h */
void mp_small_fork_parent(mp_pool *p);
void mp_small_fork_child(mp_pool *p);
/* In a fork child after the chunks: the spans of inherited chunks leave the
 * partial lists (empty ones go back), and with flush_current (fork came
 * from the thread, not from a signal handler that may have interrupted its
 * cache) the calling thread's cache is flushed. */
void mp_small_fork_purge(mp_pool *p, bool flush_current);

/* Verifies S1..S3 with every class locked; objects in thread caches are
 * counted as "neither". 0 when all hold. */
int mp_small_check(mp_pool *p, char *why, size_t whylen);

#endif
