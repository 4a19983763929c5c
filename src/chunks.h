/* chunks.h - the window as chunks that processes claim, use and give back.
 *
 * The window is cut into chunks (a power of two, 64 KiB .. 1 GiB). A process
 * claims a chunk on the slow path, when its ranges cannot serve a request, by
 * a non-blocking OFD write lock on the chunk's bytes of the device (the
 * region layer), and allocates only from chunks it holds. A run of
 * contiguous chunks serves a block larger than one. The kernel drops the
 * locks of a process that dies, so a crash leaves its chunks claimable.
 * There is no shared metadata and no daemon: the lock table is the state.
 *
 * In the ranges, chunks that are not held lie in in-use ranges of their own
 * (never handed out, never coalesced; at start one range covers the window);
 * claiming splits the chunk out at its ends and frees it into the ranges,
 * releasing carves it back. A held chunk that one free range covers is "whole free"; such
 * chunks go back to the device once more than max(1 + held/8, the run of
 * the latest claim) of them exist (hysteresis: a program that frees and
 * reallocates, even a large block, does not claim and release every time).
 *
 * fork: the child holds no chunk. Its inherited blocks are private memory
 * chunk by chunk (only chunks with blocks in use, only the bytes in use:
 * the parent's snapshot, made in prepare and moved in place by the child,
 * else a copy the child reads from the device); their free space is parked (never allocated from); an
 * inherited chunk whose last block is freed becomes not held, claimable by
 * the child like any other. The child allocates from chunks it claims through
 * its own open of the device.
 *
 * INVARIANTS (pool lock held; checked by mp_chunks_check):
 *   C1  a chunk not held lies in an in-use range that covers chunks not
 *       held only (counted by away_ranges);
 *   C2  listed free ranges lie in held chunks only, parked ones in
 *       inherited chunks only; a block lies in chunks of one state;
 *   C3  whole_free has a bit exactly for the held chunks one listed free
 *       range covers, and whole_free_count counts them;
 *   C4  live[k] of an inherited chunk is its granules in in-use ranges.
 * TIME BOUNDS: alloc and free O(1) plus, on the slow path, O(chunks + locks
 * held by others) system calls at most for a claim (a conflicting lock is
 * skipped whole, found with F_OFD_GETLK); release O(1) system calls (the
 * kernel's own cost grows with the locks on the file: README). After a
 * search finds no room for a run of m chunks, runs of m or more are not
 * searched for 10 ms or until this process frees a chunk (a spilling
 * program pays a clock read, not a scan); after any other claim failure,
 * no run is searched for 10 ms. A free releases whole free chunks past the
 * hysteresis in O(count/64) bitmap words at most.
 */
#ifndef MP_CHUNKS_H
#define MP_CHUNKS_H

#include "mp_types.h"

/* The chunk size for a window of `bytes`: window/128 as a power of two,
 * between 64 KiB and 2 MiB. */
uint64_t mp_chunk_size_for(uint64_t bytes);

/* Sets up the chunk table and the ranges (all free when fixed: anon and
 * exclusive windows, held whole from the start). 0 or -errno. */
int mp_chunks_init(mp_pool *p, uint64_t chunk_bytes, bool fixed);
void mp_chunks_destroy(mp_pool *p);

/* THE POOL LOCK (mp_pool.lock) is this layer's: it guards the ranges, the
 * chunks and the region statistics (mp_stats but pool_failed), which change
 * here only (count in chunks.c). The pool's range-block paths hold it
 * across a check and a change (pool.c); the spans above take it through
 * mp_chunks_span_get/put only. */

/* Pool lock held. n granules aligned to align granules from held chunks,
 * claiming chunks when may_claim and the held ones cannot serve; counted as
 * the user's block when block (else a span's). The start granule, or
 * MP_NONE. */
uint32_t mp_chunks_alloc(mp_pool *p, uint32_t n, uint32_t align, bool may_claim, bool block);
/* Pool lock held. Frees the in-use range at g (checked by the caller):
 * into the free ranges of a held chunk (releasing whole free chunks past the
 * hysteresis), or parked in an inherited one. */
void mp_chunks_free(mp_pool *p, uint32_t g, bool block);
/* Pool lock held. Grows or shrinks the user's in-use range at g (old
 * granules) to n in place; false when it cannot (inherited blocks never
 * grow). */
bool mp_chunks_resize(mp_pool *p, uint32_t g, uint32_t old, uint32_t n);
/* For spans, taking the pool lock: a range of units 64 KiB units aligned
 * to one (MP_NONE when none can be had: the region is full, or a fork
 * child's pool serves nothing), and its return. */
uint32_t mp_chunks_span_get(mp_pool *p, uint32_t units);
void mp_chunks_span_put(mp_pool *p, uint32_t g);
/* Is granule g in a chunk a fork child inherited (frees only, no new objects)? */
static inline bool mp_chunk_inherited(const mp_pool *p, uint32_t g);

static inline unsigned mp_chunk_state_at(const mp_pool *p, uint32_t g) {
  return p->chunks.state[g >> (p->chunks.shift - MP_GRANULE_SHIFT)];
}
static inline bool mp_chunk_inherited(const mp_pool *p, uint32_t g) {
  return mp_chunk_state_at(p, g) == MP_CHUNK_INHERITED;
}

/* What a copy of granules [g0, g1) must carry: emit(state, off, len) for
 * each extent holding data, ascending (the pool's walk knows small spans). */
typedef void (*mp_walk_live_fn)(mp_pool *p, uint32_t g0, uint32_t g1, mp_bytes_fn emit, void *state);

/* fork's prepare, pool lock held, nothing interrupted: a snapshot of every
 * held chunk's blocks in use (what live names) in private anonymous memory
 * of its own (chunk-sized, at another address), which fork shares with the
 * child copy-on-write and the child moves in place: the child copies
 * nothing, and the parent writes only the pages that changed since its
 * previous snapshot (kept for the next fork while it carries at most
 * MP_SNAPSHOT_KEEP bytes; mp_chunks_fork_drop after fork otherwise). 0, or
 * -ENOMEM (no snapshot: the child copies from the device). */
#define MP_SNAPSHOT_KEEP (1u << 20)
/* (Not under mlockall(MCL_FUTURE), which would lock each chunk-sized
 * snapshot whole: the first one made says so, and snapshots stop.) */
int mp_chunks_fork_snapshot(mp_pool *p, mp_walk_live_fn live);
void mp_chunks_fork_drop(mp_pool *p);
/* In a fork child, single-threaded, after the region's own descriptor:
 * gives up every held chunk (private copies of those in use: the parent's
 * snapshot when snap, else what live names read from the device while the
 * parent waits). 0, or -errno when a copy could not be mapped (the chunk
 * stays the parent's, read-only). */
int mp_chunks_fork_child(mp_pool *p, mp_walk_live_fn live, bool snap);
/* malloc_trim: every wholly free chunk goes back now, whatever the
 * hysteresis (pool lock held). Returns how many. O(chunks). */
uint32_t mp_chunks_release_free(mp_pool *p);
/* The same when a call was interrupted (a fork from a signal handler):
 * nothing is changed, every held chunk is copied, whole when the ranges may
 * be half-changed too, else its blocks in use. 0, or -errno. */
int mp_chunks_fork_child_copy(mp_pool *p, bool whole);

/* Verifies C1..C4 (O(chunks + ranges)). 0, or -1 with a reason in why. */
int mp_chunks_check(mp_pool *p, char *why, size_t whylen);

#endif
