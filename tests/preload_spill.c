/* A 64 KiB region: past exhaustion blocks spill to jemalloc and stay usable;
 * free decides the owner by address; after everything is freed one block of
 * half the region fits again (coalescing, nothing stranded). */
#include <malloc.h>

#include "preload_util.h"

#define N 256
int main(void) {
  /* Blocks live before main: libstdc++'s emergency exception pool (loaded
   * with jemalloc) fits a 64 KiB region on 32-bit targets (20 KiB there). */
  size_t before = mallinfo2().uordblks;
  void *p[N];
  int in = 0, out = 0;
  for (int i = 0; i < N; i++) {
    size_t sz = 200 + (size_t)(i % 7) * 150;
    p[i] = malloc(sz);
    CHECK(p[i] != NULL, "malloc %d", i);
    fill(p[i], sz, (unsigned)i);
    if (in_region(p[i]))
      in++;
    else
      out++;
  }
  CHECK(in > 20, "only %d blocks in the region", in);
  /* Blocks jemalloc serves are 16-aligned too, down to malloc(0) and malloc(1). */
  void *tiny[24];
  for (size_t k = 0; k < 24; k++) { /* kept alive: neighbours in jemalloc's smallest class */
    tiny[k] = malloc(k % 9);
    CHECK(tiny[k] && ((uintptr_t)tiny[k] & 15) == 0, "malloc(%zu) = %p not 16-aligned", k % 9, tiny[k]);
  }
  for (size_t k = 0; k < 24; k++) {
    tiny[k] = realloc(tiny[k], 3);
    CHECK(tiny[k] && ((uintptr_t)tiny[k] & 15) == 0, "realloc(3) = %p not 16-aligned", tiny[k]);
  }
  for (size_t k = 0; k < 24; k++) free(tiny[k]);
  CHECK(out > 20, "only %d blocks spilled to jemalloc", out);
  for (int i = 0; i < N; i++) {
    size_t sz = 200 + (size_t)(i % 7) * 150;
    CHECK(verify(p[i], sz, (unsigned)i), "content of block %d", i);
    CHECK(malloc_usable_size(p[i]) >= sz, "usable size of block %d", i);
  }
  /* Free every other block, then grow the survivors with realloc: contents move. */
  for (int i = 0; i < N; i += 2) free(p[i]);
  for (int i = 1; i < N; i += 2) {
    size_t sz = 200 + (size_t)(i % 7) * 150;
    void *q = realloc(p[i], sz * 3);
    CHECK(q != NULL, "realloc %d", i);
    CHECK(verify(q, sz, (unsigned)i), "content after realloc of block %d", i);
    p[i] = q;
  }
  for (int i = 1; i < N; i += 2) free(p[i]);

  size_t half = region_size() / 2;
  void *big = malloc(half);
  CHECK(big && in_region(big), "half the region (%zu bytes) does not fit again: %p", half, big);
  free(big);
  void *whole = malloc((region_size() - before) & ~(size_t)15);
  CHECK(whole && in_region(whole), "the whole region (less %zu bytes live before main) does not fit again: %p", before,
        whole);
  free(whole);

  /* A pool block realloc'ed beyond the region moves to jemalloc with its content. */
  char *s = malloc(1000);
  CHECK(in_region(s), "small block in region");
  fill(s, 1000, 99);
  char *t = realloc(s, region_size() * 2);
  CHECK(t && !in_region(t), "grown block should be in jemalloc");
  CHECK(verify(t, 1000, 99), "content kept across the move to jemalloc");
  /* ...and back into the pool when shrunk to fit. */
  char *u = realloc(t, 1000);
  CHECK(u && in_region(u), "shrunk jemalloc block moves back into the pool");
  CHECK(verify(u, 1000, 99), "content kept across the move back");
  free(u);
  return finish("preload_spill");
}
