/* Blocks from every allocating entry point land in the device's mapping, at
 * device offsets inside [BASE, HIGH], judged from /proc/self/maps; a file
 * standing in for the device gets real blocks only for the chunks claimed. */
#include <malloc.h>
#include <sys/stat.h>

#include "preload_util.h"

int main(void) {
  const size_t sizes[] = {0, 1, 15, 16, 17, 100, 4096, 65536, 1 << 20};
  void *p[32];
  int n = 0;
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) p[n++] = malloc(sizes[i]);
  p[n++] = calloc(10, 100);
  p[n++] = realloc(NULL, 300);
  void *a = NULL;
  CHECK(posix_memalign(&a, 4096, 5000) == 0, "posix_memalign");
  p[n++] = a;
  p[n++] = aligned_alloc(256, 512);
  p[n++] = memalign(64, 100);
  p[n++] = valloc(10);
  p[n++] = pvalloc(10);

  for (int i = 0; i < n; i++) {
    CHECK(p[i] != NULL, "block %d is NULL", i);
    CHECK(in_region(p[i]), "block %d (%p, phys %#llx) is not in the region", i, p[i],
          (unsigned long long)phys_of(p[i]));
    CHECK(((uintptr_t)p[i] & 15) == 0, "block %d not 16-aligned", i);
    size_t u = malloc_usable_size(p[i]);
    fill(p[i], u, (unsigned)i);
  }
  CHECK(((uintptr_t)a & 4095) == 0, "posix_memalign 4096 alignment");
  for (int i = 0; i < n; i++) CHECK(verify(p[i], malloc_usable_size(p[i]), (unsigned)i), "content of block %d", i);

  /* The file reaches past every block (no SIGBUS) but holds only the chunks
   * claimed: a few MiB of a 64 MiB window. */
  struct stat st;
  CHECK(stat(getenv("MEMPOOL_DEVICE"), &st) == 0, "stat device");
  if (S_ISREG(st.st_mode)) { /* a file standing in for /dev/mem (which has no size) */
    for (int i = 0; i < n; i++)
      CHECK(phys_of(p[i]) + malloc_usable_size(p[i]) <= (uint64_t)st.st_size, "block %d ends past the file (%lld)", i,
            (long long)st.st_size);
    CHECK((uint64_t)st.st_size <= region_high() + 1, "device file size %lld beyond HIGH", (long long)st.st_size);
    CHECK((uint64_t)st.st_blocks * 512 < 16u << 20, "device file has %lld bytes allocated: more than claimed",
          (long long)st.st_blocks * 512);
    /* The file itself holds each block's bytes at the offset the maps give
     * (read(2), not the mapping): a 64-bit offset cut to 32 bits would map
     * another page of it (qemu-arm user emulation does). */
    int fd = open(getenv("MEMPOOL_DEVICE"), O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0, "open device");
    static unsigned char seen[4096];
    for (int i = 0; fd >= 0 && i < n; i++) {
      size_t u = malloc_usable_size(p[i]), len = u < sizeof seen ? u : sizeof seen;
      CHECK(pread(fd, seen, len, (off_t)phys_of(p[i])) == (ssize_t)len && memcmp(seen, p[i], len) == 0,
            "block %d: the file at %#llx does not hold its bytes", i, (unsigned long long)phys_of(p[i]));
    }
    if (fd >= 0) close(fd);
  }

  /* Blocks do not overlap: distinct physical ranges. */
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      if (i != j) {
        uintptr_t s = (uintptr_t)p[i], e = s + malloc_usable_size(p[i]);
        CHECK((uintptr_t)p[j] < s || (uintptr_t)p[j] >= e, "block %d inside block %d", j, i);
      }
  for (int i = 0; i < n; i++) free(p[i]);
  return finish("preload_placement");
}
