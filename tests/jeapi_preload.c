/* jeapi_preload.c [--preloaded] - a program linked with -ljemalloc that
 * uses jemalloc's own API on malloc's blocks (issue 15): under the preload
 * those are pool blocks, and the calls must route them by address (they
 * crashed in jemalloc before). Without the preload the same checks hold on
 * jemalloc alone; with --preloaded the blocks must also be in the region.
 * (Not named preload_*: vm-test runs those.) */
#include <jemalloc/jemalloc.h>

#include "preload_util.h"

static bool preloaded;

static void in_pool(const void *p, const char *what) {
  if (preloaded) CHECK(in_region(p), "%s: %p is not in the region", what, p);
}

int main(int argc, char **argv) {
  preloaded = argc > 1 && !strcmp(argv[1], "--preloaded");
  char *a = malloc(100);
  in_pool(a, "malloc");
  CHECK(sallocx(a, 0) >= 100, "sallocx(malloc(100)) = %zu", sallocx(a, 0));
  fill(a, 100, 1);
  char *b = rallocx(a, 5000, 0);
  CHECK(b && sallocx(b, 0) >= 5000 && verify(b, 100, 1), "rallocx to 5000 keeps the bytes");
  char *c = rallocx(b, 300000, MALLOCX_ZERO);
  CHECK(c && verify(c, 100, 1), "rallocx with MALLOCX_ZERO keeps the bytes");
  size_t zeros = 0;
  for (size_t i = 5000; c && i < 300000; i++) zeros += c[i] == 0;
  CHECK(zeros == 300000 - 5000, "rallocx with MALLOCX_ZERO: %zu of the new bytes are zero", zeros);
  size_t now = xallocx(c, 100000, 0, 0);
  CHECK(now >= 100000 && now == sallocx(c, 0), "xallocx shrinking in place: %zu", now);
  char *s = rallocx(c, 1000, MALLOCX_ALIGN(64));
  CHECK(s && sallocx(s, 0) < 100000 && verify(s, 100, 1), "rallocx with flags shrinks: %zu bytes",
        s ? sallocx(s, 0) : 0);
  dallocx(s ? s : c, 0);
  char *u;
  do u = mallocx(5000, 0); /* a block that is not 4096-aligned, room after it */
  while (((uintptr_t)u & 4095) == 0);
  size_t was = sallocx(u, 0);
  CHECK(xallocx(u, 6000, 0, MALLOCX_ALIGN(4096)) == was && sallocx(u, 0) == was,
        "xallocx cannot give an alignment in place: %zu", sallocx(u, 0));
  dallocx(u, 0);

  char *d = mallocx(1000, MALLOCX_ALIGN(4096) | MALLOCX_ZERO);
  in_pool(d, "mallocx");
  size_t dz = 0;
  for (int i = 0; d && i < 1000; i++) dz += d[i] == 0;
  CHECK(d && ((uintptr_t)d & 4095) == 0 && dz == 1000, "mallocx aligned and zeroed");
  char *e = rallocx(d, 2000, MALLOCX_ALIGN(8192));
  CHECK(e && ((uintptr_t)e & 8191) == 0, "rallocx to a larger alignment");
  sdallocx(e, 2000, MALLOCX_ALIGN(8192));

  char *z = mallocx(100, MALLOCX_ZERO); /* the whole usable block is zero, as jemalloc's */
  size_t zu = z ? sallocx(z, 0) : 0, nz = 0;
  for (size_t i = 0; i < zu; i++) nz += z[i] != 0;
  CHECK(z && nz == 0, "mallocx(100, MALLOCX_ZERO): %zu of %zu usable bytes not zero", nz, zu);
  dallocx(z, 0);

  /* nallocx is the size mallocx gives (jemalloc's manual), whatever the
   * alignment. */
  static const size_t sizes[] = {1, 16, 100, 1000, 5000, 40000, 300000};
  const int aligns[] = {0, MALLOCX_ALIGN(64), MALLOCX_ALIGN(4096)};
  for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    for (unsigned j = 0; j < sizeof aligns / sizeof aligns[0]; j++) {
      void *f = mallocx(sizes[i], aligns[j]);
      in_pool(f, "mallocx");
      CHECK(f && sallocx(f, 0) == nallocx(sizes[i], aligns[j]), "mallocx(%zu, flags %#x): sallocx %zu, nallocx %zu",
            sizes[i], aligns[j], f ? sallocx(f, 0) : 0, nallocx(sizes[i], aligns[j]));
      sdallocx(f, sizes[i], aligns[j]);
    }
  free(malloc(10)); /* jemalloc's blocks (from mallocx) and the pool's mix in free too */

  size_t sz = sizeof(unsigned);
  unsigned narenas = 0;
  CHECK(mallctl("arenas.narenas", &narenas, &sz, NULL, 0) == 0 && narenas > 0, "mallctl reaches jemalloc");
  printf("jemalloc API: %s, %d failure(s)\n", preloaded ? "preloaded" : "jemalloc alone", g_failures);
  return g_failures ? 1 : 0;
}
