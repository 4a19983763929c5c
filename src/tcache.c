/* tcache.c - thread caches: creation, refill, flush, GC, reclaim, thread
 * exit (see tcache.h). */
#define _GNU_SOURCE
#include "tcache.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "msg.h"
#include "region.h"

mp_tcache mp_tcache_none; /* all zero: empty and full bins, an empty region */
__thread mp_tcache *mp_t_tcache __attribute__((tls_model("initial-exec"))) = &mp_tcache_none;
/* The calling thread's own cache (NULL until its first small request), and
 * whether the interposer keeps it out of the hit paths. */
static __thread mp_tcache *t_own __attribute__((tls_model("initial-exec")));
static __thread bool t_out __attribute__((tls_model("initial-exec")));
/* Set once the thread's cache was flushed at thread exit: from then on the
 * thread's small objects go straight to the spans (no new cache to leak). */
static __thread bool t_cache_dead __attribute__((tls_model("initial-exec")));

#define CHUNK (256u << 10)

/* Which membarrier(2) command the reclaimer uses (mp_small.barrier). */
enum { BARRIER_UNKNOWN = 0, BARRIER_PRIVATE, BARRIER_GLOBAL, BARRIER_NONE };

static void thread_exit(void *arg);
static int barrier_kind(mp_small *sm);

/* membarrier's registration is made here, at the pool's start, while the
 * process usually has one thread: it then costs a system call (5 us),
 * against a synchronize_rcu (4 ms here) once there are others. A fork
 * child keeps it (the kernel copies it with the address space); exec
 * drops it, and the new program's pool makes it again. */
int mp_tcache_init(mp_pool *p) {
  pthread_mutex_init(&p->small.steal_lock, NULL);
  barrier_kind(&p->small);
  return pthread_key_create(&p->small.key, thread_exit) == 0 ? 0 : -1;
}

/* A cache of an exited thread, or a fresh one (lock made, listed; *fresh:
 * all else zero). */
static mp_tcache *tcache_take(mp_small *sm, bool *fresh) {
  mp_tcache *tc = NULL;
  pthread_mutex_lock(&sm->tcache_lock);
  if (sm->free_tcaches) {
    tc = sm->free_tcaches;
    sm->free_tcaches = tc->next_free;
    *fresh = false;
  } else {
    if (sm->tcache_chunk_left < sizeof(mp_tcache)) {
      sm->tcache_chunk = mp_meta_map(CHUNK);
      sm->tcache_chunk_left = sm->tcache_chunk ? CHUNK : 0;
    }
    if (sm->tcache_chunk_left >= sizeof(mp_tcache)) {
      tc = (mp_tcache *)sm->tcache_chunk;
      sm->tcache_chunk += sizeof(mp_tcache);
      sm->tcache_chunk_left -= sizeof(mp_tcache);
      pthread_mutex_init(&tc->lock, NULL);
      *fresh = true;
      tc->next_all = sm->all_tcaches;
      __atomic_store_n(&sm->all_tcaches, tc, __ATOMIC_RELEASE); /* reclaimers walk it without the lock */
    }
  }
  pthread_mutex_unlock(&sm->tcache_lock);
  return tc;
}

_Static_assert(MP_SMALL_CLASSES <= 64, "mp_tcache.ready has a bit per class");

/* Bin c of tc serves (tc->lock held, or tc not yet published): its level
 * of the held map, its first refill's batch, then its cap. */
static void bin_ready(mp_pool *p, mp_tcache *tc, unsigned c) {
  tc->bins[c].held = mp_held_by_address(p, c);
  tc->bins[c].held_shift = mp_class_held_shift[c];
  tc->bins[c].held_mask = mp_class_held_mask[c];
  tc->fill[c] = MP_TCACHE_FILL_MIN;
  __atomic_store_n(&tc->bins[c].cap, mp_class_cache_cap(c), __ATOMIC_RELEASE);
  tc->ready |= 1ull << c;
}

static mp_tcache *tcache_new(mp_pool *p) {
  bool fresh = false;
  mp_tcache *tc = tcache_take(&p->small, &fresh);
  if (!tc) return NULL;
  /* Reset all but the list links and the lock (a statistics walk may be
   * following them; a reclaimer that saw the last owner may be waiting). A
   * fresh cache is zero: its bins (cap 0, so every hit misses) are set up
   * at their first slow path, so that a new cache writes the pages of the
   * bins its thread uses only (a fork child's new cache: 12 pages fewer to
   * copy on write). */
  pthread_mutex_lock(&tc->lock);
  tc->pool = p;
  tc->base = p->region.base;
  tc->size = p->region.size;
  tc->span_class = p->small.span_class;
  tc->next_free = NULL;
  tc->slow_events = 0;
  tc->ready = 0;
  for (unsigned c = 0; !fresh && c < MP_SMALL_CLASSES; c++) {
    tc->bins[c].n = 0;
    tc->bins[c].allocs = tc->bins[c].frees = tc->gc_allocs[c] = tc->gc_frees[c] = 0;
    bin_ready(p, tc, c);
  }
  __atomic_store_n(&tc->owned, true, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&tc->lock);
  return tc;
}

/* The hit paths see the thread's cache unless the interposer keeps it out,
 * or its pool's policy needs every request on the slow path (MEMPOOL_CHECK's
 * patterns and canaries, a size window: mp_pool.fast_small): the caches
 * then serve through the slow paths only. */
static void use(mp_tcache *tc) { mp_t_tcache = tc && !t_out && tc->pool->fast_small ? tc : &mp_tcache_none; }

void mp_tcache_keep_out(bool out) {
  t_out = out;
  use(t_own);
}

static mp_tcache *tcache_get(mp_pool *p) {
  mp_tcache *tc = t_own;
  if (tc) return tc->pool == p ? tc : NULL;
  if (t_cache_dead) return NULL;
  tc = tcache_new(p);
  t_own = tc; /* before setspecific: should it allocate, it finds the cache */
  use(tc);
  /* Keys below 32 live in the thread descriptor: setspecific does not allocate. */
  if (tc) pthread_setspecific(p->small.key, tc);
  mp_log(MP_LOG_DEBUG, "thread cache %p for thread %llu", (void *)tc, (unsigned long long)pthread_self());
  return tc;
}

/* The bin's objects above keep go back to their spans (tc->lock held). */
static void bin_flush(mp_pool *p, mp_tcache_bin *b, unsigned cls, uint32_t keep) {
  if (b->n <= keep) return;
  mp_span_give(p, cls, b->items + keep, b->n - keep);
  b->n = keep;
}

static void flush_all(mp_pool *p, mp_tcache *tc) {
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++) bin_flush(p, &tc->bins[c], c, 0);
}

/* GC, every MP_TCACHE_GC_EVENTS slow-path events (tc->lock held): a bin
 * that served nothing since the last GC gives back three quarters of its
 * objects and starts its refills small again. O(classes). */
static void gc_tick(mp_pool *p, mp_tcache *tc) {
  if (++tc->slow_events < MP_TCACHE_GC_EVENTS) return;
  tc->slow_events = 0;
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++) {
    if (tc->bins[c].allocs == tc->gc_allocs[c] && tc->bins[c].frees == tc->gc_frees[c] && tc->bins[c].n) {
      bin_flush(p, &tc->bins[c], c, tc->bins[c].n / 4);
      tc->fill[c] = MP_TCACHE_FILL_MIN;
    }
    tc->gc_allocs[c] = tc->bins[c].allocs;
    tc->gc_frees[c] = tc->bins[c].frees;
  }
}

/* This refill's batch (slow start: a short-lived thread takes little). */
static uint32_t next_fill(mp_tcache *tc, unsigned cls) {
  uint32_t f = tc->fill[cls], most = mp_class_cache_cap(cls) / 2;
  tc->fill[cls] = (uint8_t)(f + f / 2 < most ? f + f / 2 : most);
  return f < most ? f : most;
}

void *mp_tcache_alloc_slow(mp_pool *p, unsigned cls) {
  mp_tcache *tc = tcache_get(p);
  void *obj = NULL;
  if (!tc) { /* no cache for this thread: one object straight from the spans */
    if (mp_span_take(p, cls, &obj, 1) == 0) return NULL;
    mp_span_mark_alloc(p, (uintptr_t)obj - p->region.base, cls);
    __atomic_fetch_add(&p->small.retired_allocs, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&p->small.retired_bytes_alloc, mp_class_size[cls], __ATOMIC_RELAXED);
    return obj;
  }
  pthread_mutex_lock(&tc->lock);
  if (!((tc->ready >> cls) & 1)) bin_ready(p, tc, cls);
  mp_tcache_bin *b = &tc->bins[cls];
  if (b->n == 0) b->n = mp_span_take(p, cls, b->items, next_fill(tc, cls));
  if (b->n) {
    obj = b->items[--b->n];
    mp_span_mark_alloc(p, (uintptr_t)obj - p->region.base, cls);
    tc->bins[cls].allocs++;
  }
  gc_tick(p, tc);
  pthread_mutex_unlock(&tc->lock);
  return obj;
}

void mp_tcache_free_slow(mp_pool *p, void *obj, unsigned cls) {
  int saved = errno; /* free keeps errno; a first cache may mmap */
  mp_tcache *tc = tcache_get(p);
  errno = saved;
  if (!tc) {
    mp_span_give(p, cls, &obj, 1);
    __atomic_fetch_add(&p->small.retired_frees, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&p->small.retired_bytes_freed, mp_class_size[cls], __ATOMIC_RELAXED);
    return;
  }
  pthread_mutex_lock(&tc->lock);
  if (!((tc->ready >> cls) & 1)) bin_ready(p, tc, cls);
  mp_tcache_bin *b = &tc->bins[cls];
  if (b->n >= b->cap) bin_flush(p, b, cls, b->cap / 2); /* the lock holder sees the real cap */
  b->items[b->n++] = obj;
  tc->bins[cls].frees++;
  gc_tick(p, tc);
  pthread_mutex_unlock(&tc->lock);
}

void mp_tcache_flush_current(mp_pool *p) {
  mp_tcache *tc = t_own;
  if (!tc || tc->pool != p) return;
  pthread_mutex_lock(&tc->lock);
  flush_all(p, tc);
  pthread_mutex_unlock(&tc->lock);
}

/* Changes no bin (so takes no lock: the fork child's interrupted call may
 * hold it): the cache stops being the thread's and anyone's to reclaim. */
void mp_tcache_abandon_current(mp_pool *p) {
  mp_tcache *tc = t_own;
  if (!tc || tc->pool != p) return;
  __atomic_store_n(&tc->owned, false, __ATOMIC_RELEASE);
  t_own = NULL;
  use(NULL);
  pthread_setspecific(p->small.key, NULL); /* its thread exit must not flush it */
}

static void thread_exit(void *arg) {
  mp_tcache *tc = arg;
  mp_pool *p = tc->pool;
  mp_small *sm = &p->small;
  pthread_mutex_lock(&tc->lock);
  flush_all(p, tc);
  __atomic_store_n(&tc->owned, false, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&tc->lock);
  t_own = NULL;
  use(NULL);
  t_cache_dead = true;
  pthread_mutex_lock(&sm->tcache_lock);
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++) {
    __atomic_fetch_add(&sm->retired_allocs, tc->bins[c].allocs, __ATOMIC_RELAXED);
    __atomic_fetch_add(&sm->retired_frees, tc->bins[c].frees, __ATOMIC_RELAXED);
    __atomic_fetch_add(&sm->retired_bytes_alloc, tc->bins[c].allocs * mp_class_size[c], __ATOMIC_RELAXED);
    __atomic_fetch_add(&sm->retired_bytes_freed, tc->bins[c].frees * mp_class_size[c], __ATOMIC_RELAXED);
    tc->bins[c].allocs = tc->bins[c].frees = 0;
  }
  tc->next_free = sm->free_tcaches;
  sm->free_tcaches = tc;
  pthread_mutex_unlock(&sm->tcache_lock);
}

/* ---- reclaim: the handshake of tcache.h --------------------------------- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long membarrier(int cmd) { return syscall(SYS_membarrier, cmd, 0, 0); }

/* The command that works here, found once (pool start): private
 * expedited once registered, else global, else none. */
static int barrier_kind(mp_small *sm) {
  if (sm->barrier != BARRIER_UNKNOWN) return sm->barrier;
  long q = membarrier(MEMBARRIER_CMD_QUERY);
  sm->barrier = BARRIER_NONE;
  if (q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0)
    sm->barrier = BARRIER_PRIVATE;
  else if (q > 0 && (q & MEMBARRIER_CMD_GLOBAL))
    sm->barrier = BARRIER_GLOBAL;
  if (sm->barrier == BARRIER_NONE)
    mp_log(MP_LOG_INFO, "no membarrier(2) here: other threads' cached objects are not reclaimed");
  return sm->barrier;
}

/* A full barrier on every CPU running a thread of ours; false when none can
 * be had (a command that fails once is not tried again). */
static bool barrier_all(mp_small *sm) {
  for (;;) {
    int kind = barrier_kind(sm);
    if (kind == BARRIER_NONE) return false;
    if (membarrier(kind == BARRIER_PRIVATE ? MEMBARRIER_CMD_PRIVATE_EXPEDITED : MEMBARRIER_CMD_GLOBAL) == 0)
      return true;
    sm->barrier = kind == BARRIER_PRIVATE ? BARRIER_GLOBAL : BARRIER_NONE;
  }
}

/* Every bin's cap 0 (the owner's hits miss) or back to its real value (a
 * bin not set up yet: 0 still). */
static void caps_set(mp_tcache *tc, bool real) {
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++)
    __atomic_store_n(&tc->bins[c].cap, real && ((tc->ready >> c) & 1) ? mp_class_cache_cap(c) : 0,
                     real ? __ATOMIC_RELEASE : __ATOMIC_RELAXED);
}

/* Objects in tc's bins, read racily (the owner's hits change n unlocked). */
static uint32_t cached(mp_tcache *tc) {
  uint32_t n = 0;
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++) n += __atomic_load_n(&tc->bins[c].n, __ATOMIC_RELAXED);
  return n;
}

/* Waits until the owner is out of its hit path: false after
 * MP_RECLAIM_SPIN_NS (it stopped inside). */
static bool wait_idle(mp_tcache *tc) {
  uint64_t until = 0;
  for (unsigned spins = 0; __atomic_load_n(&tc->busy, __ATOMIC_ACQUIRE) != 0; spins++) {
    if (spins < 64) continue;
    uint64_t now = now_ns();
    if (!until) until = now + MP_RECLAIM_SPIN_NS;
    if (now > until) return false;
    sched_yield();
  }
  return true;
}

/* Locks every other live cache of p that holds objects and stops its hits
 * (caps 0); returns how many. Steal lock held. */
static uint32_t stop_others(mp_pool *p, mp_tcache *head) {
  uint32_t n = 0;
  for (mp_tcache *tc = head; tc; tc = tc->next_all) {
    if (tc == t_own || !__atomic_load_n(&tc->owned, __ATOMIC_ACQUIRE) || tc->pool != p || !cached(tc)) continue;
    pthread_mutex_lock(&tc->lock);
    if (!tc->owned) { /* its thread exited meanwhile: flushed */
      pthread_mutex_unlock(&tc->lock);
      continue;
    }
    caps_set(tc, false);
    tc->reclaiming = true;
    n++;
  }
  return n;
}

/* The caches stop_others locked: emptied when their owners are out of the
 * hit path (or skipped), hits restored, unlocked. Objects given back. */
static uint32_t drain_stopped(mp_pool *p, mp_tcache *head, bool drain, uint32_t *skipped) {
  uint32_t got = 0;
  for (mp_tcache *tc = head; tc; tc = tc->next_all) {
    if (!tc->reclaiming) continue;
    if (drain && wait_idle(tc)) {
      got += cached(tc);
      flush_all(p, tc);
    } else if (drain) {
      (*skipped)++;
    }
    caps_set(tc, true);
    tc->reclaiming = false;
    pthread_mutex_unlock(&tc->lock);
  }
  return got;
}

bool mp_tcache_reclaim_all(mp_pool *p, uint32_t *objects, uint32_t *skipped) {
  mp_small *sm = &p->small;
  uint32_t got = 0, skip = 0;
  bool ran = false;
  int saved = errno;
  mp_tcache_flush_current(p);
  if (now_ns() >= __atomic_load_n(&sm->reclaim_quiet_ns, __ATOMIC_RELAXED)) {
    pthread_mutex_lock(&sm->steal_lock);
    mp_tcache *head = __atomic_load_n(&sm->all_tcaches, __ATOMIC_ACQUIRE);
    if (stop_others(p, head)) got = drain_stopped(p, head, barrier_all(sm), &skip);
    pthread_mutex_unlock(&sm->steal_lock);
    ran = true;
  }
  errno = saved;
  if (objects) *objects = got;
  if (skipped) *skipped = skip;
  return ran;
}

void mp_tcache_reclaim_done(mp_pool *p, bool helped) {
  __atomic_store_n(&p->small.reclaim_quiet_ns, helped ? 0 : now_ns() + MP_RECLAIM_QUIET_NS, __ATOMIC_RELAXED);
}

/* ---- fork ---------------------------------------------------------------- */

bool mp_tcache_fork_prepare(mp_pool *p, bool single) {
  return (single ? pthread_mutex_trylock(&p->small.steal_lock) : pthread_mutex_lock(&p->small.steal_lock)) == 0;
}

void mp_tcache_fork_parent(mp_pool *p) { pthread_mutex_unlock(&p->small.steal_lock); }

void mp_tcache_fork_child(mp_pool *p) {
  mp_small *sm = &p->small;
  pthread_mutex_init(&sm->steal_lock, NULL);
  for (mp_tcache *tc = sm->all_tcaches; tc; tc = tc->next_all) {
    pthread_mutex_init(&tc->lock, NULL);
    if (tc != t_own) tc->owned = false; /* its thread is not in the child */
  }
}

void mp_tcache_totals(mp_pool *p, uint64_t *allocs, uint64_t *frees, uint64_t *bytes_in_use) {
  mp_small *sm = &p->small;
  uint64_t a = 0, f = 0, ba = 0, bf = 0;
  if (!sm->enabled) {
    *allocs = *frees = *bytes_in_use = 0;
    return;
  }
  pthread_mutex_lock(&sm->tcache_lock);
  a = __atomic_load_n(&sm->retired_allocs, __ATOMIC_RELAXED);
  f = __atomic_load_n(&sm->retired_frees, __ATOMIC_RELAXED);
  ba = __atomic_load_n(&sm->retired_bytes_alloc, __ATOMIC_RELAXED);
  bf = __atomic_load_n(&sm->retired_bytes_freed, __ATOMIC_RELAXED);
  /* Live caches' counters are read racily: figures, not invariants. */
  for (mp_tcache *tc = sm->all_tcaches; tc; tc = tc->next_all)
    for (unsigned c = 0; c < MP_SMALL_CLASSES; c++) {
      a += tc->bins[c].allocs;
      f += tc->bins[c].frees;
      ba += tc->bins[c].allocs * mp_class_size[c];
      bf += tc->bins[c].frees * mp_class_size[c];
    }
  pthread_mutex_unlock(&sm->tcache_lock);
  *allocs = a;
  *frees = f;
  *bytes_in_use = ba >= bf ? ba - bf : 0;
}
