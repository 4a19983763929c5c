/* claims - allocate a batch of big blocks, free them all, again and again.
 *
 *   claims ROUNDS BLOCKS SIZE [TOUCH]
 *
 * Each round mallocs BLOCKS blocks of SIZE bytes, writes one byte on each
 * 4 KiB page of every block (and tags both ends, see common.h), then checks
 * and frees them all. With libmempool on a shared device (mempool-file) the
 * batch outgrows the chunks held, so every round claims chunks (OFD lock +
 * mmap) and freeing it releases those past the hysteresis (unmap + unlock).
 *
 * TOUCH=0 writes only the tags (the first and last 8 bytes): what is left is
 * the allocator's own cost, claims and releases included, without the page
 * faults of the body.
 *
 * us_per_round = wall time of the ROUNDS rounds / ROUNDS;
 * ns_per_op = the same per block (its malloc, page writes and free).
 */
#include "common.h"

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s ROUNDS BLOCKS SIZE [TOUCH]\n", argv[0]);
    return 2;
  }
  unsigned long long rounds = arg_ull(argc, argv, 1, 200);
  size_t blocks = arg_ull(argc, argv, 2, 64);
  size_t size = arg_ull(argc, argv, 3, 1u << 20);
  int touch = (int)arg_ull(argc, argv, 4, 1);
  if (blocks == 0 || size == 0 || size > 0xffffffffu) {
    fprintf(stderr, "claims: BLOCKS must be > 0, SIZE in 1..4 GiB-1\n");
    return 2;
  }
  rng_t r = {42};
  slot_t *slot = xmalloc(blocks * sizeof *slot);
  uint64_t t0 = now_ns();
  for (unsigned long long k = 0; k < rounds; k++) {
    for (size_t i = 0; i < blocks; i++) {
      if (touch) {
        slot_new(&slot[i], size, &r);
      } else { /* tags only: slot_set without the page writes */
        slot_t *s = &slot[i];
        s->p = xmalloc(size);
        s->n = (uint32_t)size;
        s->tag = (uint32_t)rng_next(&r);
        uint64_t t = tag64(s->tag);
        if (size >= 8) {
          memcpy(s->p, &t, 8);
          memcpy((char *)s->p + size - 8, &t, 8);
        } else {
          memset(s->p, (int)(t & 0xff), size);
        }
      }
    }
    for (size_t i = 0; i < blocks; i++) {
      slot_check(&slot[i], "claims");
      free(slot[i].p);
    }
  }
  uint64_t t1 = now_ns();
  free(slot);
  printf("RESULT us_per_round=%.2f ns_per_op=%.1f rounds=%llu blocks=%zu size=%zu touch=%d\n",
         (double)(t1 - t0) / (double)rounds / 1e3, (double)(t1 - t0) / (double)(rounds * blocks), rounds, blocks, size,
         touch);
  return 0;
}
