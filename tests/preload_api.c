/* The malloc family through the exported symbols, as C and glibc define it. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>

#include "death.h"
#include "preload_util.h"

#include <dlfcn.h>

#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
#pragma GCC diagnostic ignored "-Wuse-after-free" /* a failed realloc leaves the block */

static void *volatile sink; /* defeats allocation elision */

int main(void) {
  /* malloc(0): a unique, freeable pointer. */
  void *z1 = malloc(0), *z2 = malloc(0);
  CHECK(z1 && z2 && z1 != z2, "malloc(0) unique: %p %p", z1, z2);
  CHECK(in_region(z1), "malloc(0) from the pool");
  free(z1);
  free(z2);

  /* free(NULL) is a no-op; free keeps errno. */
  errno = 1234;
  free(NULL);
  void *e = malloc(100);
  errno = 4321;
  free(e);
  CHECK(errno == 4321, "free changed errno to %d", errno);

  /* Huge sizes: NULL + ENOMEM. */
  errno = 0;
  sink = malloc(SIZE_MAX);
  CHECK(sink == NULL && errno == ENOMEM, "malloc(SIZE_MAX)");
  errno = 0;
  sink = malloc((size_t)PTRDIFF_MAX + 1);
  CHECK(sink == NULL && errno == ENOMEM, "malloc(PTRDIFF_MAX+1)");
  errno = 0;
  sink = calloc(SIZE_MAX / 2, 3);
  CHECK(sink == NULL && errno == ENOMEM, "calloc overflow");
  errno = 0;
  sink = calloc(HALF_WIDTH, HALF_WIDTH);
  CHECK(sink == NULL && errno == ENOMEM, "calloc overflow 2");

  /* calloc zeroes recycled region memory. */
  enum { K = 64 };
  void *junk[K];
  for (int i = 0; i < K; i++) {
    junk[i] = malloc(512);
    memset(junk[i], 0xAB, 512);
  }
  for (int i = 0; i < K; i++) free(junk[i]);
  for (int i = 0; i < K; i++) {
    unsigned char *c = calloc(8, 64);
    CHECK(c && in_region(c), "calloc from pool");
    int zero = 1;
    for (int j = 0; j < 512; j++) zero &= c[j] == 0;
    CHECK(zero, "calloc block %d not zeroed", i);
    junk[i] = c;
  }
  for (int i = 0; i < K; i++) free(junk[i]);

  /* posix_memalign: EINVAL for bad alignments, untouched out pointer. */
  void *out = (void *)0x1;
  CHECK(posix_memalign(&out, 0, 10) == EINVAL, "posix_memalign 0");
  CHECK(posix_memalign(&out, 3, 10) == EINVAL, "posix_memalign 3");
  CHECK(posix_memalign(&out, sizeof(void *) / 2, 10) == EINVAL, "posix_memalign sizeof(void *) / 2");
  CHECK(posix_memalign(&out, 24, 10) == EINVAL, "posix_memalign 24");
  CHECK(out == (void *)0x1, "out pointer changed on error");
  CHECK(posix_memalign(&out, SIZE_MAX / 2 + 1, 10) == ENOMEM, "posix_memalign huge alignment");
  for (size_t a = sizeof(void *); a <= (1u << 20); a <<= 1) {
    CHECK(posix_memalign(&out, a, 100) == 0 && ((uintptr_t)out % a) == 0, "posix_memalign %zu", a);
    CHECK(in_region(out), "aligned block %zu in region", a);
    free(out);
  }
  errno = 0;
  sink = aligned_alloc(3, 10);
  CHECK(sink == NULL && errno == EINVAL, "aligned_alloc(3)");
  void *al = aligned_alloc(64, 10); /* C17: size need not be a multiple */
  CHECK(al && (uintptr_t)al % 64 == 0, "aligned_alloc(64, 10)");
  free(al);
  void *m = memalign(48, 100); /* glibc rounds 48 up to 64 */
  CHECK(m && (uintptr_t)m % 64 == 0, "memalign(48)");
  free(m);
  long ps = sysconf(_SC_PAGESIZE);
  void *v = valloc(1);
  CHECK(v && (uintptr_t)v % (uintptr_t)ps == 0, "valloc alignment");
  free(v);
  void *pv = pvalloc(1);
  CHECK(pv && (uintptr_t)pv % (uintptr_t)ps == 0 && malloc_usable_size(pv) >= (size_t)ps, "pvalloc");
  free(pv);

  /* realloc. */
  char *r = realloc(NULL, 100);
  CHECK(r != NULL, "realloc(NULL)");
  fill(r, 100, 5);
  char *blocker = malloc(64); /* keeps r's successor in use */
  char *r2 = realloc(r, 5000);
  CHECK(r2 && verify(r2, 100, 5), "realloc move keeps content");
  CHECK(r2 != r, "realloc moved past an in-use successor");
  free(blocker);
  /* Blocks above the size classes (8 KiB; 256 KiB in a region of 128 MiB
   * and more, as the VM's) are ranges: they grow in place into a free
   * successor and shrink in place. */
  size_t n = region_size() >= (128u << 20) ? 300000 : 10000;
  char *a = malloc(n), *b = malloc(n), *c = malloc(n);
  fill(a, n, 9);
  free(b);
  char *a2 = realloc(a, n * 9 / 5); /* the next range is free: grows in place */
  CHECK(a2 == a, "realloc(%zu -> %zu) did not grow in place (%p -> %p)", n, n * 9 / 5, (void *)a, (void *)a2);
  CHECK(verify(a2, n, 9), "in-place growth keeps content");
  char *a3 = realloc(a2, n * 9 / 10); /* shrink: in place */
  CHECK(a3 == a2 && verify(a3, n * 9 / 10, 9), "realloc shrink in place");
  /* A small object stays put while the new size fits its class. */
  char *sm = malloc(100);
  fill(sm, 100, 3);
  CHECK(realloc(sm, 110) == sm && verify(sm, 100, 3), "small realloc within its class");
  free(sm);
  errno = 0;
  CHECK(realloc(a3, SIZE_MAX) == NULL && errno == ENOMEM, "realloc huge");
  CHECK(verify(a3, n * 9 / 10, 9), "failed realloc keeps the block");
  errno = 0;
  CHECK(reallocarray(a3, SIZE_MAX / 2, 4) == NULL && errno == ENOMEM, "reallocarray overflow");
  char *a4 = reallocarray(a3, 10, 10); /* a3 was not freed: the failed calls left it */
  CHECK(a4 && verify(a4, 100, 9), "reallocarray");
  CHECK(realloc(a4, 0) == NULL, "realloc(p, 0) frees and returns NULL");
  free(c);
  free(r2);

  /* malloc_usable_size; cfree (exported by the interposer, gone from glibc's headers). */
  void (*cfree_fn)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
  CHECK(cfree_fn != NULL, "cfree not exported");
  if (!cfree_fn) cfree_fn = free;
  CHECK(malloc_usable_size(NULL) == 0, "usable size of NULL");
  for (size_t n = 1; n < 5000; n += 333) {
    void *q = malloc(n);
    CHECK(malloc_usable_size(q) >= n, "usable size %zu", n);
    memset(q, 1, malloc_usable_size(q));
    cfree_fn(q);
  }
  /* mallinfo2 and malloc_stats report the pool. */
  /* arena: the device bytes this process holds (chunks), at most the window. */
  struct mallinfo2 before = mallinfo2();
  CHECK(before.arena > 0 && before.arena <= region_size(), "mallinfo2 arena %zu, region %llu", before.arena,
        (unsigned long long)region_size());
  void *mi = malloc(1 << 20);
  struct mallinfo2 after = mallinfo2();
  CHECK(in_region(mi) && after.uordblks >= before.uordblks + (1 << 20), "mallinfo2 uordblks %zu -> %zu",
        before.uordblks, after.uordblks);
  CHECK(after.arena - after.fordblks >= before.arena - before.fordblks + (1 << 20),
        "mallinfo2 arena - fordblks %zu -> %zu", before.arena - before.fordblks, after.arena - after.fordblks);
  free(mi);
  return finish("preload_api");
}
