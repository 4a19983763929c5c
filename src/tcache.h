/* tcache.h - per-thread caches of small objects: the malloc/free fast path
 * takes no lock. A cache belongs to one thread and one pool (the pool with
 * small objects enabled); it refills from and flushes to the spans in
 * batches (a refill's batch starts small and grows by half up to half the bin's
 * capacity: a short-lived thread takes little), and is flushed when its
 * thread exits. Every MP_TCACHE_GC_EVENTS refills and flushes, the owner
 * flushes the bins it did not use since the last time (GC).
 *
 * RECLAIM: a thread whose request the region cannot serve takes back the
 * objects other live threads' caches hold (mp_tcache_reclaim_all), without
 * a lock or an atomic read-modify-write on the owner's hit path. An
 * asymmetric Dekker handshake, with membarrier(2) as the owner's barrier:
 *   owner (hit)  busy++; compiler barrier; load cap (acquire), then n;
 *                test n against cap;
 *                change the bin; store busy - 1 (release)
 *   reclaimer    tc->lock; store cap = 0 in every bin; ONE membarrier
 *                (a full barrier on every CPU running a thread of ours);
 *                wait until busy == 0 (acquire); give every object back;
 *                n = 0; store the caps back (release); unlock
 * Either the reclaimer's load of busy sees the owner's increment (it waits
 * for the release store, after which it sees the bin as the owner left it),
 * or the owner's load of cap, ordered after its increment by the barrier
 * the membarrier ran on its CPU (or the context switch that took it off
 * one), sees 0: the hit misses (pop tests n - 1 < cap, push n < cap,
 * unsigned, so both miss at cap 0) without touching the bin, and the slow
 * path waits on tc->lock. cap is loaded before n and with acquire (free
 * on x86, ldar on ARM): an owner whose hit begins after the reclaimer saw
 * busy == 0 and that sees a restored cap sees n = 0 too. busy is a
 * counter, not a flag: a signal handler's nested call cannot clear an
 * outer call's mark. Every other change of the bins (refill, flush, GC,
 * thread exit, flush_current) is the owner's slow path and holds tc->lock
 * (so a malloc from a signal handler that interrupted its thread's slow
 * path waits forever, as on glibc's arena lock); abandon, in a fork child,
 * changes no bin.
 * Lock order: steal lock, tc->lock, class lock, pool lock; the cache list
 * lock is never taken under a tc->lock.
 * FAILURE SET of a reclaim: a cache whose busy stays set for
 * MP_RECLAIM_SPIN_NS (its thread stopped mid-hit: preempted for that long,
 * or stopped by a debugger or SIGSTOP) is skipped, its caps restored; with
 * no membarrier (ENOSYS/EINVAL/EPERM: old kernels, a seccomp filter; qemu
 * user emulation 7.2 and valgrind 3.19 pass it through)
 * MEMBARRIER_CMD_GLOBAL is used when it works, else no live thread's cache
 * is reclaimed (the caller's own is flushed still). Caches of threads that
 * were not the forking one are never reclaimed in a fork child (they may be
 * half-changed): their objects stay out, as before.
 * TIME BOUNDS: hit O(1); miss O(batch) under one class lock; reclaim
 * O(caches x classes + objects) plus one membarrier and at most
 * MP_RECLAIM_SPIN_NS per cache caught mid-hit.
 */
#ifndef MP_TCACHE_H
#define MP_TCACHE_H

#include "mp_types.h"
#include "sizeclass.h"
#include "span.h"

/* The calling thread's cache: its own once its first small request made
 * it, else mp_tcache_none, a cache that owns no memory and whose bins are all
 * empty and full at once (n = cap = 0). So the hit paths below have one test
 * each, and a thread without a cache (none yet, kept out of the pool by the
 * interposer, or past its thread exit) always misses. A thread's own cache
 * belongs to the one pool whose small objects are enabled (the
 * interposer's): the hit paths take no pool. */
extern mp_tcache mp_tcache_none;
extern __thread mp_tcache *mp_t_tcache __attribute__((tls_model("initial-exec")));

int mp_tcache_init(mp_pool *p); /* the thread-exit key, membarrier's registration; once per pool */
void *mp_tcache_alloc_slow(mp_pool *p, unsigned cls);
void mp_tcache_free_slow(mp_pool *p, void *obj, unsigned cls);
/* Flushes the calling thread's cache (exhaustion path, tests). */
void mp_tcache_flush_current(mp_pool *p);
/* A fork child whose only thread may have been inside its cache: the cache
 * is left as it is, never used again, and the thread's next request makes a
 * new one. */
void mp_tcache_abandon_current(mp_pool *p);
/* While out (the interposer's calls that jemalloc must serve), the calling
 * thread's hit paths see mp_tcache_none; its cache stays its own. */
void mp_tcache_keep_out(bool out);
/* The exhaustion path: the calling thread's cache is flushed and every
 * other live thread's cache emptied into the spans (RECLAIM above), unless
 * a reclaim that did not help ran less than MP_RECLAIM_QUIET_NS ago (a
 * region full of live data would otherwise pay one per spilled request).
 * True when the other caches were visited: the caller then says, after its
 * retry, whether that helped (mp_tcache_reclaim_done). *objects counts the
 * objects given back from other threads' caches, *skipped the caches
 * caught mid-hit for too long (either may be NULL). errno kept. */
bool mp_tcache_reclaim_all(mp_pool *p, uint32_t *objects, uint32_t *skipped);
void mp_tcache_reclaim_done(mp_pool *p, bool helped);
#define MP_RECLAIM_SPIN_NS  2000000ull /* 2 ms per cache caught mid-hit */
#define MP_RECLAIM_QUIET_NS 1000000ull /* 1 ms after a reclaim that did not help */
#define MP_TCACHE_GC_EVENTS 32u        /* refills and flushes between two GCs */
#define MP_TCACHE_FILL_MIN  2u         /* a bin's first refill */
_Static_assert(MP_TCACHE_MAX / 2 <= UINT8_MAX, "a bin's batch fits mp_tcache.fill");
/* Fork: every live cache's lock is re-made in the child, and the caches of
 * threads other than the caller stop being reclaimable (they may be half
 * changed). */
bool mp_tcache_fork_prepare(mp_pool *p, bool single); /* the steal lock (single: tried) */
void mp_tcache_fork_parent(mp_pool *p);
void mp_tcache_fork_child(mp_pool *p);
/* Sums the small-object counters of every cache (live and retired). */
void mp_tcache_totals(mp_pool *p, uint64_t *allocs, uint64_t *frees, uint64_t *bytes_in_use);

/* The owner's hit path begins: the reclaimer's handshake (above). Returns
 * the mark to leave with (a nested call, from a signal handler, leaves
 * what it found: 1; on x86-64 the mark is a count instead, one add and one
 * subtract). mp_tcache_none's mark is written by every thread without a
 * cache and read by no one. */
#if defined(__x86_64__)
/* One instruction each way: an add to memory is not split by a signal (a
 * nested call's add and subtract come between two instructions), and the
 * subtract's store is a release store (x86 keeps the order of stores). */
static inline uint32_t mp_tcache_enter(mp_tcache *tc) {
  __asm__ __volatile__("addl $1, %0" : "+m"(tc->busy)::"memory");
  return 0;
}
static inline void mp_tcache_leave(mp_tcache *tc, uint32_t busy) {
  (void)busy;
  __asm__ __volatile__("subl $1, %0" : "+m"(tc->busy)::"memory");
}
#else
static inline uint32_t mp_tcache_enter(mp_tcache *tc) {
  uint32_t busy = tc->busy;
  tc->busy = 1;
  __asm__ __volatile__("" ::: "memory");
  return busy;
}
/* ... and ends, after its last write to the bin. */
static inline void mp_tcache_leave(mp_tcache *tc, uint32_t busy) {
  __atomic_store_n(&tc->busy, busy, __ATOMIC_RELEASE);
}
#endif

/* The bin's address, kept in a register: without this, GCC derives every
 * slot's address from the cache's again (4 instructions more per hit). */
static inline mp_tcache_bin *mp_tcache_bin_of(mp_tcache *tc, size_t cls) {
  mp_tcache_bin *b = &tc->bins[cls];
  __asm__("" : "+r"(b));
  return b;
}

/* The hit: an object of class cls from the calling thread's cache, now
 * held by the user; NULL when the bin is empty (or the thread has no cache,
 * or a reclaimer has it). 23 instructions on x86-64 with the TLS load, one
 * an atomic or. */
static inline void *mp_tcache_pop_from(mp_tcache *tc, size_t cls) {
  mp_tcache_bin *b = mp_tcache_bin_of(tc, cls);
  uint32_t busy = mp_tcache_enter(tc);
  size_t cap = __atomic_load_n(&b->cap, __ATOMIC_ACQUIRE), n = b->n - 1;
  if (__builtin_expect(n >= cap, 0)) { /* n was 0, or cap is 0: no cache, or a reclaimer has it */
    mp_tcache_leave(tc, busy);
    return NULL;
  }
  void *obj = b->items[n];
  if (!obj) __builtin_unreachable(); /* a cached object is never NULL: the caller's test folds */
  b->n = n;
  mp_tcache_leave(tc, busy);
  if (__builtin_expect(!mp_held_set_at(b->held, b->held_shift, (uintptr_t)obj), 0)) mp_small_twice(obj, "malloc");
  tc->bins[cls].allocs++;
  return obj;
}
static inline void *mp_tcache_pop(size_t cls) { return mp_tcache_pop_from(mp_t_tcache, cls); }

/* The mirror: obj from the user into the calling thread's cache tc, its
 * bin b (mp_tcache_bin_of), its held byte cleared: MP_FREE_CACHED;
 * MP_FREE_MISS, obj untouched, when the bin is full (or the thread has no
 * cache, the bin is not set up yet, or a reclaimer has it: the slow path
 * checks the byte then); MP_FREE_NOT_HELD when obj is not a held object.
 * The byte is checked after the cap, so that a bin not set up (zero) is
 * never used. 19 instructions with the TLS load. */
enum { MP_FREE_CACHED, MP_FREE_MISS, MP_FREE_NOT_HELD };
static inline int mp_tcache_free_bin(mp_tcache *tc, mp_tcache_bin *b, void *obj) {
  uint32_t busy = mp_tcache_enter(tc);
  size_t cap = __atomic_load_n(&b->cap, __ATOMIC_ACQUIRE), n = b->n;
  if (__builtin_expect(n >= cap, 0)) { /* full, or cap is 0: no cache, not set up, or a reclaimer has it */
    mp_tcache_leave(tc, busy);
    return MP_FREE_MISS;
  }
  if (__builtin_expect(!mp_held_clear_at(b->held, b->held_shift, b->held_mask, (uintptr_t)obj), 0)) {
    mp_tcache_leave(tc, busy);
    return MP_FREE_NOT_HELD;
  }
  b->items[n] = obj;
  b->n = n + 1;
  mp_tcache_leave(tc, busy);
  b->frees++;
  return MP_FREE_CACHED;
}
/* obj, its held byte cleared already, into the calling thread's cache as
 * it is (tests: a free that raced past the check); false when the bin
 * misses. */
static inline bool mp_tcache_push(void *obj, size_t cls) {
  mp_tcache *tc = mp_t_tcache;
  mp_tcache_bin *b = mp_tcache_bin_of(tc, cls);
  size_t n = b->n;
  if (n >= b->cap) return false;
  b->items[n] = obj;
  b->n = n + 1;
  return true;
}

/* The same, refilling in a batch when the hit misses. */
static inline void *mp_tcache_alloc(mp_pool *p, unsigned cls) {
  void *obj = mp_tcache_pop(cls);
  return obj ? obj : mp_tcache_alloc_slow(p, cls);
}

#endif
