/* ranges.c - TLSF-style range allocator with out-of-band metadata.
 * Invariants and time bounds: see ranges.h.
 *
 * Data: a start bitmap (hierarchical) over granules, and a node per FREE
 * range only: a range is free iff its start has a node. A free node is found from its start
 * through a bucket chain (one bucket per 128 granules: at most 64 free
 * ranges can start in one, since free ranges are never adjacent), and from
 * its size through two-level segregated lists (TLSF: 29 x 16 classes).
 * Fixed metadata: 1 bit + 4/128 bytes per 16-byte granule = 0.98%;
 * nodes (24 bytes per free range) live in a mapping that grows with them (I7).
 */
#define _GNU_SOURCE
#include "ranges.h"

#include <string.h>
#include <sys/mman.h>

#include "bitmap.h"
#include "msg.h"
#include "region.h"

#define NIL 0u /* node index 0 is never used */

static inline unsigned fls32(uint32_t x) { return 31u - (unsigned)__builtin_clz(x); }

/* ---- size classes --------------------------------------------------------- */

static inline void class_of(uint32_t n, unsigned *fl, unsigned *sl) {
  if (n < MP_SL_COUNT) {
    *fl = 0;
    *sl = n;
  } else {
    unsigned f = fls32(n);
    *fl = f - MP_SL_LOG2 + 1;
    *sl = (n >> (f - MP_SL_LOG2)) - MP_SL_COUNT;
  }
}

/* Class whose every member is >= n (n rounded up to the next class). */
static inline bool class_at_least(uint64_t n, unsigned *fl, unsigned *sl) {
  if (n >= MP_SL_COUNT) n += (1ull << (63 - __builtin_clzll(n) - MP_SL_LOG2)) - 1;
  if (n > UINT32_MAX) return false;
  class_of((uint32_t)n, fl, sl);
  return *fl < MP_FL_COUNT;
}

/* ---- nodes --------------------------------------------------------------- */

static inline mp_free_node *N(const mp_ranges *r, uint32_t i) { return &r->nodes[i]; }

/* The node arena is a mapping of its own, grown by mremap as free ranges
 * appear (it may move: nodes are named by index, and no node pointer is
 * held across a growth), so its address space, commit charge and locked
 * memory follow the ranges that exist, not the worst case. */

/* I7: nodes for every free range any sequence of frees can make. Free
 * ranges of a kind never touch (I2), so free <= in use + 1 + the places a
 * listed and a parked range may touch (borders); k frees from (F, U) give
 * at most min(F + k, U - k + 1 + borders) <= (F + U + 1 + borders) / 2. */
static uint64_t nodes_needed(const mp_ranges *r, int64_t more_free, int64_t more_inuse) {
  int64_t f = (int64_t)r->free_ranges + r->parked_ranges + more_free, u = (int64_t)r->inuse_ranges + more_inuse;
  return (uint64_t)(f + u + 2 + r->borders) / 2 + 1; /* rounded up, and index 0 */
}

static bool grow_nodes(mp_ranges *r, uint64_t need) {
  if (need > r->node_max) need = r->node_max;
  if (need <= r->node_cap) return true;
  uint64_t want = need > 2ull * r->node_cap ? need : 2ull * r->node_cap;
  if (want > r->node_max) want = r->node_max;
  size_t len = ((size_t)want * sizeof(mp_free_node) + 4095) & ~(size_t)4095;
  void *m = mremap(r->nodes, r->nodes_len, len, MREMAP_MAYMOVE);
  if (m == MAP_FAILED) return false;
  r->nodes = m;
  r->nodes_len = len;
  r->node_cap = (uint32_t)(len / sizeof(mp_free_node) < r->node_max ? len / sizeof(mp_free_node) : r->node_max);
  return true;
}

/* Before an operation that may add free or in-use ranges: I7 after it. */
static bool ensure_nodes(mp_ranges *r, int64_t more_free, int64_t more_inuse) {
  uint64_t need = nodes_needed(r, more_free, more_inuse);
  return need <= r->node_cap || grow_nodes(r, need);
}

bool mp_ranges_reserve(mp_ranges *r, uint32_t more_free, uint32_t more_inuse) {
  return ensure_nodes(r, more_free, more_inuse);
}

static uint32_t node_new(mp_ranges *r) {
  uint32_t i = r->node_free;
  if (i != NIL) {
    r->node_free = N(r, i)->next;
    return i;
  }
  if (r->node_top >= r->node_cap && !grow_nodes(r, (uint64_t)r->node_top + 1))
    mp_fatal("internal error: no free-range node (I7: %llu of %llu)", (unsigned long long)r->node_top,
             (unsigned long long)r->node_cap);
  return r->node_top++;
}

static void node_release(mp_ranges *r, uint32_t i) {
  N(r, i)->start = MP_NONE;
  N(r, i)->next = r->node_free;
  r->node_free = i;
}

static void list_insert(mp_ranges *r, uint32_t i) {
  unsigned fl, sl;
  class_of(N(r, i)->size, &fl, &sl);
  uint32_t head = r->heads[fl][sl];
  N(r, i)->prev = NIL;
  N(r, i)->next = head;
  if (head != NIL) N(r, head)->prev = i;
  r->heads[fl][sl] = i;
  r->fl_bitmap |= 1u << fl;
  r->sl_bitmap[fl] |= 1u << sl;
}

static void list_remove(mp_ranges *r, uint32_t i) {
  unsigned fl, sl;
  mp_free_node *n = N(r, i);
  class_of(n->size, &fl, &sl);
  if (n->prev != NIL)
    N(r, n->prev)->next = n->next;
  else
    r->heads[fl][sl] = n->next;
  if (n->next != NIL) N(r, n->next)->prev = n->prev;
  if (r->heads[fl][sl] == NIL) {
    r->sl_bitmap[fl] &= ~(1u << sl);
    if (!r->sl_bitmap[fl]) r->fl_bitmap &= ~(1u << fl);
  }
}

static void bucket_insert(mp_ranges *r, uint32_t i) {
  uint32_t b = N(r, i)->start >> MP_BUCKET_SHIFT;
  N(r, i)->bucket_next = r->bucket_head[b];
  r->bucket_head[b] = i;
}

/* Walks one bucket: at most 64 nodes (free ranges are never adjacent). */
static uint32_t bucket_find(const mp_ranges *r, uint32_t start) {
  for (uint32_t i = r->bucket_head[start >> MP_BUCKET_SHIFT]; i != NIL; i = N(r, i)->bucket_next)
    if (N(r, i)->start == start) return i;
  return NIL;
}

static void bucket_remove(mp_ranges *r, uint32_t i) {
  uint32_t *link = &r->bucket_head[N(r, i)->start >> MP_BUCKET_SHIFT];
  while (*link != i) link = &N(r, *link)->bucket_next;
  *link = N(r, i)->bucket_next;
}

/* A free range [start, start+size) comes into being: node, bucket, list. */
/* Counters of listed or parked free ranges: the two kinds are kept apart. */
static inline void count_free(mp_ranges *r, bool parked, int64_t ranges, int64_t granules) {
  if (parked) {
    r->parked_ranges += (uint32_t)ranges;
    r->parked_granules += (uint32_t)granules;
  } else {
    r->free_ranges += (uint32_t)ranges;
    r->free_granules += (uint32_t)granules;
  }
}

/* A free range's node joins (or leaves) its size-class list unless parked. */
static inline void class_insert(mp_ranges *r, uint32_t i) {
  if (!N(r, i)->parked) list_insert(r, i);
}
static inline void class_remove(mp_ranges *r, uint32_t i) {
  if (!N(r, i)->parked) list_remove(r, i);
}

/* A free range [start, start+size) comes into being: node, bucket, list.
 * The granules are counted by the caller; the range by this. */
static uint32_t free_range_add(mp_ranges *r, uint32_t start, uint32_t size, bool parked) {
  uint32_t i = node_new(r);
  N(r, i)->start = start;
  N(r, i)->size = size;
  N(r, i)->parked = parked;
  bucket_insert(r, i);
  class_insert(r, i);
  count_free(r, parked, 1, 0);
  return i;
}

static void free_range_drop(mp_ranges *r, uint32_t i) {
  class_remove(r, i);
  bucket_remove(r, i);
  count_free(r, N(r, i)->parked, -1, 0);
  node_release(r, i);
}

/* A free range changes size in place (same start, same node). */
static void free_range_resize(mp_ranges *r, uint32_t i, uint32_t size) {
  class_remove(r, i);
  N(r, i)->size = size;
  class_insert(r, i);
}

/* ---- bits ---------------------------------------------------------------- */

/* A range (g is a start) is free iff it has a node: in-use ranges have none. */
static inline bool inuse_test(const mp_ranges *r, uint32_t g) { return bucket_find(r, g) == NIL; }
static inline bool is_start(const mp_ranges *r, uint32_t g) { return mp_bitmap_test(&r->starts, g); }

static inline uint32_t range_end(const mp_ranges *r, uint32_t g) {
  uint64_t e = mp_bitmap_next_set(&r->starts, (uint64_t)g + 1);
  return e == UINT64_MAX ? r->granules : (uint32_t)e;
}

/* ---- lifecycle ----------------------------------------------------------- */

int mp_ranges_init(mp_ranges *r, uint32_t granules) { return mp_ranges_init_pieces(r, granules, 0, 0); }

int mp_ranges_init_pieces(mp_ranges *r, uint32_t granules, uint32_t piece, uint32_t borders) {
  memset(r, 0, sizeof *r);
  size_t starts_bytes = mp_bitmap_bytes(granules);
  size_t buckets = ((size_t)granules >> MP_BUCKET_SHIFT) + 1;
  size_t bucket_bytes = (buckets * 4 + 7) & ~(size_t)7;
  size_t len = starts_bytes + bucket_bytes;
  char *m = mp_meta_map(len);
  if (!m) return -1;
  r->meta_base = m;
  r->meta_len = len;
  r->granules = granules;
  r->borders = borders;
  r->node_max = (uint32_t)((uint64_t)granules / 2 + 3); /* I2 without borders: never more */
  if (r->node_max < borders + 3) r->node_max = borders + 3;
  r->nodes_len = 16384;
  r->nodes = mp_meta_map(r->nodes_len);
  if (!r->nodes) {
    mp_meta_unmap(m, len);
    return -1;
  }
  r->node_cap = (uint32_t)(r->nodes_len / sizeof(mp_free_node));
  if (r->node_cap > r->node_max) r->node_cap = r->node_max;
  if (!ensure_nodes(r, 1, piece ? (granules + piece - 1) / piece : 0)) {
    mp_ranges_destroy(r);
    return -1;
  }
  mp_bitmap_init(&r->starts, granules, m);
  r->bucket_head = (uint32_t *)(m + starts_bytes);
  r->node_top = 1;
  r->node_free = NIL;
  if (piece == 0) {
    mp_bitmap_set(&r->starts, 0);
    free_range_add(r, 0, granules, false);
    r->free_granules = granules;
    return 0;
  }
  for (uint64_t g = 0; g < granules; g += piece) { /* in-use pieces: no nodes */
    mp_bitmap_set(&r->starts, g);
    r->inuse_ranges++;
  }
  return 0;
}

void mp_ranges_destroy(mp_ranges *r) {
  mp_meta_unmap(r->meta_base, r->meta_len);
  mp_meta_unmap(r->nodes, r->nodes_len);
  memset(r, 0, sizeof *r);
}

/* ---- allocation ---------------------------------------------------------- */

/* Start of an aligned n-granule block inside free node i, or MP_NONE. */
static inline uint32_t fit_in(const mp_ranges *r, uint32_t i, uint32_t n, uint32_t align, uint32_t phase) {
  uint64_t s = N(r, i)->start;
  uint64_t a = ((s + phase + align - 1) & ~(uint64_t)(align - 1)) - phase;
  return a + n <= s + N(r, i)->size ? (uint32_t)a : MP_NONE;
}

static uint32_t find_free(const mp_ranges *r, uint32_t n, uint32_t align, uint32_t phase, uint32_t *at) {
  unsigned fl, sl;
  uint64_t need = (uint64_t)n + align - 1;
  /* Good fit: any member of a class >= need serves. Two bitmap scans. */
  if (class_at_least(need, &fl, &sl)) {
    uint32_t slm = r->sl_bitmap[fl] & (~0u << sl);
    if (!slm) {
      uint32_t flm = fl + 1 < 32 ? r->fl_bitmap & (~0u << (fl + 1)) : 0;
      if (flm) {
        fl = (unsigned)__builtin_ctz(flm);
        slm = r->sl_bitmap[fl];
      }
    }
    if (slm) {
      uint32_t i = r->heads[fl][(unsigned)__builtin_ctz(slm)];
      *at = fit_in(r, i, n, align, phase);
      return i;
    }
  }
  /* Otherwise try a few nodes of need's own class (bounded: 8): lets a
   * request equal to the largest free range succeed. */
  if (need > UINT32_MAX) return NIL;
  class_of((uint32_t)need, &fl, &sl);
  uint32_t i = r->heads[fl][sl];
  for (int k = 0; k < 8 && i != NIL; k++, i = N(r, i)->next)
    if ((*at = fit_in(r, i, n, align, phase)) != MP_NONE) return i;
  return NIL;
}

/* [at, at+n) inside free node i (start, size) becomes an in-use range; the
 * lead and the tail stay free, of the node's kind. */
static void take_from(mp_ranges *r, uint32_t i, uint32_t start, uint32_t size, uint32_t at, uint32_t n) {
  bool parked = N(r, i)->parked;
  uint32_t lead = at - start, tail = size - lead - n;
  if (lead) {
    /* The block begins inside the range: the lead stays free. */
    free_range_resize(r, i, lead);
    mp_bitmap_set(&r->starts, at);
  } else {
    free_range_drop(r, i);
  }
  if (tail) {
    mp_bitmap_set(&r->starts, at + n);
    free_range_add(r, at + n, tail, parked);
  }
  count_free(r, parked, 0, -(int64_t)n);
  r->inuse_ranges++;
}

uint32_t mp_ranges_alloc(mp_ranges *r, uint32_t n, uint32_t align, uint32_t phase) {
  uint32_t at = MP_NONE;
  if (n == 0 || n > r->free_granules || !ensure_nodes(r, 1, 1)) return MP_NONE;
  uint32_t i = find_free(r, n, align, phase, &at);
  if (i == NIL || at == MP_NONE) return MP_NONE;

  take_from(r, i, N(r, i)->start, N(r, i)->size, at, n);
  return at;
}

/* ---- free ---------------------------------------------------------------- */

int mp_ranges_classify(const mp_ranges *r, uint32_t g) {
  if (g >= r->granules || !is_start(r, g)) return MP_RANGES_NOT_A_START;
  if (bucket_find(r, g) != NIL) return MP_RANGES_NOT_IN_USE;
  return MP_RANGES_OK;
}

int mp_ranges_free(mp_ranges *r, uint32_t g) { return mp_ranges_free_as(r, g, false, NULL); }

int mp_ranges_free_as(mp_ranges *r, uint32_t g, bool parked, mp_extent *merged) {
  int st = mp_ranges_classify(r, g);
  if (st != MP_RANGES_OK) return st;
  uint32_t end = range_end(r, g);
  uint32_t start = g, size = end - g;
  r->inuse_ranges--;
  count_free(r, parked, 0, size);

  uint32_t i = end < r->granules ? bucket_find(r, end) : NIL;
  if (i != NIL && N(r, i)->parked == parked) { /* merge the next range */
    size += N(r, i)->size;
    free_range_drop(r, i);
    mp_bitmap_clear(&r->starts, end);
  }
  i = NIL;
  if (g > 0) {
    uint32_t p = (uint32_t)mp_bitmap_prev_set(&r->starts, g - 1);
    i = bucket_find(r, p);
    if (i != NIL && N(r, i)->parked != parked) i = NIL;
  }
  if (i != NIL) { /* merge into the previous range: its node stays */
    free_range_resize(r, i, N(r, i)->size + size);
    mp_bitmap_clear(&r->starts, g);
  } else {
    i = free_range_add(r, start, size, parked);
  }
  if (merged) *merged = (mp_extent){N(r, i)->start, N(r, i)->size};
  return MP_RANGES_OK;
}

bool mp_ranges_carve(mp_ranges *r, uint32_t g, uint32_t n) {
  if (n == 0 || g >= r->granules || n > r->granules - g) return false;
  uint32_t s = (uint32_t)mp_bitmap_prev_set(&r->starts, g);
  uint32_t i = bucket_find(r, s);
  if (i == NIL || (uint64_t)g + n > (uint64_t)s + N(r, i)->size) return false;
  bool lead = g > s, tail = (uint64_t)g + n < (uint64_t)s + N(r, i)->size;
  if (!ensure_nodes(r, lead && tail ? 1 : lead || tail ? 0 : -1, 1)) return false;
  take_from(r, i, s, N(r, i)->size, g, n);
  return true;
}

bool mp_ranges_split(mp_ranges *r, uint32_t g) {
  if (g == 0 || g >= r->granules || is_start(r, g)) return false;
  if (!inuse_test(r, (uint32_t)mp_bitmap_prev_set(&r->starts, g))) return false;
  mp_bitmap_set(&r->starts, g); /* no node: both halves stay in use */
  r->inuse_ranges++;
  return true;
}

/* Parked node i merges with parked neighbours (I2 for the parked kind). */
static void merge_parked(mp_ranges *r, uint32_t i) {
  uint32_t end = N(r, i)->start + N(r, i)->size;
  uint32_t j = end < r->granules ? bucket_find(r, end) : NIL;
  if (j != NIL && N(r, j)->parked) {
    N(r, i)->size += N(r, j)->size;
    free_range_drop(r, j);
    mp_bitmap_clear(&r->starts, end);
  }
  uint32_t s = N(r, i)->start;
  j = s > 0 ? bucket_find(r, (uint32_t)mp_bitmap_prev_set(&r->starts, s - 1)) : NIL;
  if (j != NIL && N(r, j)->parked) {
    N(r, j)->size += N(r, i)->size;
    free_range_drop(r, i);
    mp_bitmap_clear(&r->starts, s);
  }
}

void mp_ranges_park_all(mp_ranges *r) {
  for (unsigned fl = 0; fl < MP_FL_COUNT; fl++)
    for (unsigned sl = 0; sl < MP_SL_COUNT; sl++)
      while (r->heads[fl][sl] != NIL) {
        uint32_t i = r->heads[fl][sl];
        list_remove(r, i);
        N(r, i)->parked = true;
        count_free(r, false, -1, -(int64_t)N(r, i)->size);
        count_free(r, true, 1, N(r, i)->size);
        merge_parked(r, i); /* a grandchild's listed range may border its parent's parked one */
      }
}

void mp_ranges_walk_in(const mp_ranges *r, uint32_t g0, uint32_t g1, mp_range_fn fn, void *ctx) {
  if (g0 >= g1 || g0 >= r->granules) return;
  if (g1 > r->granules) g1 = r->granules;
  uint32_t g = (uint32_t)mp_bitmap_prev_set(&r->starts, g0);
  while (g < g1) {
    uint32_t end = range_end(r, g);
    uint32_t s = g < g0 ? g0 : g, e = end > g1 ? g1 : end;
    fn(ctx, s, e - s, inuse_test(r, g));
    g = end;
  }
}

struct bytes_walk {
  bool with_free;
  mp_bytes_fn fn;
  void *ctx;
};

static void to_bytes(void *vctx, uint32_t start, uint32_t size, bool in_use) {
  struct bytes_walk *w = vctx;
  if (in_use || w->with_free) w->fn(w->ctx, (size_t)start << MP_GRANULE_SHIFT, (size_t)size << MP_GRANULE_SHIFT);
}

void mp_ranges_walk_bytes(const mp_ranges *r, uint32_t g0, uint32_t g1, bool with_free, mp_bytes_fn fn, void *ctx) {
  struct bytes_walk w = {with_free, fn, ctx};
  mp_ranges_walk_in(r, g0, g1, to_bytes, &w);
}

enum mp_range_kind mp_ranges_kind_at(const mp_ranges *r, uint32_t g, mp_extent *range) {
  uint32_t s = (uint32_t)mp_bitmap_prev_set(&r->starts, g);
  uint32_t i = bucket_find(r, s);
  *range = (mp_extent){s, range_end(r, s) - s};
  return i == NIL ? MP_RANGE_IN_USE : N(r, i)->parked ? MP_RANGE_PARKED : MP_RANGE_LISTED;
}

/* ---- size and resize ----------------------------------------------------- */

uint32_t mp_ranges_size(const mp_ranges *r, uint32_t g) { return range_end(r, g) - g; }

bool mp_ranges_resize(mp_ranges *r, uint32_t g, uint32_t n) {
  uint32_t end = range_end(r, g), size = end - g;
  if (n == 0) return false;
  if (n < size) {
    /* Shrink: the cut-off tail becomes an in-use range, then is freed (and
     * so coalesces with a free successor). */
    if (!ensure_nodes(r, 1, 0)) return false;
    mp_bitmap_set(&r->starts, g + n); /* no node: an in-use range */
    r->inuse_ranges++;
    mp_ranges_free(r, g + n);
    return true;
  }
  if (n == size) return true;
  uint32_t i = end < r->granules ? bucket_find(r, end) : NIL;
  if (i == NIL || N(r, i)->parked) return false; /* grows into listed free space only */
  uint32_t next_size = N(r, i)->size;
  if ((uint64_t)size + next_size < n) return false;
  uint32_t rest = size + next_size - n;
  free_range_drop(r, i);
  mp_bitmap_clear(&r->starts, end);
  if (rest) {
    mp_bitmap_set(&r->starts, g + n);
    free_range_add(r, g + n, rest, false);
  }
  r->free_granules -= n - size;
  return true;
}

/* ---- inspection ---------------------------------------------------------- */

uint32_t mp_ranges_largest_free(const mp_ranges *r) {
  if (!r->fl_bitmap) return 0;
  unsigned fl = fls32(r->fl_bitmap);
  unsigned sl = fls32(r->sl_bitmap[fl]);
  uint32_t best = 0;
  for (uint32_t i = r->heads[fl][sl]; i != NIL; i = N(r, i)->next)
    if (N(r, i)->size > best) best = N(r, i)->size;
  return best;
}

void mp_ranges_walk(const mp_ranges *r, mp_range_fn fn, void *ctx) {
  uint32_t g = 0;
  while (g < r->granules) {
    uint32_t end = range_end(r, g);
    fn(ctx, g, end - g, inuse_test(r, g));
    g = end;
  }
}

size_t mp_ranges_meta_bytes(const mp_ranges *r) { return r->meta_len + (size_t)r->node_top * sizeof(mp_free_node); }

#define VIOLATION(k, ...)                         \
  do {                                            \
    if (why) mp_format(why, whylen, __VA_ARGS__); \
    return k;                                     \
  } while (0)

int mp_ranges_check(const mp_ranges *r, char *why, size_t whylen) {
  if (mp_bitmap_check(&r->starts)) VIOLATION(5, "start bitmap summary levels disagree with level 0");
  if (r->granules && !is_start(r, 0)) VIOLATION(1, "granule 0 is not a range start");
  uint64_t sum = 0, nfree = 0, ninuse = 0, freeg = 0, nparked = 0, parkedg = 0;
  int prev_kind = -1; /* -1 in use, 0 listed free, 1 parked free */
  for (uint32_t g = 0; g < r->granules;) {
    uint32_t end = range_end(r, g);
    uint32_t size = end - g;
    bool used = inuse_test(r, g);
    int kind = -1;
    if (!used) {
      uint32_t i = bucket_find(r, g);
      kind = N(r, i)->parked;
      if (prev_kind == kind) VIOLATION(2, "free range at %llu follows a free range of its kind", (unsigned long long)g);
      if (N(r, i)->size != size)
        VIOLATION(3, "free range at %llu: node size %llu, real size %llu", (unsigned long long)g,
                  (unsigned long long)N(r, i)->size, (unsigned long long)size);
      if (kind) {
        nparked++;
        parkedg += size;
      } else {
        nfree++;
        freeg += size;
      }
    } else {
      ninuse++;
    }
    prev_kind = kind;
    sum += size;
    g = end;
  }
  /* Bucket chains hold only listed nodes, each in the bucket of its start. */
  uint64_t chained = 0;
  for (uint32_t b = 0; b <= (r->granules >> MP_BUCKET_SHIFT); b++)
    for (uint32_t j = r->bucket_head[b]; j != NIL; j = N(r, j)->bucket_next) {
      if (++chained > nfree + nparked) VIOLATION(4, "more nodes in buckets than free ranges");
      if ((N(r, j)->start >> MP_BUCKET_SHIFT) != b)
        VIOLATION(4, "node at %llu in bucket %llu", (unsigned long long)N(r, j)->start, (unsigned long long)b);
    }
  if (chained != nfree + nparked)
    VIOLATION(4, "%llu nodes in buckets for %llu free ranges", (unsigned long long)chained,
              (unsigned long long)(nfree + nparked));
  if (sum != r->granules)
    VIOLATION(1, "range sizes sum to %llu, region has %llu", (unsigned long long)sum, (unsigned long long)r->granules);
  /* Every listed node is a live free range; list links are consistent. */
  uint64_t listed = 0;
  for (unsigned fl = 0; fl < MP_FL_COUNT; fl++) {
    for (unsigned sl = 0; sl < MP_SL_COUNT; sl++) {
      uint32_t h = r->heads[fl][sl];
      bool marked = ((r->fl_bitmap >> fl) & 1) && ((r->sl_bitmap[fl] >> sl) & 1);
      if ((h != NIL) != marked)
        VIOLATION(3, "class bitmap wrong for list %llu/%llu", (unsigned long long)fl, (unsigned long long)sl);
      uint32_t prev = NIL;
      for (uint32_t j = h; j != NIL; prev = j, j = N(r, j)->next) {
        if (N(r, j)->prev != prev)
          VIOLATION(3, "list %llu/%llu: broken prev link", (unsigned long long)fl, (unsigned long long)sl);
        if (++listed > nfree) VIOLATION(3, "more listed nodes than free ranges");
        uint32_t s = N(r, j)->start;
        if (s >= r->granules || !is_start(r, s) || inuse_test(r, s) || N(r, j)->parked)
          VIOLATION(3, "listed node at %llu is not a free range", (unsigned long long)s);
        /* Listed nodes are distinct free ranges' own nodes (the bucket finds
         * them) in their class: with the counts equal, every free range is
         * listed exactly once. O(ranges + nodes), no per-range list walk. */
        if (bucket_find(r, s) != j) VIOLATION(3, "listed node at %llu is not its range's node", (unsigned long long)s);
        unsigned cf, cs;
        class_of(N(r, j)->size, &cf, &cs);
        if (cf != fl || cs != sl)
          VIOLATION(3, "node at %llu is in list %llu/%llu, its class is %llu/%llu", (unsigned long long)s,
                    (unsigned long long)fl, (unsigned long long)sl, (unsigned long long)cf, (unsigned long long)cs);
      }
      if (r->sl_bitmap[fl] >> MP_SL_COUNT) VIOLATION(3, "stray sl bits");
    }
  }
  if (listed != nfree)
    VIOLATION(3, "%llu listed nodes for %llu free ranges", (unsigned long long)listed, (unsigned long long)nfree);
  if (nparked != r->parked_ranges || parkedg != r->parked_granules)
    VIOLATION(6, "counters: parked %llu/%llu ranges, %llu/%llu granules", (unsigned long long)r->parked_ranges,
              (unsigned long long)nparked, (unsigned long long)r->parked_granules, (unsigned long long)parkedg);
  if (nfree != r->free_ranges || ninuse != r->inuse_ranges || freeg != r->free_granules)
    VIOLATION(6, "counters: free %llu/%llu ranges, in use %llu/%llu, free granules %llu/%llu",
              (unsigned long long)r->free_ranges, (unsigned long long)nfree, (unsigned long long)r->inuse_ranges,
              (unsigned long long)ninuse, (unsigned long long)r->free_granules, (unsigned long long)freeg);
  if (nodes_needed(r, 0, 0) > r->node_cap && r->node_cap < r->node_max)
    VIOLATION(7, "%llu nodes for frees that may need %llu", (unsigned long long)r->node_cap,
              (unsigned long long)nodes_needed(r, 0, 0));
  return 0;
}
