/* tcache.c - thread caches: creation, refill, flush, thread exit. */
#include "tcache.h"

#include <errno.h>
#include <string.h>

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

static void thread_exit(void *arg);

int mp_tcache_init(mp_pool *p) { return pthread_key_create(&p->small.key, thread_exit) == 0 ? 0 : -1; }

static mp_tcache *tcache_new(mp_pool *p) {
  mp_small *sm = &p->small;
  mp_tcache *tc = NULL;
  pthread_mutex_lock(&sm->tcache_lock);
  if (sm->free_tcaches) {
    tc = sm->free_tcaches;
    sm->free_tcaches = tc->next_free;
  } else {
    if (sm->tcache_chunk_left < sizeof(mp_tcache)) {
      sm->tcache_chunk = mp_meta_map(CHUNK);
      sm->tcache_chunk_left = sm->tcache_chunk ? CHUNK : 0;
    }
    if (sm->tcache_chunk_left >= sizeof(mp_tcache)) {
      tc = (mp_tcache *)sm->tcache_chunk;
      sm->tcache_chunk += sizeof(mp_tcache);
      sm->tcache_chunk_left -= sizeof(mp_tcache);
      tc->next_all = sm->all_tcaches;
      sm->all_tcaches = tc;
    }
  }
  pthread_mutex_unlock(&sm->tcache_lock);
  if (!tc) return NULL;
  /* Reset all but the list links (a statistics walk may be following them). */
  tc->pool = p;
  tc->base = p->region.base;
  tc->size = p->region.size;
  tc->held_by_address = mp_held_by_address(p);
  tc->next_free = NULL;
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++) {
    tc->bins[c].n = 0;
    tc->allocs[c] = tc->frees[c] = 0;
    tc->bins[c].cap = mp_class_cache_cap(c);
  }
  return tc;
}

static void use(mp_tcache *tc) { mp_t_tcache = tc && !t_out ? tc : &mp_tcache_none; }

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

static void bin_flush(mp_pool *p, mp_tcache_bin *b, unsigned cls, uint32_t keep) {
  if (b->n <= keep) return;
  mp_span_give(p, cls, b->items + keep, b->n - keep);
  b->n = keep;
}

void *mp_tcache_alloc_slow(mp_pool *p, unsigned cls) {
  mp_tcache *tc = tcache_get(p);
  void *obj;
  if (!tc) { /* no cache for this thread: one object straight from the spans */
    if (mp_span_take(p, cls, &obj, 1) == 0) return NULL;
    mp_span_mark_alloc(p, (uintptr_t)obj - p->region.base);
    __atomic_fetch_add(&p->small.retired_allocs, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&p->small.retired_bytes_alloc, mp_class_size[cls], __ATOMIC_RELAXED);
    return obj;
  }
  mp_tcache_bin *b = &tc->bins[cls];
  b->n = mp_span_take(p, cls, b->items, b->cap / 2);
  return mp_tcache_pop_from(tc, cls); /* NULL when the spans had none */
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
  mp_tcache_bin *b = &tc->bins[cls];
  bin_flush(p, b, cls, b->cap / 2);
  mp_tcache_push_to(tc, obj, cls);
}

static void flush_all(mp_pool *p, mp_tcache *tc) {
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++) bin_flush(p, &tc->bins[c], c, 0);
}

void mp_tcache_flush_current(mp_pool *p) {
  mp_tcache *tc = t_own;
  if (tc && tc->pool == p) flush_all(p, tc);
}

void mp_tcache_abandon_current(mp_pool *p) {
  mp_tcache *tc = t_own;
  if (!tc || tc->pool != p) return;
  t_own = NULL;
  use(NULL);
  pthread_setspecific(p->small.key, NULL); /* its thread exit must not flush it */
}

static void thread_exit(void *arg) {
  mp_tcache *tc = arg;
  mp_pool *p = tc->pool;
  mp_small *sm = &p->small;
  flush_all(p, tc);
  t_own = NULL;
  use(NULL);
  t_cache_dead = true;
  pthread_mutex_lock(&sm->tcache_lock);
  for (unsigned c = 0; c < MP_SMALL_CLASSES; c++) {
    __atomic_fetch_add(&sm->retired_allocs, tc->allocs[c], __ATOMIC_RELAXED);
    __atomic_fetch_add(&sm->retired_frees, tc->frees[c], __ATOMIC_RELAXED);
    __atomic_fetch_add(&sm->retired_bytes_alloc, tc->allocs[c] * mp_class_size[c], __ATOMIC_RELAXED);
    __atomic_fetch_add(&sm->retired_bytes_freed, tc->frees[c] * mp_class_size[c], __ATOMIC_RELAXED);
    tc->allocs[c] = tc->frees[c] = 0;
  }
  tc->next_free = sm->free_tcaches;
  sm->free_tcaches = tc;
  pthread_mutex_unlock(&sm->tcache_lock);
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
      a += tc->allocs[c];
      f += tc->frees[c];
      ba += tc->allocs[c] * mp_class_size[c];
      bf += tc->frees[c] * mp_class_size[c];
    }
  pthread_mutex_unlock(&sm->tcache_lock);
  *allocs = a;
  *frees = f;
  *bytes_in_use = ba >= bf ? ba - bf : 0;
}
