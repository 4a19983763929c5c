/* mp_types.h - the whole data model of libmempool, top-down.
 *
 *   configuration  (mp_config)  what the environment asked for
 *   region         (mp_region)  the mapped window of the device: user data only
 *   ranges         (mp_ranges)  address-ordered ranges of 16-byte granules,
 *                               free or in use; metadata kept OUT of the region
 *   pool           (mp_pool)    region + ranges + lock + statistics
 *   alloc          (mp_alloc.h) malloc-family semantics: pool first, jemalloc next
 *   interposer     (preload/)   exported symbols, lazy init, fork handlers
 *
 * Nothing in this header allocates or includes a higher layer.
 */
#ifndef MP_TYPES_H
#define MP_TYPES_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MP_GRANULE_SHIFT 4u /* 16 bytes = max_align_t */
#define MP_GRANULE       (1u << MP_GRANULE_SHIFT)
#define MP_MAX_GRANULES  0xFFFFFFF0u /* granule indexes are uint32 */
/* The largest region: 64 GiB - 256 bytes (granule indexes are uint32); with
 * a 32-bit size_t, 2 GiB: the region is one reservation of the address space
 * (3 GiB for a process on 32-bit ARM), beside the program and its libraries.
 * The device offset is 64-bit on every target (LPAE: RAM above 4 GiB). */
#if SIZE_MAX > UINT32_MAX
#define MP_MAX_REGION     ((uint64_t)MP_MAX_GRANULES << MP_GRANULE_SHIFT)
#define MP_MAX_REGION_WHY "64 GiB - 256"
#else
#define MP_MAX_REGION     ((uint64_t)1 << 31)
#define MP_MAX_REGION_WHY "2 GiB on a 32-bit target"
#endif
#define MP_NONE UINT32_MAX /* "no granule" / "no node" */

#define MP_GUARD_FREED_BYTE 0xFDu /* MEMPOOL_CHECK: free memory holds this pattern */

/* ---- configuration ------------------------------------------------------ */

#define MP_DEFAULT_DEVICE "/dev/mem"
#define MP_DEFAULT_BASE   0x10000000ull
#define MP_DEFAULT_HIGH   0x1DFFEFFFull

enum mp_stats_mode { MP_STATS_OFF, MP_STATS_STDERR, MP_STATS_PATH };
enum mp_stats_format { MP_STATS_TEXT, MP_STATS_JSON };

/* What the pool serves and how strictly: copied into each pool. */
typedef struct mp_policy {
  uint64_t min_size, max_size; /* only requests in [min, max] go to the region */
  bool strict;                 /* no jemalloc fallback for those requests */
  bool check;                  /* debug: freed-block pattern and canaries */
} mp_policy;

typedef struct mp_config {
  const char *device; /* path, or "anon"; points into the environment */
  uint64_t base;      /* first byte of the region (device offset) */
  uint64_t high;      /* last byte of the region, inclusive */
  bool sync;          /* O_SYNC on /dev/mem (uncached on x86) */
  enum mp_stats_mode stats;
  const char *stats_path; /* when stats == MP_STATS_PATH */
  enum mp_stats_format stats_format;
  const char *map_path;   /* MEMPOOL_MAP: region map written at exit */
  bool share;             /* MEMPOOL_SHARE: claim chunks (1) or the whole window (0) */
  uint64_t chunk;         /* MEMPOOL_CHUNK: chunk bytes; 0 = derived from the window */
  const char *sysfs_root; /* MEMPOOL_SYSFS_ROOT (tests): where /sys is; NULL = /sys */
  bool window_default;    /* neither MEMPOOL_BASE nor MEMPOOL_HIGH set (u-dma-buf: the whole buffer) */
  int log_level;          /* 0 silent .. 3 debug; default 1 (problems) */
  const char *log_path;   /* MEMPOOL_LOG_FILE, else stderr */
  mp_policy policy;
} mp_config;

/* ---- region ------------------------------------------------------------- */

/* No device address: what mempool_phys returns on failure. A device's
 * window never reaches it (u-dma-buf's phys_addr + size is checked). */
#define MP_NO_PHYS UINT64_MAX

/* How the CPU's caches and a device meet on the region (the sync calls). */
enum mp_dma {
  MP_DMA_CPU = 0,  /* cacheable mapping: cache maintenance instructions (cacheline.h) */
  MP_DMA_COHERENT, /* uncached (/dev/mem with O_SYNC) or coherent (u-dma-buf dma_coherent): nothing to do */
  MP_DMA_SYSFS,    /* cached u-dma-buf: its sysfs sync_for_cpu / sync_for_device controls */
};

typedef struct mp_region {
  uintptr_t base;      /* virtual address of the first byte (chunk-aligned) */
  size_t size;         /* usable bytes, a multiple of MP_GRANULE */
  size_t map_len;      /* bytes reserved (page-rounded) */
  uint64_t dev_offset; /* device offset of base (the physical address) */
  int fd;              /* the device while it is opened; -1 after (no descriptor is kept) */
  int open_flags;      /* how fd was opened (a fork child re-opens alike) */
  dev_t dev;           /* what fd must still be: the program may close it */
  ino_t ino;
  bool shared;            /* device-backed: fork must give the child a copy */
  bool is_file;           /* a regular file standing in for a device */
  bool in_memory;         /* ... on tmpfs: its pages, once there, are its blocks (region.c: give_blocks) */
  bool anon;              /* "anon": no device, no physical addresses */
  uint8_t dma;            /* enum mp_dma */
  uint64_t bus_offset;    /* device offset + bus_offset = the bus address: u-dma-buf phys_addr, dax resource, else 0 */
  dev_t rdev;             /* a character device's number (its sysfs directory), else 0 */
  const char *sysfs_root; /* where /sys is (MEMPOOL_SYSFS_ROOT), NULL = /sys */
  const char *device;
} mp_region;

/* ---- ranges ------------------------------------------------------------- */

/* Hierarchical bitmap: level 0 has a bit per item, level k+1 a bit per
 * non-zero 64-bit word of level k. Find-next/prev-set cost O(levels). */
#define MP_BITMAP_MAX_LEVELS 7
typedef struct mp_bitmap {
  uint64_t *level[MP_BITMAP_MAX_LEVELS];
  uint64_t nbits[MP_BITMAP_MAX_LEVELS];
  unsigned nlevels;
} mp_bitmap;

/* A free range. In-use ranges have no node at all: a start bit without a
 * node says "in use", the size is the distance to the next start. */
typedef struct mp_free_node {
  uint32_t start, size; /* in granules */
  uint32_t prev, next;  /* segregated free list (size class); unused when parked */
  uint32_t bucket_next; /* chain of free nodes starting in the same bucket */
  bool parked;          /* free but never allocated from (a fork child's inherited
                           copy): on no size-class list, merges only with parked */
} mp_free_node;

/* A run of granules: what a free coalesced into. */
typedef struct mp_extent {
  uint32_t start, size;
} mp_extent;

#define MP_SL_LOG2      4u /* 16 sub-classes per power of two */
#define MP_SL_COUNT     (1u << MP_SL_LOG2)
#define MP_FL_COUNT     29u /* covers sizes up to 2^32 granules */
#define MP_BUCKET_SHIFT 7u  /* a bucket = 128 granules = 2 KiB */

typedef struct mp_ranges {
  uint32_t granules;     /* region size in granules */
  mp_bitmap starts;      /* bit set where a range begins */
  uint32_t *bucket_head; /* per bucket: first free node starting in it */
  mp_free_node *nodes;   /* node arena (index 0 unused = null), a mapping of its own */
  size_t nodes_len;      /* bytes mapped for it */
  uint32_t node_cap, node_top, node_free;
  uint32_t node_max;                                 /* the worst case: the arena never grows past it */
  uint32_t borders;                                  /* places a listed and a parked free range may touch (I7) */
  uint32_t fl_bitmap;                                /* non-empty first-level classes */
  uint32_t sl_bitmap[MP_FL_COUNT];                   /* non-empty second-level classes */
  uint32_t heads[MP_FL_COUNT][MP_SL_COUNT];          /* free list heads */
  uint32_t free_granules, free_ranges, inuse_ranges; /* listed (allocatable) free */
  uint32_t parked_granules, parked_ranges;
  void *meta_base; /* one private mapping holds all of the above */
  size_t meta_len;
} mp_ranges;

/* Visitor for range walks: start and size in granules. */
typedef void (*mp_range_fn)(void *ctx, uint32_t start, uint32_t size, bool in_use);
/* An extent of the region in bytes (offsets from its start): what a copy
 * of it must carry (region.h). */
typedef void (*mp_bytes_fn)(void *ctx, size_t off, size_t len);

/* ---- small objects: spans and thread caches ----------------------------- */

/* A span is an in-use range of one size class's objects, made of one or
 * more 64 KiB units (MP_SPAN_SIZE: the classes up to 16 KiB fit one unit,
 * a 256 KiB class's span is 16), each aligned to 64 KiB of region offset.
 * Its state lives out of band: the span table indexed by offset >>
 * MP_SPAN_SHIFT (every unit of a span has its class byte and the index of
 * the span's first unit), and the held map over the whole region:
 *   avail bit set  = the object is free in the span (its span's bitmap, by
 *                    object index, changed under the class lock)
 *   held byte set  = the object is held by the user (any thread frees):
 *                    byte off >> s of the held map of its class's level s
 *                    (sizeclass.h: mp_class_held_shift), where off is the
 *                    object's start
 *   neither        = the object sits in some thread's cache.
 * A class's s is the exponent of the largest power of two dividing its
 * size (16 at most): its objects' offsets are multiples of 2^s, and a 2^s
 * block holds at most one start. The held byte makes double frees and
 * interior pointers detectable in O(1), without a division (a pointer that
 * is not a multiple of 2^s is no start; one that is has the byte of the
 * object starting there, or a clear one), and it is a plain byte store on
 * the hit paths (span.h).
 * Classes up to MP_HIT_MAX are looked up by a table (malloc's inlined hit),
 * the medium ones above it by their size's leading bits (malloc's slow path,
 * the same caches). */
#define MP_SPAN_SHIFT     16u
#define MP_SPAN_SIZE      (1u << MP_SPAN_SHIFT)
#define MP_HELD_SHIFT_MIN MP_GRANULE_SHIFT /* the held map's levels: 2^4 .. 2^16 bytes a byte */
#define MP_HELD_SHIFT_MAX 16u
#define MP_HELD_LEVELS    (MP_HELD_SHIFT_MAX - MP_HELD_SHIFT_MIN + 1)
/* The region's base address is a multiple of this (region.c): the held
 * map is then addressed by the objects' addresses, every level's byte
 * a >> s of its biased base (span.h). */
#define MP_HELD_BASE_ALIGN   ((uintptr_t)1 << MP_HELD_SHIFT_MAX)
#define MP_HIT_CLASSES       32u
#define MP_HIT_MAX           8192u
#define MP_MEDIUM_CLASSES    20u /* four per doubling, 10 KiB .. 256 KiB */
#define MP_SMALL_CLASSES     (MP_HIT_CLASSES + MP_MEDIUM_CLASSES)
#define MP_SMALL_MAX         (MP_HIT_MAX << (MP_MEDIUM_CLASSES / 4))
#define MP_SPAN_UNITS_MAX    16u          /* the largest span: 1 MiB, four 256 KiB objects */
#define MP_MEDIUM_MIN_REGION (128u << 20) /* smaller regions serve the medium sizes as range blocks */
#define MP_TCACHE_MAX        122u         /* a bin is then 1 KiB: its address is a shift */
_Static_assert(MP_SMALL_MAX == 256u << 10, "the medium classes end at 256 KiB");

typedef struct mp_span {
  uint16_t nobj, navail; /* objects in the span, of which free in it */
  uint32_t head;         /* the span's first unit (its own index for the first) */
  uint32_t prev, next;   /* partial list of the class (span index + 1; 0 = none): first units only */
  uint64_t *avail;       /* ceil(nobj / 64) words, from the bitmap arena */
} mp_span;

#define MP_XFER_MAX 128u /* objects a class's transfer stack holds (span.h) */

/* A class's lock and list heads, a cache line of their own (two on
 * aarch64; the classes' 52 in 4 KiB: a fork, which takes and gives back
 * every lock, writes one page of them, not fourteen); its transfer stack
 * is in mp_small.xfer. */
typedef struct mp_class {
  pthread_mutex_t lock;
  uint32_t partial;       /* spans with avail objects (span index + 1) */
  uint32_t spans;         /* spans of this class */
  uint32_t empty;         /* the one empty span kept (span index + 1; 0 = none): on the partial list */
  uint32_t xfer_n;        /* objects in the transfer stack */
  uint64_t *free_bitmaps; /* released bitmap blocks of this class's size */
} __attribute__((aligned(64))) mp_class;
_Static_assert(sizeof(mp_class) == 64 || (sizeof(pthread_mutex_t) > 40 && sizeof(mp_class) == 128),
               "a class's lock and heads fill one line (two where a mutex is 48 bytes: aarch64)");

typedef struct mp_tcache_bin {
  uint64_t allocs, frees; /* this thread's objects of the class (statistics, GC): on the hit's line */
  uintptr_t n;            /* a word: the hit's index needs no zero-extension */
  uintptr_t held;         /* the class's held map, biased (span.h: mp_held_by_address) */
  uint32_t cap;           /* <= MP_TCACHE_MAX; 0 while a reclaimer has the bin (tcache.h) */
  uint8_t held_shift;     /* the class's level and its mask (sizeclass.h), copied for the hit paths */
  uint16_t held_mask;
  void *items[(1024 - 2 * sizeof(uint64_t) - 2 * sizeof(uintptr_t) - 8) /
              sizeof(void *)]; /* MP_TCACHE_MAX, more on 32-bit */
} mp_tcache_bin;
_Static_assert(sizeof(mp_tcache_bin) == 1024, "a bin's address is the class shifted");
_Static_assert(sizeof(((mp_tcache_bin *)0)->items) / sizeof(void *) >= MP_TCACHE_MAX, "a bin holds its cap");

struct mp_pool;
typedef struct mp_tcache {
  uintptr_t base, size;        /* the pool's region, copied for the hit paths (mp_tcache_none: 0, 0) */
  const uint8_t *span_class;   /* the pool's span table, copied */
  uint32_t busy;               /* the hit path's mark for reclaimers (tcache.h), on the line of the above */
  struct mp_pool *pool;        /* the pool (for the slow paths) */
  struct mp_tcache *next_all;  /* every cache ever made (for statistics) */
  struct mp_tcache *next_free; /* recycled caches of exited threads */
  mp_tcache_bin bins[MP_SMALL_CLASSES];
  /* Reclaim by other threads (tcache.h): the lock of every other change of
   * the bins, and whether a live thread owns it. */
  pthread_mutex_t lock; /* the owner's slow path and a reclaimer change the bins under it */
  bool owned;           /* a live thread's (atomic): a reclaimer visits it */
  bool reclaiming;      /* locked by the reclaimer of the moment (under the steal lock) */
  uint32_t slow_events; /* refills and flushes since the last GC */
  uint64_t ready;       /* bins set up (a fresh cache's are, at their first slow path: tcache.c) */
  uint64_t gc_allocs[MP_SMALL_CLASSES], gc_frees[MP_SMALL_CLASSES]; /* the counters at the last GC */
  uint8_t fill[MP_SMALL_CLASSES]; /* the next refill's batch: grows by half on each refill, up to cap / 2 */
} mp_tcache;

typedef struct mp_small {
  bool enabled;
  uint32_t max_size;   /* the largest request spans serve: MP_SMALL_MAX, or MP_HIT_MAX in a small region */
  uint8_t *span_class; /* per 64 KiB unit of region: 0, or class + 1 for a unit of a span */
  mp_span *spans;      /* per 64 KiB unit of region (lazily touched) */
  size_t nspans;
  uint64_t *bitmap_arena;                      /* span bitmaps, bump-allocated (lazily touched) */
  size_t bitmap_words, bitmap_used;            /* capacity, used (atomic) */
  size_t bitmap_committed;                     /* words usable (atomic; the rest is PROT_NONE) */
  uint8_t *held;                               /* the held map, level after level (PROT_NONE until a span needs it) */
  size_t held_level[MP_HELD_LEVELS];           /* byte offset of each level in held */
  uintptr_t held_by_address[MP_SMALL_CLASSES]; /* each class's level, biased (span.h) */
  uint64_t *held_pages;                        /* a bit per 64 KiB group of held: committed (atomic) */
  mp_class classes[MP_SMALL_CLASSES];
  void *xfer[MP_SMALL_CLASSES]
            [MP_XFER_MAX];     /* each class's transfer stack: objects one cache flushed, for the next refill of any */
  pthread_mutex_t tcache_lock; /* guards the cache lists below */
  mp_tcache *all_tcaches, *free_tcaches;
  char *tcache_chunk; /* metadata chunk caches are carved from */
  size_t tcache_chunk_left;
  pthread_key_t key; /* thread exit flushes the cache */
  uint64_t retired_allocs, retired_frees, retired_bytes_alloc, retired_bytes_freed;
  void *meta_base;
  size_t meta_len;
  pthread_mutex_t steal_lock; /* one reclaimer of other threads' caches at a time */
  int barrier;                /* enum in tcache.c: which membarrier(2) command works, once known */
  uint64_t reclaim_quiet_ns;  /* after a reclaim that did not help: none before this (monotonic) */
} mp_small;

/* ---- chunks: the window shared by processes ------------------------------ */

/* The window is cut into chunks; a process uses only the chunks it holds
 * (an OFD lock on their bytes of the device). See chunks.h. */
#define MP_CHUNK_MIN         (64u << 10)
#define MP_CHUNK_MAX         (1u << 30)
#define MP_CHUNK_DEFAULT_MAX (2u << 20)    /* windows of 256 MiB and more */
#define MP_CHUNKS_PER_WINDOW 128u          /* smaller windows: window / 128, at least MIN */
#define MP_CHUNK_DECAY_NS    1000000000ull /* whole free chunks kept for a recent peak: 1-2 s */
_Static_assert(MP_CHUNK_MIN % MP_SPAN_SIZE == 0, "a span never crosses a chunk boundary");
_Static_assert((MP_CHUNK_MIN & (MP_CHUNK_MIN - 1)) == 0, "chunk sizes are powers of two");

enum mp_chunk_state {
  MP_CHUNK_AWAY = 0,  /* not ours: reserved addresses, inside in-use ranges of away chunks only */
  MP_CHUNK_HELD,      /* locked and mapped: serves allocations */
  MP_CHUNK_INHERITED, /* a fork child's private copy of a parent's chunk: frees only */
};

typedef struct mp_chunks {
  unsigned shift;        /* log2 of the chunk size */
  uint32_t count;        /* chunks in the window (the last may be partial) */
  uint32_t granules;     /* granules per chunk */
  bool fixed;            /* all held from the start, never claimed or released (anon, exclusive) */
  uint8_t *state;        /* per chunk: enum mp_chunk_state */
  uint32_t *live;        /* per inherited chunk: granules still in use */
  uint64_t *whole_free;  /* per held chunk: a bit when one free range covers it */
  uintptr_t *shadow;     /* per held chunk with blocks: its fork snapshot (anonymous, chunk-sized), or 0 */
  uint64_t shadow_bytes; /* bytes in use the last snapshot carried */
  bool no_snapshot;      /* mlockall(MCL_FUTURE): a snapshot would be locked whole */
  uint32_t held, inherited, whole_free_count;
  uint32_t away_ranges; /* in-use ranges that stand for chunks not held */
  uint64_t held_bytes, inherited_bytes;
  uint64_t mapped_peak;     /* highest held_bytes + inherited_bytes so far */
  uint32_t search_from;     /* next-fit start of the claim search */
  uint32_t peak, prev_peak; /* most chunks with blocks in this decay period, the last */
  uint64_t period_start;    /* ns, monotonic */
  bool said_full;           /* "no free chunk" logged (level 2) */
  uint32_t full_run;        /* runs this long found no room until full_until (ns, monotonic) */
  uint64_t full_until;
  void *meta_base;
  size_t meta_len;
} mp_chunks;

/* ---- pool --------------------------------------------------------------- */

typedef struct mp_stats {
  uint64_t pool_allocs, pool_frees;      /* range-level user blocks */
  uint64_t pool_bytes;                   /* bytes of range-level user blocks */
  uint64_t region_used, region_peak;     /* bytes of in-use ranges (spans included) */
  uint64_t pool_failed;                  /* requests the region could not serve */
  uint64_t chunk_claims, chunk_releases; /* chunks locked and unlocked */
  uint64_t no_chunk;                     /* claims that found every chunk held by others */
} mp_stats;

typedef struct mp_pool {
  bool fast_small; /* small requests take the thread-cache fast path */
  bool detached;   /* fork child without a private copy: serves nothing */
  mp_policy policy;
  mp_region region;
  mp_ranges ranges;
  mp_chunks chunks;     /* which parts of the window this process holds */
  pthread_mutex_t lock; /* the range layer's (chunks.h): ranges, chunks, stats; taken after a class lock */
  mp_stats stats;       /* the region's: changed by chunks.c under lock (pool_failed: atomic, pool.c) */
  mp_small small;       /* size-class spans and thread caches (optional) */
  int fork_pipe[2];     /* the parent waits until the child has its copy */
  bool fork_locked;     /* prepare got every lock (not so: fork interrupted the pool) */
  bool fork_ranges;     /* prepare got the pool lock: the ranges and chunks are whole */
  bool fork_single;     /* the process had one thread: prepare only tried the locks */
  bool fork_snap;       /* prepare took the snapshot the child adopts (chunks.h) */
} mp_pool;

#endif
