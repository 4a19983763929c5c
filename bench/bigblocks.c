/* bigblocks - large blocks, 1 MiB to 64 MiB.
 *
 *   bigblocks LIVE OPS [MIN] [MAX] [SEED]
 *
 * Churn (see churn.c) over LIVE blocks of log-uniform size in [MIN, MAX]
 * (default 1 MiB..64 MiB, mean about 15 MiB).  Every new block has one byte
 * written on each 4 KiB page, as a program that uses its memory would, so an
 * allocator that hands back fresh pages pays for the page faults.
 * ns_per_op = wall time of the OPS loop / OPS.
 */
#include "common.h"

static size_table sizes_tab;

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s LIVE OPS [MIN] [MAX] [SEED]\n", argv[0]);
    return 2;
  }
  size_t live = arg_ull(argc, argv, 1, 8);
  unsigned long long ops = arg_ull(argc, argv, 2, 300);
  size_t min = arg_ull(argc, argv, 3, 1u << 20), max = arg_ull(argc, argv, 4, 64u << 20);
  rng_t r = {arg_ull(argc, argv, 5, 42)};
  size_table_init(&sizes_tab, min, max, r.s);
  slot_t *slot = xmalloc(live * sizeof *slot);
  for (size_t i = 0; i < live; i++) slot_new(&slot[i], size_pick(&sizes_tab, &r), &r);
  double bytes = 0;
  uint64_t t0 = now_ns();
  for (unsigned long long k = 0; k < ops; k++) {
    slot_t *s = &slot[rng_below(&r, live)];
    slot_check(s, "bigblocks");
    free(s->p);
    slot_new(s, size_pick(&sizes_tab, &r), &r);
    bytes += (double)s->n;
  }
  uint64_t t1 = now_ns();
  for (size_t i = 0; i < live; i++) {
    slot_check(&slot[i], "bigblocks teardown");
    free(slot[i].p);
  }
  free(slot);
  printf("RESULT ns_per_op=%.1f us_per_op=%.2f gib_per_s=%.3f live=%zu ops=%llu min=%zu max=%zu\n",
         (double)(t1 - t0) / (double)ops, (double)(t1 - t0) / (double)ops / 1e3,
         bytes / (double)(1u << 30) / ((double)(t1 - t0) / 1e9), live, ops, min, max);
  return 0;
}
