/* span.c - spans of one size class, in 64 KiB units (see span.h). */
#include "span.h"

#include <string.h>

#include "msg.h"
#include "region.h"
#include "chunks.h"
#include "ranges.h"
#include "tcache.h"

#define SPAN_GRANULES (MP_SPAN_SIZE >> MP_GRANULE_SHIFT)
_Static_assert(SPAN_GRANULES == MP_SPAN_WORDS * 64, "a span's held bits are whole words of the region's bitmap");

/* The held bitmap is committed in groups of this many bytes: few mappings
 * (two at most per group, against the kernel's vm.max_map_count) and a
 * multiple of every page size (4, 16, 64 KiB). */
#define HELD_GROUP (64u << 10)
_Static_assert(HELD_GROUP % (MP_SPAN_WORDS * 8) == 0, "a span's held bits lie in one group");

/* Words of a span's avail bitmap for class cls. */
static inline uint32_t class_words(unsigned cls) { return (mp_class_nobj(cls) + 63) / 64; }

int mp_small_init(mp_pool *p) {
  mp_small *sm = &p->small;
  size_t nspans = p->region.size >> MP_SPAN_SHIFT; /* whole 64 KiB units: where spans can be */
  /* One class byte for every chunk the region touches, the partial tail
   * included: a range block there looks its chunk up too (and finds 0). */
  size_t nchunks = (p->region.size + MP_SPAN_SIZE - 1) >> MP_SPAN_SHIFT;
  size_t class_bytes = (nchunks + 4095) & ~(size_t)4095;
  size_t span_bytes = (nspans * sizeof(mp_span) + 4095) & ~(size_t)4095;
  /* The held bitmap: a bit per granule of every span, committed a group
   * at a time (HELD_GROUP bytes: 128 spans, 8 MiB of region), and a bit
   * per group once committed. */
  size_t held_bytes = (nspans * MP_SPAN_WORDS * 8 + HELD_GROUP - 1) / HELD_GROUP * HELD_GROUP;
  size_t held_pages_bytes = ((held_bytes / HELD_GROUP + 63) / 64 * 8 + 4095) & ~(size_t)4095;
  /* Avail bitmap blocks are recycled within a class only, so the arena
   * reserves (virtually) what every class could need at once, a block per
   * unit: it cannot run out. */
  size_t per_unit = 0;
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++) per_unit += class_words(c);
  size_t words = nspans * per_unit;
  size_t meta_bytes = class_bytes + span_bytes + held_pages_bytes;
  size_t len = meta_bytes + held_bytes + words * 8;
  char *m = mp_meta_reserve(len);
  if (!m) return -1;
  if (!mp_meta_commit(m, meta_bytes)) {
    mp_meta_unmap(m, len);
    return -1;
  }
  sm->meta_base = m;
  sm->meta_len = len;
  sm->span_class = (uint8_t *)m;
  sm->spans = (mp_span *)(m + class_bytes);
  sm->held_pages = (uint64_t *)(m + class_bytes + span_bytes);
  sm->held = (uint64_t *)(m + meta_bytes);
  sm->bitmap_arena = (uint64_t *)(m + meta_bytes + held_bytes);
  sm->bitmap_words = words;
  sm->nspans = nspans;
  sm->max_size = p->region.size >= MP_MEDIUM_MIN_REGION ? MP_SMALL_MAX : MP_HIT_MAX;
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++) pthread_mutex_init(&sm->classes[c].lock, NULL);
  pthread_mutex_init(&sm->tcache_lock, NULL);
  sm->enabled = true;
  return 0;
}

/* The arena's words [0, end) usable: committed 64 KiB at a time as spans
 * appear (the arena is reserved for the worst case, every span of the
 * smallest class, but commit charge and mlockall follow use). Two threads
 * may commit the same pages: harmless. False when the kernel refuses. */
static bool bitmaps_commit(mp_small *sm, size_t end) {
  size_t have = __atomic_load_n(&sm->bitmap_committed, __ATOMIC_ACQUIRE);
  if (end <= have) return true;
  size_t step = (64u << 10) / 8, want = (end + step - 1) / step * step;
  if (want > sm->bitmap_words) want = sm->bitmap_words;
  size_t from = have & ~(size_t)(4096 / 8 - 1); /* page-aligned: the arena starts on a page */
  if (!mp_meta_commit(sm->bitmap_arena + from, (want - from) * 8)) return false;
  while (have < want &&
         !__atomic_compare_exchange_n(&sm->bitmap_committed, &have, want, false, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE)) {
  }
  return true;
}

/* Bitmap storage for a span of class cls (class lock held): a block the
 * class released, or fresh words from the arena, which covers every span as
 * 16-byte objects (it cannot run out), or NULL when the kernel refuses to
 * commit more of it. */
static uint64_t *bitmaps_get(mp_small *sm, unsigned cls) {
  mp_class *c = &sm->classes[cls];
  uint64_t *b = c->free_bitmaps;
  if (b) {
    c->free_bitmaps = (uint64_t *)(uintptr_t)b[0];
    return b;
  }
  size_t n = class_words(cls), at = __atomic_fetch_add(&sm->bitmap_used, n, __ATOMIC_RELAXED);
  return bitmaps_commit(sm, at + n) ? sm->bitmap_arena + at : NULL; /* refused: those words stay unused */
}

static void bitmaps_put(mp_small *sm, unsigned cls, uint64_t *b) {
  b[0] = (uint64_t)(uintptr_t)sm->classes[cls].free_bitmaps;
  sm->classes[cls].free_bitmaps = b;
}

void mp_small_destroy(mp_pool *p) {
  mp_small *sm = &p->small;
  if (!sm->enabled) return;
  mp_meta_unmap(sm->meta_base, sm->meta_len);
  memset(sm, 0, sizeof *sm);
}

/* The span (its first unit) of region offset off. */
static inline uint32_t span_head(const mp_small *sm, uintptr_t off) { return sm->spans[off >> MP_SPAN_SHIFT].head; }

static void partial_push(mp_small *sm, mp_class *c, uint32_t si) {
  mp_span *s = &sm->spans[si];
  s->prev = 0;
  s->next = c->partial;
  if (c->partial) sm->spans[c->partial - 1].prev = si + 1;
  c->partial = si + 1;
}

static void partial_remove(mp_small *sm, mp_class *c, uint32_t si) {
  mp_span *s = &sm->spans[si];
  if (s->prev)
    sm->spans[s->prev - 1].next = s->next;
  else
    c->partial = s->next;
  if (s->next) sm->spans[s->next - 1].prev = s->prev;
  s->prev = s->next = 0;
}

/* Unit si's held bits usable: their group of the bitmap committed (once;
 * two classes may commit one group at once: harmless). False when the
 * kernel refuses. Its bits are zero: a span goes back with none set. */
static bool held_commit_unit(mp_small *sm, uint32_t si) {
  size_t group = (size_t)si * MP_SPAN_WORDS * 8 / HELD_GROUP;
  uint64_t bit = 1ull << (group & 63);
  if (__atomic_load_n(&sm->held_pages[group / 64], __ATOMIC_ACQUIRE) & bit) return true;
  if (!mp_meta_commit((char *)sm->held + group * HELD_GROUP, HELD_GROUP)) return false;
  __atomic_fetch_or(&sm->held_pages[group / 64], bit, __ATOMIC_RELEASE);
  return true;
}
static bool held_commit(mp_small *sm, uint32_t si, uint32_t units) {
  for (uint32_t u = 0; u < units; u++)
    if (!held_commit_unit(sm, si + u)) return false;
  return true;
}

/* Every unit of the span at si gets class byte b (0: no span) and its head. */
static void units_mark(mp_small *sm, uint32_t si, uint32_t units, uint8_t b) {
  for (uint32_t u = 0; u < units; u++) {
    sm->spans[si + u].head = si;
    __atomic_store_n(&sm->span_class[si + u], b, __ATOMIC_RELEASE);
  }
}

/* A fresh span from the pool's ranges, all objects avail. */
static bool span_new(mp_pool *p, unsigned cls) {
  mp_small *sm = &p->small;
  uint64_t *bitmaps = bitmaps_get(sm, cls);
  if (!bitmaps) return false;
  uint32_t units = mp_class_units[cls], g = mp_chunks_span_get(p, units);
  if (g == MP_NONE || !held_commit(sm, g / SPAN_GRANULES, units)) {
    if (g != MP_NONE) mp_chunks_span_put(p, g);
    bitmaps_put(sm, cls, bitmaps);
    return false;
  }
  uint32_t si = g / SPAN_GRANULES;
  mp_span *s = &sm->spans[si];
  uint32_t n = mp_class_nobj(cls), words = class_words(cls);
  s->nobj = (uint16_t)n;
  s->navail = (uint16_t)n;
  s->avail = bitmaps;
  memset(s->avail, 0, words * 8);
  for (uint32_t w = 0; w < n / 64; w++) s->avail[w] = ~0ull;
  if (n % 64) s->avail[n / 64] = (1ull << (n % 64)) - 1;
  units_mark(sm, si, units, (uint8_t)(cls + 1));
  sm->classes[cls].spans++;
  partial_push(sm, &sm->classes[cls], si);
  return true;
}

/* A span of a chunk a fork child inherited serves no new objects: it is on
 * no partial list and goes back as soon as it is empty. */
static inline bool span_inherited(const mp_pool *p, uint32_t si) { return mp_chunk_inherited(p, si * SPAN_GRANULES); }

void mp_small_emit_held(const mp_pool *p, size_t off, size_t len, mp_bytes_fn emit, void *state) {
  const mp_small *sm = &p->small;
  size_t si = span_head(sm, off), cls = mp_span_cls(sm->span_class[si]), size = mp_class_size[cls];
  size_t first = si << MP_SPAN_SHIFT, end = off + len;
  const uint64_t *held = sm->held + si * MP_SPAN_WORDS;
  size_t run = 0, rlen = 0; /* the run of adjacent held objects being gathered */
  for (unsigned w = 0; w < MP_SPAN_WORDS * mp_class_units[cls]; w++)
    for (uint64_t bits = __atomic_load_n(&held[w], __ATOMIC_RELAXED); bits; bits &= bits - 1) {
      size_t at = first + ((size_t)(w * 64 + (unsigned)__builtin_ctzll(bits)) << MP_GRANULE_SHIFT), to = at + size;
      at = at < off ? off : at; /* clipped to [off, end) */
      to = to > end ? end : to;
      if (at >= to) continue;
      if (rlen && at == run + rlen) {
        rlen = to - run;
        continue;
      }
      if (rlen) emit(state, run, rlen);
      run = at, rlen = to - at;
    }
  if (rlen) emit(state, run, rlen);
}

/* An empty span goes back to the ranges (class lock held). */
static void span_release(mp_pool *p, unsigned cls, uint32_t si) {
  mp_small *sm = &p->small;
  if (!span_inherited(p, si)) partial_remove(sm, &sm->classes[cls], si);
  sm->classes[cls].spans--;
  if (sm->classes[cls].empty == si + 1) sm->classes[cls].empty = 0;
  units_mark(sm, si, mp_class_units[cls], 0);
  bitmaps_put(sm, cls, sm->spans[si].avail);
  mp_chunks_span_put(p, si * SPAN_GRANULES);
}

/* The index of the object at region offset off in span si, and its offset. */
static inline uint32_t object_index(uintptr_t off, uint32_t si, unsigned cls) {
  return mp_class_div((uint32_t)(off - ((uintptr_t)si << MP_SPAN_SHIFT)), cls);
}
static inline uintptr_t object_off(uint32_t si, uint32_t i, unsigned cls) {
  return ((uintptr_t)si << MP_SPAN_SHIFT) + (uintptr_t)i * mp_class_size[cls];
}

int mp_span_not_held(const mp_pool *p, uintptr_t off, unsigned cls) {
  uint32_t si = span_head(&p->small, off), i = object_index(off, si, cls);
  bool start = object_off(si, i, cls) == off && i < p->small.spans[si].nobj;
  return start ? MP_SMALL_NOT_HELD : MP_SMALL_INTERIOR;
}

/* The transfer stack (class lock held): a batch a cache flushed waits
 * there, its objects neither avail nor held, for the next refill of any
 * thread, which then takes it without a visit to the spans (tcmalloc's
 * transfer cache): a producer-consumer pair moves its objects in O(1) each.
 * In a fork child that inherited chunks nothing enters it (an inherited
 * span's objects go straight back to it). */
static uint32_t xfer_pop(mp_class *c, void **out, uint32_t want) {
  uint32_t k = want < c->xfer_n ? want : c->xfer_n;
  c->xfer_n -= k;
  memcpy(out, c->xfer + c->xfer_n, k * sizeof *out);
  return k;
}
static uint32_t xfer_push(const mp_pool *p, mp_class *c, void *const *objs, uint32_t n) {
  uint32_t room = p->chunks.inherited ? 0 : mp_class_xfer_cap((unsigned)(c - p->small.classes)) - c->xfer_n;
  uint32_t k = n < room ? n : room;
  memcpy(c->xfer + c->xfer_n, objs, k * sizeof *objs);
  c->xfer_n += k;
  return k;
}

uint32_t mp_span_take(mp_pool *p, unsigned cls, void **out, uint32_t want) {
  mp_small *sm = &p->small;
  mp_class *c = &sm->classes[cls];
  uint32_t size = mp_class_size[cls];
  pthread_mutex_lock(&c->lock);
  uint32_t got = xfer_pop(c, out, want);
  while (got < want) {
    if (!c->partial && !span_new(p, cls)) break;
    uint32_t si = c->partial - 1;
    if (si + 1 == c->empty && sm->spans[si].next) si = sm->spans[si].next - 1; /* the kept empty span last */
    if (si + 1 == c->empty) c->empty = 0;
    mp_span *s = &sm->spans[si];
    uintptr_t base = p->region.base + ((uintptr_t)si << MP_SPAN_SHIFT);
    for (uint32_t w = 0, nw = class_words(cls); w < nw && got < want; w++) {
      while (s->avail[w] && got < want) {
        uint32_t b = (uint32_t)__builtin_ctzll(s->avail[w]);
        s->avail[w] &= s->avail[w] - 1;
        out[got++] = (void *)(base + (uintptr_t)(w * 64 + b) * size);
        s->navail--;
      }
    }
    if (s->navail == 0) partial_remove(sm, c, si);
  }
  pthread_mutex_unlock(&c->lock);
  return got;
}

/* n objects back into their spans (class lock held). */
static void give_locked(mp_pool *p, unsigned cls, void *const *objs, uint32_t n) {
  mp_small *sm = &p->small;
  mp_class *c = &sm->classes[cls];
  for (uint32_t k = 0; k < n; k++) {
    uintptr_t off = (uintptr_t)objs[k] - p->region.base;
    uint32_t si = span_head(sm, off);
    mp_span *s = &sm->spans[si];
    uint32_t i = object_index(off, si, cls);
    s->avail[i >> 6] |= 1ull << (i & 63);
    if (span_inherited(p, si)) {
      if (++s->navail == s->nobj) span_release(p, cls, si);
      continue;
    }
    if (s->navail++ == 0) partial_push(sm, c, si);
    if (s->navail < s->nobj) continue;
    if (c->empty) /* one empty span is kept already */
      span_release(p, cls, si);
    else
      c->empty = si + 1;
  }
}

/* The transfer stack's objects into their spans (class lock held). */
static void xfer_drain(mp_pool *p, unsigned cls) {
  mp_class *c = &p->small.classes[cls];
  uint32_t n = c->xfer_n;
  c->xfer_n = 0;
  give_locked(p, cls, c->xfer, n);
}

void mp_span_give(mp_pool *p, unsigned cls, void *const *objs, uint32_t n) {
  mp_class *c = &p->small.classes[cls];
  pthread_mutex_lock(&c->lock);
  uint32_t k = xfer_push(p, c, objs, n);
  give_locked(p, cls, objs + k, n - k);
  pthread_mutex_unlock(&c->lock);
}

void mp_small_release_empty(mp_pool *p) {
  mp_small *sm = &p->small;
  if (!sm->enabled) return;
  for (unsigned cls = 0; cls < MP_SMALL_CLASSES; cls++) {
    mp_class *c = &sm->classes[cls];
    pthread_mutex_lock(&c->lock);
    xfer_drain(p, cls);
    if (c->empty) span_release(p, cls, c->empty - 1); /* the one empty span kept */
    pthread_mutex_unlock(&c->lock);
  }
}

size_t mp_small_meta_bytes(const mp_pool *p) {
  const mp_small *sm = &p->small;
  if (!sm->enabled) return 0;
  size_t units = 0, caches = 0;
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++)
    units += __atomic_load_n(&sm->classes[c].spans, __ATOMIC_RELAXED) * (size_t)mp_class_units[c];
  for (const mp_tcache *tc = __atomic_load_n(&sm->all_tcaches, __ATOMIC_ACQUIRE); tc; tc = tc->next_all) caches++;
  /* A live span's held words are what of the held bitmap is touched (the
   * rest of a committed group is never written). */
  return sm->nspans + units * (sizeof(mp_span) + MP_SPAN_WORDS * 8) +
         __atomic_load_n(&sm->bitmap_used, __ATOMIC_RELAXED) * 8 + caches * sizeof(mp_tcache);
}

/* The reclaimers' steal lock, class locks, then the thread-cache list lock
 * (forkorder.h). single: only
 * tried; on a refusal the ones taken are given back and false returned. */
bool mp_small_fork_prepare(mp_pool *p, bool single) {
  mp_small *sm = &p->small;
  if (!sm->enabled) return true;
  if (!mp_tcache_fork_prepare(p, single)) return false;
  unsigned c = 0;
  for (; c < MP_SMALL_CLASSES; c++)
    if (single ? pthread_mutex_trylock(&sm->classes[c].lock) != 0 : pthread_mutex_lock(&sm->classes[c].lock) != 0)
      break;
  if (c == MP_SMALL_CLASSES &&
      (single ? pthread_mutex_trylock(&sm->tcache_lock) == 0 : pthread_mutex_lock(&sm->tcache_lock) == 0))
    return true;
  while (c-- > 0) pthread_mutex_unlock(&sm->classes[c].lock);
  mp_tcache_fork_parent(p);
  return false;
}
void mp_small_fork_parent(mp_pool *p) {
  if (!p->small.enabled) return;
  pthread_mutex_unlock(&p->small.tcache_lock);
  for (unsigned c = MP_SMALL_CLASSES; c-- > 0;) pthread_mutex_unlock(&p->small.classes[c].lock);
  mp_tcache_fork_parent(p);
}
void mp_small_fork_child(mp_pool *p) {
  if (!p->small.enabled) return;
  pthread_mutex_init(&p->small.tcache_lock, NULL);
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++) pthread_mutex_init(&p->small.classes[c].lock, NULL);
  mp_tcache_fork_child(p);
}

void mp_small_fork_purge(mp_pool *p, bool flush_current) {
  mp_small *sm = &p->small;
  if (!sm->enabled) return;
  /* Inherited spans are flagged (their objects are never cached again):
   * those of the inherited chunks only, not a byte per span of the window
   * (a 128 KiB scan, 32 pages faulted in, on an 8 GiB window). */
  size_t per = ((size_t)1 << p->chunks.shift) >> MP_SPAN_SHIFT;
  for (uint32_t k = 0; k < p->chunks.count; k++)
    for (size_t si = k * per; p->chunks.state[k] == MP_CHUNK_INHERITED && si < (k + 1) * per && si < sm->nspans; si++)
      if (sm->span_class[si]) sm->span_class[si] |= MP_SPAN_INHERITED;
  /* They leave the partial lists: a span is released once. */
  for (unsigned cls = 0; cls < MP_SMALL_CLASSES; cls++) {
    mp_class *c = &sm->classes[cls];
    pthread_mutex_lock(&c->lock);
    for (uint32_t si1 = c->partial, next; si1; si1 = next) {
      next = sm->spans[si1 - 1].next;
      if (!span_inherited(p, si1 - 1)) continue;
      partial_remove(sm, c, si1 - 1);
      if (sm->spans[si1 - 1].navail == sm->spans[si1 - 1].nobj) span_release(p, cls, si1 - 1);
    }
    xfer_drain(p, cls); /* the parent's transfer stack, once its spans are off the lists */
    pthread_mutex_unlock(&c->lock);
  }
  /* Then the forking thread's cached objects go back, when it is in fork().
   * A process of one thread may fork from a signal handler that interrupted
   * a lock-free change of that very cache, which the child resumes with
   * the values it had loaded: the cache is abandoned as it is, its objects
   * stay out (a bounded leak, in inherited chunks), and the thread gets a
   * new one. Other threads' caches may have been mid-update at fork():
   * their objects stay out too. */
  if (flush_current)
    mp_tcache_flush_current(p);
  else
    mp_tcache_abandon_current(p);
}

#define VIOLATION(...)                            \
  do {                                            \
    if (why) mp_format(why, whylen, __VA_ARGS__); \
    return -1;                                    \
  } while (0)

/* The partial list of class cls (S2): its spans' first units, of the class, with avail objects. */
static int check_partial(mp_pool *p, unsigned cls, char *why, size_t whylen) {
  mp_small *sm = &p->small;
  uint32_t listed = 0;
  for (uint32_t si1 = sm->classes[cls].partial; si1; si1 = sm->spans[si1 - 1].next) {
    const mp_span *s = &sm->spans[si1 - 1];
    if (!sm->span_class[si1 - 1] || mp_span_cls(sm->span_class[si1 - 1]) != cls || s->head != si1 - 1)
      VIOLATION("S2: span %llu on list of class %u has class %u", (unsigned long long)(si1 - 1), cls,
                sm->span_class[si1 - 1]);
    if (s->navail == 0) VIOLATION("S2: full span %llu on a partial list", (unsigned long long)(si1 - 1));
    if (span_inherited(p, si1 - 1))
      VIOLATION("S2: inherited span %llu on a partial list", (unsigned long long)(si1 - 1));
    if (++listed > sm->nspans) VIOLATION("S2: partial list of class %u loops", cls);
  }
  return 0;
}

/* The avail and held bits of the span at si (S1, S2). */
static int check_bits(mp_pool *p, unsigned cls, size_t si, char *why, size_t whylen) {
  const mp_span *s = &p->small.spans[si];
  uint32_t na = 0, size = mp_class_size[cls];
  for (uint32_t w = 0; w < class_words(cls); w++) {
    na += (uint32_t)__builtin_popcountll(s->avail[w]);
    uint64_t beyond = (w * 64 >= s->nobj) ? ~0ull : (s->nobj - w * 64 >= 64 ? 0 : ~0ull << (s->nobj - w * 64));
    if (s->avail[w] & beyond)
      VIOLATION("S1: span %llu has bits beyond its %u objects", (unsigned long long)si, s->nobj);
  }
  if (na != s->navail) VIOLATION("S2: span %llu navail %u, bitmap says %u", (unsigned long long)si, s->navail, na);
  const uint64_t *held = p->small.held + si * MP_SPAN_WORDS;
  for (uint32_t gi = 0, oi = 0; gi < SPAN_GRANULES * mp_class_units[cls]; gi++) {
    bool h = (held[gi / 64] >> (gi % 64)) & 1, start = oi < s->nobj && gi * MP_GRANULE == oi * size;
    if (h && !start)
      VIOLATION("S1: span %llu: held bit at granule %u, not an object's start", (unsigned long long)si, gi);
    if (h && ((s->avail[oi / 64] >> (oi % 64)) & 1))
      VIOLATION("S1: span %llu: object %u both avail and held", (unsigned long long)si, oi);
    if (start) oi++;
  }
  return 0;
}

/* The span whose first unit is si (S1..S3): its units, bits and range. */
static int check_span(mp_pool *p, unsigned cls, size_t si, char *why, size_t whylen) {
  mp_small *sm = &p->small;
  uint32_t units = mp_class_units[cls];
  if (si + units > sm->nspans) VIOLATION("S3: span %llu runs past the region", (unsigned long long)si);
  for (uint32_t u = 0; u < units; u++)
    if (sm->span_class[si + u] != sm->span_class[si] || sm->spans[si + u].head != si)
      VIOLATION("S3: unit %u of span %llu is not the span's", u, (unsigned long long)si);
  if (!(sm->span_class[si] & MP_SPAN_INHERITED) != !span_inherited(p, (uint32_t)si))
    VIOLATION("S2: span %llu's inherited flag disagrees with its chunk", (unsigned long long)si);
  if (sm->spans[si].nobj != mp_class_nobj(cls))
    VIOLATION("S1: span %llu has %u objects", (unsigned long long)si, sm->spans[si].nobj);
  if (check_bits(p, cls, si, why, whylen)) return -1;
  uint32_t g = (uint32_t)(si * SPAN_GRANULES);
  if (mp_ranges_classify(&p->ranges, g) != MP_RANGES_OK || mp_ranges_size(&p->ranges, g) != SPAN_GRANULES * units ||
      mp_chunk_state_at(p, g) == MP_CHUNK_AWAY)
    VIOLATION("S3: span %llu is not an in-use range of one span", (unsigned long long)si);
  return 0;
}

/* Class cls's spans (S1..S3) and its transfer stack (S1). */
static int check_class(mp_pool *p, unsigned cls, char *why, size_t whylen) {
  mp_small *sm = &p->small;
  if (check_partial(p, cls, why, whylen)) return -1;
  uint32_t counted = 0;
  for (size_t si = 0; si < sm->nspans; si++) {
    if (!sm->span_class[si] || mp_span_cls(sm->span_class[si]) != cls || sm->spans[si].head != si) continue;
    counted++;
    if (check_span(p, cls, si, why, whylen)) return -1;
    const mp_span *s = &sm->spans[si];
    if (s->navail == s->nobj && !span_inherited(p, (uint32_t)si) && sm->classes[cls].empty != si + 1)
      VIOLATION("S2: span %llu of class %u is empty and not the one kept", (unsigned long long)si, cls);
  }
  uint32_t e = sm->classes[cls].empty;
  if (e && (e > sm->nspans || !sm->span_class[e - 1] || mp_span_cls(sm->span_class[e - 1]) != cls ||
            sm->spans[e - 1].head != e - 1 || sm->spans[e - 1].navail != sm->spans[e - 1].nobj))
    VIOLATION("S2: class %u's kept span %u is not an empty span of the class", cls, e - 1);
  if (counted != sm->classes[cls].spans)
    VIOLATION("S2: class %u counts %u spans, table has %u", cls, sm->classes[cls].spans, counted);
  if (sm->classes[cls].xfer_n > mp_class_xfer_cap(cls))
    VIOLATION("S1: class %u's transfer stack holds %u objects", cls, sm->classes[cls].xfer_n);
  for (uint32_t k = 0; k < sm->classes[cls].xfer_n; k++) {
    uintptr_t off = (uintptr_t)sm->classes[cls].xfer[k] - p->region.base;
    uint32_t si = off < p->region.size ? span_head(sm, off) : 0, oi = object_index(off, si, cls);
    if (off >= p->region.size || !sm->span_class[si] || mp_span_cls(sm->span_class[si]) != cls ||
        object_off(si, oi, cls) != off || ((sm->spans[si].avail[oi / 64] >> (oi % 64)) & 1) || mp_span_held_bit(p, off))
      VIOLATION("S1: transferred object %p of class %u is not a cached object of its span", sm->classes[cls].xfer[k],
                cls);
  }
  return 0;
}

/* A unit of no span has no held bit (a span goes back with none set). */
static int check_free_units(mp_pool *p, char *why, size_t whylen) {
  mp_small *sm = &p->small;
  for (size_t si = 0; si < sm->nspans; si++) {
    size_t group = si * MP_SPAN_WORDS * 8 / HELD_GROUP;
    if (sm->span_class[si] || !((sm->held_pages[group / 64] >> (group % 64)) & 1)) continue;
    for (uint32_t w = 0; w < MP_SPAN_WORDS; w++)
      if (sm->held[si * MP_SPAN_WORDS + w])
        VIOLATION("S1: no span at %llu, yet held bits there", (unsigned long long)si);
  }
  return 0;
}

int mp_small_check(mp_pool *p, char *why, size_t whylen) {
  mp_small *sm = &p->small;
  int rc = 0;
  if (!sm->enabled) return 0;
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++) pthread_mutex_lock(&sm->classes[c].lock);
  pthread_mutex_lock(&p->lock);
  for (unsigned cls = 0; cls < MP_SMALL_CLASSES && rc == 0; cls++) rc = check_class(p, cls, why, whylen);
  if (rc == 0) rc = check_free_units(p, why, whylen);
  pthread_mutex_unlock(&p->lock);
  for (unsigned c = MP_SMALL_CLASSES; c-- > 0;) pthread_mutex_unlock(&sm->classes[c].lock);
  return rc;
}
