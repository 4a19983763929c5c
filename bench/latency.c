/* latency - per-operation latency percentiles on a churn workload.
 *
 *   latency LIVE MIN MAX OPS [SEED]
 *
 * Same churn as churn.c (default 100k live blocks, 16 B..4 KiB), with
 * clock_gettime(CLOCK_MONOTONIC) read just before and after every malloc and
 * every free.  Reports p50, p99, p99.99 and max of each, in ns, raw (the
 * cost of one clock read is printed as timer_ns and not subtracted).
 *
 * The churn runs twice, OPS operations each. The first pass ("cold_*")
 * includes the page faults of memory touched for the first time; the
 * second (the plain keys) runs on memory the process has touched already,
 * so that its tail is the allocator's own (unless it gave memory back to
 * the system meanwhile). The minor page faults of each pass are printed
 * (faults_cold, faults_warm, from getrusage).
 */
#include "common.h"

#include <sys/resource.h>

static size_table sizes_tab;

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

static uint32_t pct(const uint32_t *v, size_t n, double q) {
  size_t i = (size_t)(q * (double)(n - 1) + 0.5);
  return v[i < n ? i : n - 1];
}

static inline uint32_t clamp32(uint64_t d) { return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d; }

static long minor_faults(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

/* One churn pass of ops replacements: every call's latency into lm (malloc)
 * and lf (free), sorted; returns ns per replacement. */
static double timed_pass(slot_t *slot, size_t live, size_t ops, rng_t *r, uint32_t *lm, uint32_t *lf) {
  uint64_t start = now_ns();
  for (size_t k = 0; k < ops; k++) {
    slot_t *s = &slot[rng_below(r, live)];
    size_t n = size_pick(&sizes_tab, r);
    slot_check(s, "latency");
    uint64_t a = now_ns();
    free(s->p);
    uint64_t b = now_ns();
    void *p = malloc(n);
    uint64_t c = now_ns();
    if (!p) _Exit(4);
    slot_set(s, p, n, r);
    lf[k] = clamp32(b - a);
    lm[k] = clamp32(c - b);
  }
  uint64_t end = now_ns();
  qsort(lm, ops, sizeof *lm, cmp_u32);
  qsort(lf, ops, sizeof *lf, cmp_u32);
  return (double)(end - start) / (double)ops;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s LIVE MIN MAX OPS [SEED]\n", argv[0]);
    return 2;
  }
  size_t live = arg_ull(argc, argv, 1, 100000), min = arg_ull(argc, argv, 2, 16), max = arg_ull(argc, argv, 3, 4096);
  size_t ops = arg_ull(argc, argv, 4, 1000000);
  rng_t r = {arg_ull(argc, argv, 5, 42)};
  if (ops < 1) ops = 1;
  size_table_init(&sizes_tab, min, max, r.s);

  slot_t *slot = xmalloc(live * sizeof *slot);
  uint32_t *lm = xmalloc(ops * sizeof *lm), *lf = xmalloc(ops * sizeof *lf);
  memset(lm, 0, ops * sizeof *lm); /* fault the sample arrays in before timing */
  memset(lf, 0, ops * sizeof *lf);

  /* cost of one clock read (median of back-to-back pairs) */
  uint32_t tim[1001];
  for (int i = 0; i < 1001; i++) {
    uint64_t a = now_ns(), b = now_ns();
    tim[i] = clamp32(b - a);
  }
  qsort(tim, 1001, sizeof *tim, cmp_u32);

  for (size_t i = 0; i < live; i++) slot_new(&slot[i], size_pick(&sizes_tab, &r), &r);
  long faults0 = minor_faults();
  timed_pass(slot, live, ops, &r, lm, lf);
  long faults1 = minor_faults();
  uint32_t cold[4] = {pct(lm, ops, 0.99), pct(lm, ops, 0.9999), pct(lf, ops, 0.99), pct(lf, ops, 0.9999)};
  double ns_per_op = timed_pass(slot, live, ops, &r, lm, lf);
  long faults2 = minor_faults();
  for (size_t i = 0; i < live; i++) {
    slot_check(&slot[i], "latency teardown");
    free(slot[i].p);
  }
  printf(
      "RESULT malloc_p50=%u malloc_p99=%u malloc_p9999=%u malloc_max=%u "
      "free_p50=%u free_p99=%u free_p9999=%u free_max=%u timer_ns=%u ns_per_op=%.2f live=%zu ops=%zu "
      "cold_malloc_p99=%u cold_malloc_p9999=%u cold_free_p99=%u cold_free_p9999=%u faults_cold=%ld faults_warm=%ld\n",
      pct(lm, ops, 0.50), pct(lm, ops, 0.99), pct(lm, ops, 0.9999), lm[ops - 1], pct(lf, ops, 0.50), pct(lf, ops, 0.99),
      pct(lf, ops, 0.9999), lf[ops - 1], tim[500], ns_per_op, live, ops, cold[0], cold[1], cold[2], cold[3],
      faults1 - faults0, faults2 - faults1);
  free(lm);
  free(lf);
  free(slot);
  return 0;
}
