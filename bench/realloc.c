/* realloc - growth of buffers step by step, as string builders do.
 *
 *   realloc BUFFERS MAXSIZE STEPS [MAXSTEP] [SEED]
 *
 * BUFFERS buffers grow interleaved: each step picks a random buffer and
 * reallocs it to its length plus a random 1..MAXSTEP bytes (default 4096),
 * then writes the new bytes.  A buffer that reaches its target (random in
 * [MAXSIZE/4, MAXSIZE]) is checked, freed and restarted at 16 bytes.  The old
 * content is checked after every realloc (header tag, last old byte, middle
 * byte).  ns_per_step = wall time / STEPS (memcpy of moved blocks included).
 */
#include "common.h"

typedef struct {
  unsigned char *p;
  size_t len, target;
  uint64_t tag;
} buf;

static uint64_t next_tag = 1;

static void buf_start(buf *b, size_t maxsize, rng_t *r) {
  b->len = 16;
  b->target = maxsize / 4 + rng_below(r, maxsize - maxsize / 4 + 1);
  b->tag = (next_tag++ * 0x9e3779b97f4a7c15ull) | 1;
  b->p = xmalloc(b->len);
  memcpy(b->p, &b->tag, 8);
  memset(b->p + 8, (int)(b->tag & 0xff), b->len - 8);
}

static void buf_check(const buf *b, const char *what) {
  uint64_t t;
  memcpy(&t, b->p, 8);
  unsigned char c = (unsigned char)(b->tag & 0xff);
  if (t != b->tag || b->p[b->len - 1] != c || b->p[8 + (b->len - 8) / 2] != c) corrupt(what, b->p, b->len);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s BUFFERS MAXSIZE STEPS [MAXSTEP] [SEED]\n", argv[0]);
    return 2;
  }
  size_t nbuf = arg_ull(argc, argv, 1, 64), maxsize = arg_ull(argc, argv, 2, 262144);
  unsigned long long steps = arg_ull(argc, argv, 3, 1000000);
  size_t maxstep = arg_ull(argc, argv, 4, 4096);
  rng_t r = {arg_ull(argc, argv, 5, 42)};
  if (maxsize < 64) maxsize = 64;
  buf *b = xmalloc(nbuf * sizeof *b);
  for (size_t i = 0; i < nbuf; i++) buf_start(&b[i], maxsize, &r);

  unsigned long long moved = 0, restarts = 0;
  uint64_t t0 = now_ns();
  for (unsigned long long k = 0; k < steps; k++) {
    buf *x = &b[rng_below(&r, nbuf)];
    if (x->len >= x->target) {
      buf_check(x, "realloc final");
      free(x->p);
      buf_start(x, maxsize, &r);
      restarts++;
    }
    size_t old = x->len, n = old + 1 + rng_below(&r, maxstep);
    unsigned char *q = realloc(x->p, n);
    if (!q) {
      fprintf(stderr, "realloc(%zu) returned NULL\n", n);
      return 4;
    }
    moved += q != x->p;
    x->p = q;
    buf_check(x, "realloc");
    memset(q + old, (int)(x->tag & 0xff), n - old);
    x->len = n;
  }
  uint64_t t1 = now_ns();
  for (size_t i = 0; i < nbuf; i++) {
    buf_check(&b[i], "realloc teardown");
    free(b[i].p);
  }
  free(b);
  printf("RESULT ns_per_step=%.2f moved_pct=%.2f restarts=%llu buffers=%zu maxsize=%zu steps=%llu\n",
         (double)(t1 - t0) / (double)steps, 100.0 * (double)moved / (double)steps, restarts, nbuf, maxsize, steps);
  return 0;
}
