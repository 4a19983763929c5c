/* chunks.c - claiming, releasing and inheriting chunks of the window (see chunks.h). */
#define _GNU_SOURCE
#include "chunks.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "forkorder.h"
#include "msg.h"
#include "ranges.h"
#include "region.h"

#define UL(x) ((unsigned long long)(x))

uint64_t mp_chunk_size_for(uint64_t bytes) {
  uint64_t c = MP_CHUNK_MIN;
  while (c < MP_CHUNK_DEFAULT_MAX && c * 2 * MP_CHUNKS_PER_WINDOW <= bytes) c *= 2;
  return c;
}

/* ---- geometry ---------------------------------------------------------- */

static inline uint32_t first_granule(const mp_chunks *c, uint32_t k) { return k * c->granules; }
static inline uint32_t chunk_of(const mp_chunks *c, uint32_t g) { return g / c->granules; }
static inline uint32_t granules_of(const mp_pool *p, uint32_t k) {
  uint32_t g = first_granule(&p->chunks, k);
  return p->ranges.granules - g < p->chunks.granules ? p->ranges.granules - g : p->chunks.granules;
}
static inline size_t offset_of(const mp_chunks *c, uint32_t k) { return (size_t)k << c->shift; }
/* Bytes mapped for chunks [k, k+m): the last chunk reaches the page-rounded end. */
static inline size_t bytes_of(const mp_pool *p, uint32_t k, uint32_t m) {
  return k + m >= p->chunks.count ? p->region.map_len - offset_of(&p->chunks, k) : (size_t)m << p->chunks.shift;
}

static inline bool bit_test(const uint64_t *b, uint32_t k) { return (b[k >> 6] >> (k & 63)) & 1; }
static inline void bit_set(uint64_t *b, uint32_t k) { b[k >> 6] |= 1ull << (k & 63); }
static inline void bit_clear(uint64_t *b, uint32_t k) { b[k >> 6] &= ~(1ull << (k & 63)); }

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- lifecycle ---------------------------------------------------------- */

int mp_chunks_init(mp_pool *p, uint64_t chunk_bytes, bool fixed) {
  mp_chunks *c = &p->chunks;
  memset(c, 0, sizeof *c);
  c->shift = (unsigned)__builtin_ctzll(chunk_bytes);
  c->granules = (uint32_t)(chunk_bytes >> MP_GRANULE_SHIFT);
  uint32_t granules = (uint32_t)(p->region.size >> MP_GRANULE_SHIFT);
  c->count = (granules + c->granules - 1) / c->granules;
  c->fixed = fixed;
  size_t words = (c->count + 63) / 64;
  size_t len = ((size_t)c->count * (1 + 4 + sizeof(uintptr_t)) + words * 8 + 4095) & ~(size_t)4095;
  char *m = mp_meta_map(len);
  if (!m) return -errno;
  c->meta_base = m;
  c->meta_len = len;
  c->whole_free = (uint64_t *)m;
  c->shadow = (uintptr_t *)(m + words * 8);
  c->live = (uint32_t *)(m + words * 8 + (size_t)c->count * sizeof(uintptr_t));
  c->state = (uint8_t *)(c->live + c->count);
  /* Not held: one in-use range, split at chunk ends as chunks are claimed
   * (a piece per chunk would touch a bitmap page per chunk at every start). */
  int rc = mp_ranges_init_pieces(&p->ranges, granules, fixed ? 0 : granules, fixed ? 0 : c->count);
  c->away_ranges = fixed ? 0 : 1;
  if (rc != 0) {
    rc = -errno;
    mp_meta_unmap(m, len);
    return rc;
  }
  c->full_run = UINT32_MAX;
  c->period_start = now_ns();
  if (fixed) {
    memset(c->state, MP_CHUNK_HELD, c->count);
    c->held = c->count;
    c->held_bytes = c->mapped_peak = p->region.map_len;
  }
  return 0;
}

void mp_chunks_destroy(mp_pool *p) {
  if (p->chunks.shadow) mp_chunks_fork_drop(p);
  mp_meta_unmap(p->chunks.meta_base, p->chunks.meta_len);
  memset(&p->chunks, 0, sizeof p->chunks);
}

/* ---- whole free chunks and release --------------------------------------- */

/* Chunks with blocks: what the process needs now. */
static inline uint32_t needed(const mp_chunks *c) { return c->held - c->whole_free_count; }

/* The held chunks overlapping [g, g+n) are no longer whole free. */
static void consumed(mp_pool *p, uint32_t g, uint32_t n) {
  mp_chunks *c = &p->chunks;
  for (uint32_t k = chunk_of(c, g), last = chunk_of(c, g + n - 1); k <= last; k++)
    if (bit_test(c->whole_free, k)) {
      bit_clear(c->whole_free, k);
      c->whole_free_count--;
      if (needed(c) > c->peak) c->peak = needed(c);
    }
}

static void release(mp_pool *p, uint32_t k) {
  mp_chunks *c = &p->chunks;
  size_t len = bytes_of(p, k, 1);
  if (!mp_ranges_carve(&p->ranges, first_granule(c, k), granules_of(p, k)))
    mp_fatal("internal error: chunk %llu to release is not one free range", UL(k));
  bit_clear(c->whole_free, k);
  c->whole_free_count--;
  c->away_ranges++;
  sigset_t old = mp_fork_atomic_begin(); /* held means mapped (forkorder.h) */
  mp_region_release(&p->region, offset_of(c, k), len);
  c->state[k] = MP_CHUNK_AWAY;
  mp_fork_atomic_end(&old);
  c->held--;
  c->held_bytes -= len;
  p->stats.chunk_releases++;
}

/* Whole free chunks kept: 1 + held/8, and what the process needed beyond
 * its present need at its peak of the last one to two decay periods, up to
 * 1/8 of the window (a program that frees and reallocates keeps its working
 * set; one that stays low gives the rest back at its first free a period
 * later; none sits on more than an eighth of a shared window). */
static void decay(mp_chunks *c) {
  uint64_t now = now_ns();
  if (now - c->period_start < MP_CHUNK_DECAY_NS) return;
  c->prev_peak = now - c->period_start >= 2 * MP_CHUNK_DECAY_NS ? needed(c) : c->peak;
  c->peak = needed(c);
  c->period_start = now;
}

static uint32_t retained(const mp_chunks *c) {
  uint32_t recent = c->peak > c->prev_peak ? c->peak : c->prev_peak;
  uint32_t r = 1 + c->held / 8, above = recent > needed(c) ? recent - needed(c) : 0;
  if (above > c->count / 8) above = c->count / 8; /* never idle on more than 1/8 of the window */
  return r > above ? r : above;
}

static void trim(mp_pool *p, uint32_t lo, uint32_t hi);

/* The bits of word w for chunks lo..hi. */
static inline uint64_t bits_between(uint32_t w, uint32_t lo, uint32_t hi) {
  uint32_t a = lo > w * 64 ? lo - w * 64 : 0, b = hi < w * 64 + 63 ? hi - w * 64 : 63;
  if (hi < w * 64 || lo > w * 64 + 63) return 0;
  return (~0ull >> (63 - b)) & (~0ull << a);
}

/* The held chunks inside free extent e that overlap [g, g+n) became whole
 * free; past the hysteresis the highest of them go back. */
static void freed(mp_pool *p, mp_extent e, uint32_t g, uint32_t n) {
  mp_chunks *c = &p->chunks;
  uint32_t lo = chunk_of(c, g), hi = chunk_of(c, g + n - 1);
  for (uint32_t k = lo; k <= hi; k++) {
    uint32_t s = first_granule(c, k);
    if (s >= e.start && s + granules_of(p, k) <= e.start + e.size && !bit_test(c->whole_free, k)) {
      bit_set(c->whole_free, k);
      c->whole_free_count++;
      c->full_run = UINT32_MAX; /* room of our own again: search at once */
    }
  }
  trim(p, lo, hi);
}

/* Past the hysteresis, whole free chunks go back: those outside [lo, hi]
 * first (the chunks of the block just freed or placed are what the program
 * uses next), lowest first within a bitmap word. */
static void trim(mp_pool *p, uint32_t lo, uint32_t hi) {
  mp_chunks *c = &p->chunks;
  decay(c);
  for (uint32_t w = (c->count + 63) / 64; w-- > 0 && c->whole_free_count > retained(c);) {
    uint64_t bits = c->whole_free[w] & ~bits_between(w, lo, hi);
    for (; bits && c->whole_free_count > retained(c); bits &= bits - 1)
      release(p, w * 64 + (uint32_t)__builtin_ctzll(bits));
  }
  for (uint32_t k = hi + 1; k-- > lo && c->whole_free_count > retained(c);)
    if (bit_test(c->whole_free, k)) release(p, k);
}

uint32_t mp_chunks_release_free(mp_pool *p) {
  mp_chunks *c = &p->chunks;
  uint32_t n = 0;
  for (uint32_t w = 0; w < (c->count + 63) / 64; w++)
    for (uint64_t bits = c->whole_free[w]; bits; bits &= bits - 1, n++)
      release(p, w * 64 + (uint32_t)__builtin_ctzll(bits));
  c->peak = c->prev_peak = needed(c); /* what was given back is not a recent need */
  return n;
}

/* ---- claiming ----------------------------------------------------------- */

/* Chunks [k, k+m) were locked and mapped: they join the free ranges. */
static void took(mp_pool *p, uint32_t k, uint32_t m) {
  mp_chunks *c = &p->chunks;
  size_t len = bytes_of(p, k, m);
  if (p->policy.check) memset((void *)(p->region.base + offset_of(c, k)), MP_GUARD_FREED_BYTE, len);
  for (uint32_t j = k; j < k + m; j++) {
    c->away_ranges += mp_ranges_split(&p->ranges, first_granule(c, j));
    c->away_ranges += mp_ranges_split(&p->ranges, first_granule(c, j + 1));
    mp_ranges_free(&p->ranges, first_granule(c, j));
    c->away_ranges--;
    c->state[j] = MP_CHUNK_HELD;
    bit_set(c->whole_free, j);
  }
  c->whole_free_count += m;
  c->held += m;
  c->held_bytes += len;
  if (c->held_bytes + c->inherited_bytes > c->mapped_peak) c->mapped_peak = c->held_bytes + c->inherited_bytes;
  p->stats.chunk_claims += m;
}

/* Chunks needed for n granules at align (the window is chunk-aligned). */
static uint64_t chunks_needed(const mp_chunks *c, uint32_t n, uint32_t align) {
  uint64_t g = (uint64_t)n + (align > c->granules ? align - c->granules : 0);
  return (g + c->granules - 1) / c->granules;
}

/* Can chunk k be part of a run for a new block? */
static inline bool runnable(const mp_chunks *c, uint32_t k) {
  return c->state[k] == MP_CHUNK_AWAY || (c->state[k] == MP_CHUNK_HELD && bit_test(c->whole_free, k));
}

/* End of the away chunks from k (below lim). */
static inline uint32_t away_end(const mp_chunks *c, uint32_t k, uint32_t lim) {
  while (k < lim && c->state[k] == MP_CHUNK_AWAY) k++;
  return k;
}

/* Locks and maps the away chunks of run [k, k+m), each through its own open
 * (so that each can be released alone); held whole free ones are part of the
 * run already. On a conflict, what this call claimed is let go and
 * *busy_end says where the other's lock ends. 0 or -errno. */
static int lock_run(mp_pool *p, uint32_t k, uint32_t m, size_t *busy_end) {
  mp_chunks *c = &p->chunks;
  uint32_t a = k;
  int rc = 0;
  for (; a < k + m && rc == 0; a++)
    if (c->state[a] == MP_CHUNK_AWAY) rc = mp_region_claim(&p->region, offset_of(c, a), bytes_of(p, a, 1), busy_end);
  if (rc == 0) return 0;
  for (uint32_t x = k; x + 1 < a; x++) /* states are unchanged: the away ones before a-1 are this call's */
    if (c->state[x] == MP_CHUNK_AWAY) mp_region_release(&p->region, offset_of(c, x), bytes_of(p, x, 1));
  return rc;
}

/* After a search found no run of m chunks because others hold them, runs of
 * m or more are not searched again for MP_CLAIM_BACKOFF_NS (or until this
 * process frees chunks): a program spilling on a full window pays a clock
 * read per request, not a scan of the lock table. */
#define MP_CLAIM_BACKOFF_NS 10000000ull

static bool backoff_over(mp_chunks *c) {
  if (now_ns() < c->full_until) return false;
  c->full_run = UINT32_MAX;
  return true;
}

static void note_full(mp_chunks *c, uint32_t m) {
  c->full_run = m;
  c->full_until = now_ns() + MP_CLAIM_BACKOFF_NS;
}

/* Claims a run of m chunks (away ones, or held ones a free range covers):
 * next-fit from the last claim, skipping whole the locks other processes
 * hold. */
static bool claim(mp_pool *p, uint32_t m, uint32_t *run) {
  mp_chunks *c = &p->chunks;
  uint32_t k = c->search_from, tried = 0;
  bool others = false;                                        /* did another process's lock stand in the way? */
  if (m >= c->full_run && !backoff_over(c)) return false;     /* the window was full a moment ago */
  if (!mp_ranges_reserve(&p->ranges, m, 2 * m)) return false; /* took() splits and frees */
  while (tried < c->count) {
    if (k + m > c->count) { /* wrap */
      tried += c->count - k;
      k = 0;
      continue;
    }
    uint32_t j = k;
    while (j < k + m && runnable(c, j)) j++;
    if (j < k + m) { /* a chunk of ours with blocks in the way */
      tried += j + 1 - k;
      k = j + 1;
      continue;
    }
    size_t busy_end = 0;
    sigset_t old = mp_fork_atomic_begin(); /* mapped means held (forkorder.h) */
    int rc = lock_run(p, k, m, &busy_end);
    if (rc == 0)
      for (uint32_t a = k, b; a < k + m; a = b) {
        b = c->state[a] == MP_CHUNK_AWAY ? away_end(c, a, k + m) : a + 1;
        if (c->state[a] == MP_CHUNK_AWAY) took(p, a, b - a);
      }
    mp_fork_atomic_end(&old);
    if (rc == 0) {
      c->search_from = k + m < c->count ? k + m : 0;
      *run = k;
      return true;
    }
    if (rc != -EBUSY) { /* the device is gone, the file system full, no mappings left: wait */
      mp_log(MP_LOG_INFO, "cannot claim %llu bytes of %.160s at %#llx: %s", UL(bytes_of(p, k, m)), p->region.device,
             UL(p->region.dev_offset + offset_of(c, k)), mp_strerror(-rc));
      note_full(c, 1);
      return false;
    }
    others = true;
    uint32_t next = (uint32_t)((busy_end + ((size_t)1 << c->shift) - 1) >> c->shift);
    if (next <= k) next = k + 1;
    tried += next - k;
    k = next;
  }
  note_full(c, m);           /* until the backoff ends, or this process frees a chunk */
  if (!others) return false; /* our own blocks fill the window */
  p->stats.no_chunk++;
  if (!c->said_full) {
    c->said_full = true;
    mp_log(MP_LOG_INFO, "no free chunk of %llu bytes in %s (other processes hold the window): spilling",
           UL(m) << c->shift, p->region.device);
  }
  return false;
}

/* ---- allocation and free ------------------------------------------------ */

/* The block goes first-fit into the free range that holds the claimed run
 * [k, k+m) (the run joined any free tail before it), which has room for it
 * by construction: a good-fit search could need a larger class. The run's
 * chunks the block leaves whole free go back past the hysteresis. MP_NONE
 * when the run (a partial last chunk) is short. */
static uint32_t place_in_run(mp_pool *p, uint32_t k, uint32_t m, uint32_t n, uint32_t align) {
  mp_chunks *c = &p->chunks;
  mp_extent e;
  if (mp_ranges_kind_at(&p->ranges, first_granule(c, k), &e) != MP_RANGE_LISTED) return MP_NONE;
  uint64_t phase = p->region.base >> MP_GRANULE_SHIFT;
  uint64_t at = ((e.start + phase + align - 1) & ~(uint64_t)(align - 1)) - phase;
  if (at + n > (uint64_t)e.start + e.size || !mp_ranges_carve(&p->ranges, (uint32_t)at, n)) return MP_NONE;
  consumed(p, (uint32_t)at, n);
  trim(p, k, k + m - 1);
  return (uint32_t)at;
}

/* The region statistics change here only: the bytes of in-use ranges
 * (spans included) and their peak, and for the user's blocks (block) their
 * bytes and counts (count: an allocation or a free, not a resize). */
static void count(mp_pool *p, int64_t bytes, bool block, bool counted) {
  mp_stats *s = &p->stats;
  s->region_used += (uint64_t)bytes;
  if (bytes > 0 && s->region_used > s->region_peak) s->region_peak = s->region_used;
  if (!block) return;
  s->pool_bytes += (uint64_t)bytes;
  if (counted && bytes > 0) s->pool_allocs++;
  if (counted && bytes < 0) s->pool_frees++;
}

uint32_t mp_chunks_alloc(mp_pool *p, uint32_t n, uint32_t align, bool may_claim, bool block) {
  mp_chunks *c = &p->chunks;
  uint32_t phase = (uint32_t)(p->region.base >> MP_GRANULE_SHIFT);
  uint32_t g = mp_ranges_alloc(&p->ranges, n, align, phase), k;
  if (g != MP_NONE) {
    consumed(p, g, n);
  } else if (may_claim && !c->fixed) {
    uint64_t m = chunks_needed(c, n, align);
    if (m <= c->count && claim(p, (uint32_t)m, &k)) g = place_in_run(p, k, (uint32_t)m, n, align);
  }
  if (g != MP_NONE) count(p, (int64_t)n << MP_GRANULE_SHIFT, block, true);
  return g;
}

/* An inherited block is freed: parked; a chunk left without blocks is let go. */
static void free_inherited(mp_pool *p, uint32_t g, uint32_t n) {
  mp_chunks *c = &p->chunks;
  mp_ranges_free_as(&p->ranges, g, true, NULL);
  for (uint32_t k = chunk_of(c, g), last = chunk_of(c, g + n - 1); k <= last; k++) {
    uint32_t s = first_granule(c, k), e = s + granules_of(p, k);
    uint32_t lo = g > s ? g : s, hi = g + n < e ? g + n : e;
    c->live[k] -= hi - lo;
    if (c->live[k]) continue;
    if (!mp_ranges_carve(&p->ranges, s, e - s))
      mp_fatal("internal error: emptied inherited chunk %llu is not one free range", UL(k));
    c->away_ranges++;
    size_t len = bytes_of(p, k, 1);
    mp_region_release(&p->region, offset_of(c, k), len);
    c->state[k] = MP_CHUNK_AWAY;
    c->inherited--;
    c->inherited_bytes -= len;
  }
}

void mp_chunks_free(mp_pool *p, uint32_t g, bool block) {
  uint32_t n = mp_ranges_size(&p->ranges, g);
  count(p, -((int64_t)n << MP_GRANULE_SHIFT), block, true);
  if (mp_chunk_state_at(p, g) == MP_CHUNK_INHERITED) {
    free_inherited(p, g, n);
    return;
  }
  mp_extent e;
  mp_ranges_free_as(&p->ranges, g, false, &e);
  if (!p->chunks.fixed) freed(p, e, g, n);
}

bool mp_chunks_resize(mp_pool *p, uint32_t g, uint32_t old, uint32_t n) {
  if (mp_chunk_state_at(p, g) == MP_CHUNK_INHERITED) return n <= old; /* kept whole until freed */
  if (!mp_ranges_resize(&p->ranges, g, n)) return false;
  count(p, ((int64_t)mp_ranges_size(&p->ranges, g) - (int64_t)old) * MP_GRANULE, true, false);
  if (n > old)
    consumed(p, g + old, n - old);
  else if (n < old && !p->chunks.fixed) {
    /* The cut tail was freed (and may have merged with a free successor). */
    uint32_t s = g + n, end = s + mp_ranges_size(&p->ranges, s);
    freed(p, (mp_extent){s, end - s}, s, old - n);
  }
  return true;
}

/* For the spans above: their ranges, under the pool lock. */
uint32_t mp_chunks_span_get(mp_pool *p, uint32_t units) {
  uint32_t a = MP_SPAN_SIZE >> MP_GRANULE_SHIFT;
  pthread_mutex_lock(&p->lock);
  uint32_t g = p->detached ? MP_NONE : mp_chunks_alloc(p, units * a, a, true, false);
  pthread_mutex_unlock(&p->lock);
  return g;
}

void mp_chunks_span_put(mp_pool *p, uint32_t g) {
  pthread_mutex_lock(&p->lock);
  mp_chunks_free(p, g, false);
  pthread_mutex_unlock(&p->lock);
}

/* ---- fork ---------------------------------------------------------------- */

struct chunk_copy {
  mp_pool *pool;
  uint32_t g0, g1;
  uint32_t live;        /* granules in use in [g0, g1) */
  mp_walk_live_fn walk; /* what the copy carries (mp_chunks_fork_child) */
};

static void count_live(void *vctx, uint32_t start, uint32_t size, bool in_use) {
  struct chunk_copy *cc = vctx;
  (void)start;
  if (in_use) cc->live += size;
}

/* A chunk's blocks in use: what its private copy carries (and the free
 * ranges too under MEMPOOL_CHECK: their freed-block pattern, which a
 * resumed allocation verifies). */
static void chunk_live(void *vctx, mp_bytes_fn emit, void *state) {
  struct chunk_copy *cc = vctx;
  mp_ranges_walk_bytes(&cc->pool->ranges, cc->g0, cc->g1, cc->pool->policy.check, emit, state);
}

static void chunk_walk(void *vctx, mp_bytes_fn emit, void *state) {
  struct chunk_copy *cc = vctx;
  cc->walk(cc->pool, cc->g0, cc->g1, emit, state);
}

static void whole_chunk(void *vctx, mp_bytes_fn emit, void *state) {
  struct chunk_copy *cc = vctx;
  emit(state, (size_t)cc->g0 << MP_GRANULE_SHIFT, (size_t)(cc->g1 - cc->g0) << MP_GRANULE_SHIFT);
}

/* ---- fork: the parent's snapshot -------------------------------------------- */

struct snap {
  uintptr_t src, dst; /* region offset x is at src + x, goes to dst + x */
  uint64_t bytes;     /* carried */
  bool fresh;         /* a new mapping: nothing to compare with */
};

/* A new snapshot is written whole, a run of several pages populated in one
 * call first (one fault a page costs more than the copy). An earlier one,
 * 4 KiB at a time, only where it changed: its pages stay as they are
 * (shared with no one once the last child exec'd or exited), so an
 * unchanged page costs a compare, not a write fault. */
static void snap_extent(void *v, size_t off, size_t len) {
  struct snap *s = v;
  s->bytes += len;
  if (s->fresh) {
    uintptr_t lo = (s->dst + off) & ~(uintptr_t)4095, hi = (s->dst + off + len + 4095) & ~(uintptr_t)4095;
    if (hi - lo > 2 * 4096) madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
    memcpy((void *)(s->dst + off), (void *)(s->src + off), len);
    return;
  }
  for (size_t end = off + len, next; off < end; off = next) {
    next = ((off >> 12) + 1) << 12;
    if (next > end) next = end;
    if (memcmp((void *)(s->dst + off), (void *)(s->src + off), next - off) != 0)
      memcpy((void *)(s->dst + off), (void *)(s->src + off), next - off);
  }
}

static void drop_shadow(mp_pool *p, uint32_t k) {
  mp_chunks *c = &p->chunks;
  if (!c->shadow[k]) return;
  mp_meta_unmap((void *)c->shadow[k], bytes_of(p, k, 1));
  c->shadow[k] = 0;
}

void mp_chunks_fork_drop(mp_pool *p) {
  for (uint32_t k = 0; k < p->chunks.count; k++) drop_shadow(p, k);
  p->chunks.shadow_bytes = 0;
}

/* A new chunk-sized snapshot mapping, or 0. Under mlockall(MCL_FUTURE)
 * the kernel has made it all resident (and locked): snapshots are then
 * given up for good, the child copies as before. */
static uintptr_t new_shadow(mp_pool *p, uint32_t k) {
  size_t len = bytes_of(p, k, 1);
  void *m = mp_meta_map(len);
  if (m && mp_meta_resident(m, len)) {
    mp_meta_unmap(m, len);
    p->chunks.no_snapshot = true;
    m = NULL;
  }
  return (uintptr_t)m;
}

int mp_chunks_fork_snapshot(mp_pool *p, mp_walk_live_fn live) {
  mp_chunks *c = &p->chunks;
  c->shadow_bytes = 0;
  if (c->no_snapshot) return -ENOMEM;
  for (uint32_t k = 0; k < c->count; k++) {
    struct chunk_copy cc = {p, first_granule(c, k), first_granule(c, k) + granules_of(p, k), 0, live};
    if (c->state[k] == MP_CHUNK_HELD) mp_ranges_walk_in(&p->ranges, cc.g0, cc.g1, count_live, &cc);
    if (cc.live == 0) {
      drop_shadow(p, k);
      continue;
    }
    bool fresh = !c->shadow[k];
    if (fresh && !(c->shadow[k] = new_shadow(p, k))) {
      mp_chunks_fork_drop(p);
      return -ENOMEM;
    }
    struct snap s = {p->region.base, c->shadow[k] - offset_of(c, k), 0, fresh};
    live(p, cc.g0, cc.g1, snap_extent, &s);
    c->shadow_bytes += s.bytes;
  }
  return 0;
}

int mp_chunks_fork_child_copy(mp_pool *p, bool whole) {
  mp_chunks *c = &p->chunks;
  int rc = 0;
  mp_chunks_fork_drop(p); /* an earlier fork's snapshot (only fork handlers touch it) */
  for (uint32_t k = 0; k < c->count; k++) {
    if (c->state[k] != MP_CHUNK_HELD) continue;
    struct chunk_copy cc = {p, first_granule(c, k), first_granule(c, k) + granules_of(p, k), 0, NULL};
    int e =
        mp_region_copy_private(&p->region, offset_of(c, k), bytes_of(p, k, 1), whole ? whole_chunk : chunk_live, &cc);
    if (e != 0) rc = e;
  }
  return rc;
}

/* Chunk k's private copy: the parent's snapshot moved in place (none: its
 * blocks came after the snapshot, in a prepare handler that ran after ours,
 * and the child has zeros there), else read from the device while the
 * parent waits. */
static int copy_chunk(mp_pool *p, uint32_t k, struct chunk_copy *cc, bool snap) {
  mp_chunks *c = &p->chunks;
  void *shadow = (void *)c->shadow[k];
  c->shadow[k] = 0;
  if (snap) return mp_region_adopt(&p->region, offset_of(c, k), bytes_of(p, k, 1), shadow, chunk_walk, cc);
  return mp_region_copy_private(&p->region, offset_of(c, k), bytes_of(p, k, 1), chunk_walk, cc);
}

int mp_chunks_fork_child(mp_pool *p, mp_walk_live_fn live, bool snap) {
  mp_chunks *c = &p->chunks;
  int rc = 0;
  uint32_t after = 0; /* past the last chunk the parent holds (and keeps holding) */
  mp_ranges_park_all(&p->ranges);
  mp_region_copies_begin(&p->region);
  memset(c->whole_free, 0, ((c->count + 63) / 64) * 8);
  c->whole_free_count = 0;
  for (uint32_t k = 0; k < c->count; k++) {
    if (c->state[k] != MP_CHUNK_HELD) continue; /* inherited ones are private already */
    after = k + 1 < c->count ? k + 1 : 0;
    struct chunk_copy cc = {p, first_granule(c, k), first_granule(c, k) + granules_of(p, k), 0, live};
    mp_ranges_walk_in(&p->ranges, cc.g0, cc.g1, count_live, &cc);
    size_t len = bytes_of(p, k, 1);
    c->held--;
    c->held_bytes -= len;
    if (cc.live == 0) {
      if (!mp_ranges_carve(&p->ranges, cc.g0, cc.g1 - cc.g0))
        mp_fatal("internal error: unused chunk %llu is not one free range at fork", UL(k));
      c->away_ranges++;
      mp_region_release(&p->region, offset_of(c, k), len);
      c->state[k] = MP_CHUNK_AWAY;
      continue;
    }
    int e = copy_chunk(p, k, &cc, snap);
    if (e != 0) {
      /* No memory for the copy: the parent's chunk stays mapped, read-only. */
      mprotect((void *)(p->region.base + offset_of(c, k)), len, PROT_READ);
      rc = e;
    }
    c->state[k] = MP_CHUNK_INHERITED;
    c->live[k] = cc.live;
    c->inherited++;
    c->inherited_bytes += len;
  }
  mp_region_copies_end(&p->region);
  mp_chunks_fork_drop(p); /* what is left of the parent's snapshot (a chunk emptied since) */
  c->search_from = after; /* the child's first claim does not try the parent's chunks first */
  c->said_full = false;
  c->full_run = UINT32_MAX;
  c->peak = c->prev_peak = 0;
  c->period_start = now_ns();
  return rc;
}

/* ---- checking ------------------------------------------------------------ */

struct chunk_check {
  mp_pool *pool;
  char *why;
  size_t whylen;
  int rc;
  uint32_t away_ranges;
};

/* C2 for one range: the chunks it overlaps are all in the state its kind needs. */
static void check_range(void *vctx, uint32_t start, uint32_t size, bool in_use) {
  struct chunk_check *cc = vctx;
  mp_chunks *c = &cc->pool->chunks;
  mp_extent e;
  enum mp_range_kind kind = mp_ranges_kind_at(&cc->pool->ranges, start, &e);
  unsigned want = kind == MP_RANGE_LISTED   ? MP_CHUNK_HELD
                  : kind == MP_RANGE_PARKED ? MP_CHUNK_INHERITED
                                            : c->state[chunk_of(c, start)];
  cc->away_ranges += in_use && want == MP_CHUNK_AWAY;
  for (uint32_t k = chunk_of(c, start), last = chunk_of(c, start + size - 1); k <= last && !cc->rc; k++)
    if (c->state[k] != want) {
      mp_format(cc->why, cc->whylen, "C2: range at granule %llu (kind %u) overlaps chunk %llu of state %u", UL(start),
                (unsigned)kind, UL(k), c->state[k]);
      cc->rc = -1;
    }
}

static void count_live_check(void *vctx, uint32_t start, uint32_t size, bool in_use) {
  uint32_t *live = vctx;
  (void)start;
  if (in_use) *live += size;
}

int mp_chunks_check(mp_pool *p, char *why, size_t whylen) {
  mp_chunks *c = &p->chunks;
  const mp_ranges *r = &p->ranges;
  uint32_t whole = 0, held = 0, inherited = 0;
  struct chunk_check cc = {p, why, whylen, 0, 0};
  mp_ranges_walk(r, check_range, &cc);
  if (cc.rc) return cc.rc;
  if (cc.away_ranges != c->away_ranges) {
    mp_format(why, whylen, "C1: %llu ranges stand for chunks not held, counted %llu", UL(cc.away_ranges),
              UL(c->away_ranges));
    return -1;
  }
  for (uint32_t k = 0; k < c->count; k++) {
    uint32_t g0 = first_granule(c, k), n = granules_of(p, k), live = 0;
    mp_extent e;
    enum mp_range_kind kind = mp_ranges_kind_at(r, g0, &e);
    bool whole_free = kind == MP_RANGE_LISTED && e.start + e.size >= g0 + n;
    if (c->state[k] == MP_CHUNK_AWAY && kind != MP_RANGE_IN_USE) { /* C2 keeps held chunks out of it */
      mp_format(why, whylen, "C1: chunk %llu is not held but is not in an in-use range", UL(k));
      return -1;
    }
    if (c->state[k] == MP_CHUNK_HELD) {
      held++;
      whole += whole_free;
      if (!c->fixed && whole_free != bit_test(c->whole_free, k)) {
        mp_format(why, whylen, "C3: chunk %llu whole free %u, bit %u", UL(k), (unsigned)whole_free,
                  (unsigned)bit_test(c->whole_free, k));
        return -1;
      }
    }
    if (c->state[k] == MP_CHUNK_INHERITED) {
      inherited++;
      mp_ranges_walk_in(r, g0, g0 + n, count_live_check, &live);
      if (c->live[k] != live) {
        mp_format(why, whylen, "C4: inherited chunk %llu counts %llu live granules, ranges say %llu", UL(k),
                  UL(c->live[k]), UL(live));
        return -1;
      }
    }
  }
  if ((!c->fixed && whole != c->whole_free_count) || held != c->held || inherited != c->inherited) {
    mp_format(why, whylen, "C3: counters: whole free %llu/%llu, held %llu/%llu, inherited %llu/%llu",
              UL(c->whole_free_count), UL(whole), UL(c->held), UL(held), UL(c->inherited), UL(inherited));
    return -1;
  }
  return 0;
}
