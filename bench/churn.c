/* churn - single-thread random replacement of live blocks.
 *
 *   churn LIVE MIN MAX OPS [SEED]
 *
 * Fills LIVE slots with blocks of log-uniform size in [MIN, MAX], then OPS
 * times picks a random slot, checks and frees its block and mallocs a new one
 * of a new random size (one op = one free + one malloc).  Only the OPS loop
 * is in ns_per_op; the initial fill and the final teardown are reported
 * separately.
 */
#include "common.h"

static size_table sizes_tab;

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s LIVE MIN MAX OPS [SEED]\n", argv[0]);
    return 2;
  }
  size_t live = arg_ull(argc, argv, 1, 0), min = arg_ull(argc, argv, 2, 16), max = arg_ull(argc, argv, 3, 4096);
  unsigned long long ops = arg_ull(argc, argv, 4, 0);
  rng_t r = {arg_ull(argc, argv, 5, 42)};
  size_table_init(&sizes_tab, min, max, r.s);

  slot_t *slot = xmalloc(live * sizeof *slot);

  uint64_t t0 = now_ns();
  for (size_t i = 0; i < live; i++) slot_new(&slot[i], size_pick(&sizes_tab, &r), &r);
  uint64_t t1 = now_ns();
  for (unsigned long long k = 0; k < ops; k++) {
    slot_t *s = &slot[rng_below(&r, live)];
    slot_check(s, "churn");
    free(s->p);
    slot_new(s, size_pick(&sizes_tab, &r), &r);
  }
  uint64_t t2 = now_ns();
  for (size_t i = 0; i < live; i++) {
    slot_check(&slot[i], "churn teardown");
    free(slot[i].p);
  }
  uint64_t t3 = now_ns();
  free(slot);

  printf("RESULT ns_per_op=%.2f fill_ns_per_alloc=%.2f teardown_ns_per_free=%.2f live=%zu min=%zu max=%zu ops=%llu\n",
         ops ? (double)(t2 - t1) / (double)ops : 0.0, live ? (double)(t1 - t0) / (double)live : 0.0,
         live ? (double)(t3 - t2) / (double)live : 0.0, live, min, max, ops);
  return 0;
}
