/* span.h - small and medium objects: spans of one size class, 1 to 16 units
 * of 64 KiB, carved from the ranges, with their state out of band (see
 * mp_span in mp_types.h).
 *
 * INVARIANTS (checked by mp_small_check):
 *   S1  a span's objects are each in exactly one state: avail (free in the
 *       span), held (by the user), or neither (in a thread cache or its
 *       class's transfer stack, at most MP_XFER_MAX); held bytes are set only
 *       at objects' starts, in their class's level, and none for a unit of
 *       no span;
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
 * the held map: a byte per 2^s bytes of a class of level s (1/16 of a span
 * of 16-, 48-, 80- or 112-byte objects, 1/32 for 32, 96, 160 or 224, 1/64
 * for 64, 192, 320 or 448, 1/128 for 128, 384, 640 or 896, and so on: at
 * most a byte per object), committed 64 KiB at a time (per level) as spans
 * are made, the pages touched only; reserved (not committed) for the
 * whole region, about 1/8 of its size.
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

/* Why off is not a held object of class cls (the trap's words): not an
 * object's start, or an object not held (freed twice, never given out). */
int mp_span_not_held(const mp_pool *p, uintptr_t off, unsigned cls) __attribute__((cold, noinline));

/* The held map is addressed by the object's address a: byte a >> s of its
 * class's level s, from the level's address biased by the region's base
 * (mp_held_by_address; the base is a multiple of MP_HELD_BASE_ALIGN, so
 * that a >> s and the level's bytes line up). A byte is 1 while its object
 * is held, else 0. Bytes, not bits: the hit paths change them with plain
 * loads and stores (no lock, no fence: an atomic read-modify-write per
 * malloc and per free stalled a loop whose frees touch cold memory by ~45
 * ns, bench churn-4k-100k), and a byte store leaves its neighbours alone. */
_Static_assert(MP_HELD_BASE_ALIGN % ((uintptr_t)1 << MP_HELD_SHIFT_MAX) == 0, "every level's 2^s divides the base");
static inline uint8_t *mp_held_byte(uintptr_t held_by_address, unsigned shift, uintptr_t a) {
  return (uint8_t *)held_by_address + (a >> shift);
}
/* The held byte i of map (x86-64: tested and written as base and index,
 * 3 instructions fewer per call than GCC's address in a register). */
#if defined(__x86_64__)
static inline bool mp_held_byte_set(uint8_t *map, uintptr_t i) {
  bool set;
  __asm__ __volatile__("cmpb $0, (%1,%2)" : "=@ccne"(set) : "r"(map), "r"(i) : "memory");
  return set;
}
static inline void mp_held_byte_write(uint8_t *map, uintptr_t i, uint8_t v) {
  __asm__ __volatile__("movb %2, (%0,%1)" ::"r"(map), "r"(i), "iq"(v) : "memory");
}
#else
static inline bool mp_held_byte_set(uint8_t *map, uintptr_t i) { return __atomic_load_n(&map[i], __ATOMIC_RELAXED); }
static inline void mp_held_byte_write(uint8_t *map, uintptr_t i, uint8_t v) {
  __atomic_store_n(&map[i], v, __ATOMIC_RELAXED);
}
#endif

/* The object at address a passes to the user: false when it was held
 * already (the trap of mp_small_twice: two frees of it raced, below). */
static inline bool mp_held_set_at(uintptr_t held_by_address, unsigned shift, uintptr_t a) {
  uint8_t *map = (uint8_t *)held_by_address;
  uintptr_t i = a >> shift;
  if (__builtin_expect(mp_held_byte_set(map, i), 0)) return false;
  mp_held_byte_write(map, i, 1);
  return true;
}
/* The user gives the object at address a back (its class's level: biased
 * map, shift and mask): true, or false when it is not a held object
 * (mp_span_not_held says why). The mirror of mp_held_set_at: a load, a test
 * and a store (the byte of a block with no object's start is never set).
 * Two frees of one object by two threads are told apart when one's store
 * is visible to the other's load (ordered by anything: a lock, a join, a
 * queue, or a few nanoseconds); two that race closer than that both pass,
 * and the object, in two caches, traps at the malloc that would hand it out
 * a second time or when both copies go back to its span (mp_small_twice). */
static inline bool mp_held_clear_at(uintptr_t held_by_address, unsigned shift, uintptr_t mask, uintptr_t a) {
  if (a & mask) return false; /* no start: the base is a multiple of every 2^s */
  uint8_t *map = (uint8_t *)held_by_address;
  uintptr_t i = a >> shift;
  if (__builtin_expect(!mp_held_byte_set(map, i), 0)) return false;
  mp_held_byte_write(map, i, 0);
  return true;
}
/* The trap of an object found in two places: held and about to be handed
 * out again, or given back to a span that has it free. */
_Noreturn void mp_small_twice(const void *obj, const char *where) __attribute__((cold));

/* Class cls's level, biased (the value thread caches copy into their bins). */
static inline uintptr_t mp_held_by_address(const mp_pool *p, unsigned cls) { return p->small.held_by_address[cls]; }
static inline void mp_span_mark_alloc(mp_pool *p, uintptr_t off, unsigned cls) {
  uintptr_t a = p->region.base + off;
  if (!mp_held_set_at(mp_held_by_address(p, cls), mp_class_held_shift[cls], a)) mp_small_twice((void *)a, "malloc");
}
/* The held byte of the object of class cls at region offset off (a racy read). */
static inline bool mp_span_held_bit(const mp_pool *p, uintptr_t off, unsigned cls) {
  return __atomic_load_n(mp_held_byte(mp_held_by_address(p, cls), mp_class_held_shift[cls], p->region.base + off),
                         __ATOMIC_RELAXED);
}

/* Can off be an object of class cls's start at all? (Off a multiple of its
 * level's 2^s it never is; a held byte there would be the block's object's.) */
static inline bool mp_span_object_start(uintptr_t off, size_t cls) { return !(off & mp_class_held_mask[cls]); }

static inline bool mp_span_unhold(mp_pool *p, uintptr_t off, unsigned cls) {
  return mp_held_clear_at(mp_held_by_address(p, cls), mp_class_held_shift[cls], mp_class_held_mask[cls],
                          p->region.base + off);
}

/* Is the object at off held by the user (for usable_size/realloc checks)? */
static inline int mp_span_check_held(const mp_pool *p, uintptr_t off, unsigned cls) {
  if (__builtin_expect(mp_span_object_start(off, cls) && mp_span_held_bit(p, off, cls), 1)) return MP_SMALL_OK;
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
