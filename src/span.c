/* span.c - spans of one size class, in 64 KiB units (see span.h). */
#include "span.h"

#include <string.h>

#include "msg.h"
#include "region.h"
#include "chunks.h"
#include "ranges.h"
#include "tcache.h"

#define SPAN_GRANULES (MP_SPAN_SIZE >> MP_GRANULE_SHIFT)

/* The held map is committed in groups of this many bytes: few mappings
 * (two at most per group, against the kernel's vm.max_map_count) and a
 * multiple of every page size (4, 16, 64 KiB). */
#define HELD_GROUP (64u << 10)
_Static_assert(HELD_GROUP % (MP_SPAN_SIZE >> MP_HELD_SHIFT_MIN) == 0,
               "a unit's held bytes lie in one group, at every level");

/* A unit's held bytes at level shift: bytes [first, first + count) of the level. */
static inline size_t unit_held_first(size_t si, unsigned shift) { return si << (MP_SPAN_SHIFT - shift); }
static inline size_t unit_held_count(unsigned shift) { return (size_t)1 << (MP_SPAN_SHIFT - shift); }
/* The level (unbiased: byte off >> shift is the object's at off). */
static inline uint8_t *held_level(const mp_small *sm, unsigned shift) {
  return sm->held + sm->held_level[shift - MP_HELD_SHIFT_MIN];
}
/* The first set byte of h in [i, end), or end: eight at a time where aligned. */
static size_t held_next(const uint8_t *h, size_t i, size_t end) {
  for (; i < end; i++) {
    while (!(i & 7) && i + 8 <= end && !__atomic_load_n((const uint64_t *)(h + i), __ATOMIC_RELAXED)) i += 8;
    if (i < end && __atomic_load_n(&h[i], __ATOMIC_RELAXED)) return i;
  }
  return end;
}

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
  /* The held map: a level for each shift, a byte per 2^shift bytes of
   * every unit, each level a whole number of groups, committed a group at
   * a time (HELD_GROUP bytes: 1 MiB of region at the granule's level), and
   * a bit per group once committed. */
  size_t held_bytes = 0;
  for (unsigned shift = MP_HELD_SHIFT_MIN; shift <= MP_HELD_SHIFT_MAX; shift++) {
    sm->held_level[shift - MP_HELD_SHIFT_MIN] = held_bytes;
    held_bytes += (unit_held_first(nspans, shift) + HELD_GROUP - 1) / HELD_GROUP * HELD_GROUP;
  }
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
  sm->held = (uint8_t *)(m + meta_bytes);
  sm->bitmap_arena = (uint64_t *)(m + meta_bytes + held_bytes);
  sm->bitmap_words = words;
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++) {
    unsigned shift = mp_class_held_shift[c];
    sm->held_by_address[c] = (uintptr_t)held_level(sm, shift) - (p->region.base >> shift);
  }
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

/* Unit si's held bytes at level shift usable: their group committed (once;
 * two classes may commit one group at once: harmless). False when the
 * kernel refuses. Its bits are zero: a span goes back with none set. */
static bool held_commit_unit(mp_small *sm, uint32_t si, unsigned shift) {
  size_t group = (sm->held_level[shift - MP_HELD_SHIFT_MIN] + unit_held_first(si, shift)) / HELD_GROUP;
  uint64_t bit = 1ull << (group & 63);
  if (__atomic_load_n(&sm->held_pages[group / 64], __ATOMIC_ACQUIRE) & bit) return true;
  if (!mp_meta_commit(sm->held + group * HELD_GROUP, HELD_GROUP)) return false;
  __atomic_fetch_or(&sm->held_pages[group / 64], bit, __ATOMIC_RELEASE);
  return true;
}
static bool held_commit(mp_small *sm, uint32_t si, uint32_t units, unsigned shift) {
  for (uint32_t u = 0; u < units; u++)
    if (!held_commit_unit(sm, si + u, shift)) return false;
  return true;
}
static bool held_committed(const mp_small *sm, size_t si, unsigned shift) {
  size_t group = (sm->held_level[shift - MP_HELD_SHIFT_MIN] + unit_held_first(si, shift)) / HELD_GROUP;
  return (__atomic_load_n(&sm->held_pages[group / 64], __ATOMIC_ACQUIRE) >> (group % 64)) & 1;
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
  if (g == MP_NONE || !held_commit(sm, g / SPAN_GRANULES, units, mp_class_held_shift[cls])) {
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
  unsigned shift = mp_class_held_shift[cls];
  const uint8_t *held = held_level(sm, shift);
  size_t end = off + len, run = 0, rlen = 0; /* the run of adjacent held objects being gathered */
  size_t last = unit_held_first(si + mp_class_units[cls], shift);
  for (size_t b = held_next(held, unit_held_first(si, shift), last); b < last; b = held_next(held, b + 1, last)) {
    size_t at = b << shift, to = at + size;
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

void mp_small_twice(const void *obj, const char *where) {
  mp_fatal(
      "%s: object %p is in two places at once (held and cached, or cached and free in its span): it was freed "
      "twice, by two threads whose frees raced",
      where, obj);
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
static uint32_t xfer_pop(mp_small *sm, unsigned cls, void **out, uint32_t want) {
  mp_class *c = &sm->classes[cls];
  uint32_t k = want < c->xfer_n ? want : c->xfer_n;
  c->xfer_n -= k;
  memcpy(out, sm->xfer[cls] + c->xfer_n, k * sizeof *out);
  return k;
}
static uint32_t xfer_push(mp_pool *p, unsigned cls, void *const *objs, uint32_t n) {
  mp_class *c = &p->small.classes[cls];
  uint32_t room = p->chunks.inherited ? 0 : mp_class_xfer_cap(cls) - c->xfer_n;
  uint32_t k = n < room ? n : room;
  memcpy(p->small.xfer[cls] + c->xfer_n, objs, k * sizeof *objs);
  c->xfer_n += k;
  return k;
}

uint32_t mp_span_take(mp_pool *p, unsigned cls, void **out, uint32_t want) {
  mp_small *sm = &p->small;
  mp_class *c = &sm->classes[cls];
  uint32_t size = mp_class_size[cls];
  pthread_mutex_lock(&c->lock);
  uint32_t got = xfer_pop(sm, cls, out, want);
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
    if (s->avail[i >> 6] & (1ull << (i & 63))) mp_small_twice(objs[k], "free");
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
  give_locked(p, cls, p->small.xfer[cls], n);
}

void mp_span_give(mp_pool *p, unsigned cls, void *const *objs, uint32_t n) {
  mp_class *c = &p->small.classes[cls];
  pthread_mutex_lock(&c->lock);
  uint32_t k = xfer_push(p, cls, objs, n);
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
  /* A live span's held bytes are what of the held map is touched (the
   * rest of a committed group is never written). */
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++)
    units += __atomic_load_n(&sm->classes[c].spans, __ATOMIC_RELAXED) * (size_t)mp_class_units[c] *
             (sizeof(mp_span) + unit_held_count(mp_class_held_shift[c]));
  for (const mp_tcache *tc = __atomic_load_n(&sm->all_tcaches, __ATOMIC_ACQUIRE); tc; tc = tc->next_all) caches++;
  return sm->nspans + units + __atomic_load_n(&sm->bitmap_used, __ATOMIC_RELAXED) * 8 + caches * sizeof(mp_tcache);
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

/* The avail bits and held bytes of the span at si (S1, S2). */
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
  unsigned shift = mp_class_held_shift[cls];
  const uint8_t *held = held_level(&p->small, shift);
  size_t first = si << MP_SPAN_SHIFT, last = unit_held_first(si + mp_class_units[cls], shift);
  for (size_t b = held_next(held, unit_held_first(si, shift), last); b < last; b = held_next(held, b + 1, last)) {
    size_t at = (b << shift) - first;
    uint32_t oi = (uint32_t)(at / size);
    if (at % size || oi >= s->nobj)
      VIOLATION("S1: span %llu: held byte for offset %llu, not an object's start", (unsigned long long)si,
                (unsigned long long)at);
    if ((s->avail[oi / 64] >> (oi % 64)) & 1)
      VIOLATION("S1: span %llu: object %u both avail and held", (unsigned long long)si, oi);
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
    uintptr_t off = (uintptr_t)sm->xfer[cls][k] - p->region.base;
    uint32_t si = off < p->region.size ? span_head(sm, off) : 0, oi = object_index(off, si, cls);
    if (off >= p->region.size || !sm->span_class[si] || mp_span_cls(sm->span_class[si]) != cls ||
        object_off(si, oi, cls) != off || ((sm->spans[si].avail[oi / 64] >> (oi % 64)) & 1) ||
        mp_span_held_bit(p, off, cls))
      VIOLATION("S1: transferred object %p of class %u is not a cached object of its span", sm->xfer[cls][k], cls);
  }
  return 0;
}

/* A unit of no span has no held byte, at any level (a span goes back with
 * none set). */
static int check_free_units(mp_pool *p, char *why, size_t whylen) {
  mp_small *sm = &p->small;
  for (size_t si = 0; si < sm->nspans; si++) {
    if (sm->span_class[si]) continue;
    for (unsigned shift = MP_HELD_SHIFT_MIN; shift <= MP_HELD_SHIFT_MAX; shift++) {
      size_t first = unit_held_first(si, shift), end = first + unit_held_count(shift);
      if (held_committed(sm, si, shift) && held_next(held_level(sm, shift), first, end) != end)
        VIOLATION("S1: no span at %llu, yet held bytes there (level %u)", (unsigned long long)si, shift);
    }
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
