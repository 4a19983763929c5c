/* larson - multi-threaded churn with cross-thread frees (larson-like).
 *
 *   larson THREADS LIVE_PER_THREAD MIN MAX OPS_PER_ROUND ROUNDS [SEED]
 *
 * There are THREADS sets of LIVE_PER_THREAD slots.  Thread t fills set t,
 * then in round r works on set (t + r) % THREADS: OPS_PER_ROUND times it
 * checks and frees the block in a random slot and mallocs a new one.  Sets
 * rotate between threads at a barrier after every round, so most frees
 * release blocks that another thread allocated, while all threads run at
 * once.  ns_per_op = wall time of the rounds / (THREADS * OPS_PER_ROUND *
 * ROUNDS): the inverse of the aggregate throughput.
 */
#include <pthread.h>

#include "common.h"

static size_table sizes_tab;
static unsigned nthreads, rounds;
static size_t live;
static unsigned long long ops_per_round;
static slot_t **sets;
static pthread_barrier_t barrier;
static uint64_t seed;

static void *worker(void *arg) {
  unsigned t = (unsigned)(uintptr_t)arg;
  rng_t r = {seed * 1000003u + t};
  slot_t *slot = sets[t];
  for (size_t i = 0; i < live; i++) slot_new(&slot[i], size_pick(&sizes_tab, &r), &r);
  pthread_barrier_wait(&barrier);
  for (unsigned round = 0; round < rounds; round++) {
    slot = sets[(t + round) % nthreads];
    for (unsigned long long k = 0; k < ops_per_round; k++) {
      slot_t *s = &slot[rng_below(&r, live)];
      slot_check(s, "larson");
      free(s->p);
      slot_new(s, size_pick(&sizes_tab, &r), &r);
    }
    pthread_barrier_wait(&barrier);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: %s THREADS LIVE_PER_THREAD MIN MAX OPS_PER_ROUND ROUNDS [SEED]\n", argv[0]);
    return 2;
  }
  nthreads = (unsigned)arg_ull(argc, argv, 1, 4);
  live = arg_ull(argc, argv, 2, 10000);
  size_t min = arg_ull(argc, argv, 3, 16), max = arg_ull(argc, argv, 4, 1024);
  ops_per_round = arg_ull(argc, argv, 5, 10000);
  rounds = (unsigned)arg_ull(argc, argv, 6, 10);
  seed = arg_ull(argc, argv, 7, 42);
  size_table_init(&sizes_tab, min, max, seed);

  sets = xmalloc(nthreads * sizeof *sets);
  for (unsigned t = 0; t < nthreads; t++) sets[t] = xmalloc(live * sizeof **sets);
  pthread_barrier_init(&barrier, NULL, nthreads + 1);
  pthread_t *tid = xmalloc(nthreads * sizeof *tid);
  for (unsigned t = 0; t < nthreads; t++)
    if (pthread_create(&tid[t], NULL, worker, (void *)(uintptr_t)t) != 0) {
      fprintf(stderr, "pthread_create failed\n");
      return 1;
    }
  pthread_barrier_wait(&barrier); /* all sets filled */
  uint64_t t0 = now_ns();
  for (unsigned round = 0; round < rounds; round++) pthread_barrier_wait(&barrier);
  uint64_t t1 = now_ns();
  for (unsigned t = 0; t < nthreads; t++) pthread_join(tid[t], NULL);
  for (unsigned t = 0; t < nthreads; t++) {
    for (size_t i = 0; i < live; i++) {
      slot_check(&sets[t][i], "larson teardown");
      free(sets[t][i].p);
    }
    free(sets[t]);
  }
  free(sets);
  free(tid);
  double total = (double)nthreads * (double)ops_per_round * (double)rounds;
  printf("RESULT ns_per_op=%.2f mops_per_s=%.3f threads=%u live_per_thread=%zu min=%zu max=%zu ops=%.0f\n",
         (double)(t1 - t0) / total, total / ((double)(t1 - t0) / 1e9) / 1e6, nthreads, live, min, max, total);
  return 0;
}
