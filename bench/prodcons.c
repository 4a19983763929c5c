/* prodcons - producer/consumer: one thread mallocs, another frees.
 *
 *   prodcons MESSAGES MIN MAX [RING] [SEED]
 *
 * The producer mallocs a block of log-uniform size in [MIN, MAX], writes its
 * pattern and pushes it through a single-producer single-consumer ring of
 * RING entries (default 1024); the consumer checks the pattern and frees it.
 * Every free is a remote free.  ns_per_msg = wall time / MESSAGES.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "common.h"

static size_table sizes_tab;
static slot_t *ring;
static size_t ring_mask;
static unsigned long long messages;
static uint64_t seed;
static _Alignas(64) _Atomic unsigned long long head; /* next to write */
static _Alignas(64) _Atomic unsigned long long tail; /* next to read */

static void backoff(unsigned *spins) {
  if (++*spins > 64) {
    sched_yield();
    *spins = 0;
  } else {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
  }
}

static void *producer(void *arg) {
  (void)arg;
  rng_t r = {seed};
  unsigned long long h = 0, t_cached = 0;
  for (unsigned long long k = 0; k < messages; k++) {
    slot_t m;
    slot_new(&m, size_pick(&sizes_tab, &r), &r);
    unsigned spins = 0;
    while (h - t_cached > ring_mask) {
      t_cached = atomic_load_explicit(&tail, memory_order_acquire);
      if (h - t_cached > ring_mask) backoff(&spins);
    }
    ring[h & ring_mask] = m;
    atomic_store_explicit(&head, ++h, memory_order_release);
  }
  return NULL;
}

static void *consumer(void *arg) {
  (void)arg;
  unsigned long long t = 0, h_cached = 0;
  while (t < messages) {
    unsigned spins = 0;
    while (t == h_cached) {
      h_cached = atomic_load_explicit(&head, memory_order_acquire);
      if (t == h_cached) backoff(&spins);
    }
    while (t < h_cached) {
      slot_t m = ring[t & ring_mask];
      slot_check(&m, "prodcons");
      free(m.p);
      t++;
    }
    atomic_store_explicit(&tail, t, memory_order_release);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s MESSAGES MIN MAX [RING] [SEED]\n", argv[0]);
    return 2;
  }
  messages = arg_ull(argc, argv, 1, 1000000);
  size_t min = arg_ull(argc, argv, 2, 16), max = arg_ull(argc, argv, 3, 4096);
  size_t rsize = arg_ull(argc, argv, 4, 1024);
  seed = arg_ull(argc, argv, 5, 42);
  size_t cap = 1;
  while (cap < rsize) cap <<= 1;
  ring_mask = cap - 1;
  ring = xmalloc(cap * sizeof *ring);
  size_table_init(&sizes_tab, min, max, seed);

  pthread_t tp, tc;
  uint64_t t0 = now_ns();
  pthread_create(&tc, NULL, consumer, NULL);
  pthread_create(&tp, NULL, producer, NULL);
  pthread_join(tp, NULL);
  pthread_join(tc, NULL);
  uint64_t t1 = now_ns();
  free(ring);
  printf("RESULT ns_per_msg=%.2f messages=%llu min=%zu max=%zu ring=%zu\n", (double)(t1 - t0) / (double)messages,
         messages, min, max, cap);
  return 0;
}
