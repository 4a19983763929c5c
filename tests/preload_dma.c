/* preload_dma.c - mempool_default and the DMA calls as a program that does
 * not link the library finds them: dlsym(RTLD_DEFAULT, ...). Modes:
 *   file     (preload_run.sh: a file region; scripts/vm-test: the real /dev/mem)
 *            malloc's blocks of 16 B .. 1 MiB:
 *            mempool_phys is the file offset /proc/self/maps gives, mempool_virt
 *            lands back, a stack address is EINVAL, the syncs return 0; a
 *            chunk not held is EINVAL (and its sync no fault); a fork
 *            child's inherited block is EOPNOTSUPP, a block it allocates itself
 *            is the device's again
 *   anon     (MEMPOOL_DEVICE=anon) EOPNOTSUPP
 *   udmabuf  (dma_test.sh: a u-dma-buf stand-in, no BASE/HIGH) the window is
 *            the whole buffer (UDMABUF_SIZE), addresses are UDMABUF_PHYS + offset
 *   none     (no preload) no mempool_default at all */
#include <dlfcn.h>
#include <errno.h>
#include <sys/wait.h>

#include "mempool.h"
#include "preload_util.h"

static mempool_t *(*p_default)(void);
static uint64_t (*p_phys)(const mempool_t *, const void *);
static void *(*p_virt)(const mempool_t *, uint64_t);
static int (*p_sync_dev)(const mempool_t *, const void *, size_t);
static int (*p_sync_cpu)(const mempool_t *, const void *, size_t);
static int (*p_stats)(mempool_t *, struct mempool_stats *);
static void *(*p_base)(const mempool_t *);

static void look_up(void) {
  p_default = (mempool_t * (*)(void)) dlsym(RTLD_DEFAULT, "mempool_default");
  p_phys = (uint64_t(*)(const mempool_t *, const void *))dlsym(RTLD_DEFAULT, "mempool_phys");
  p_virt = (void *(*)(const mempool_t *, uint64_t))dlsym(RTLD_DEFAULT, "mempool_virt");
  p_sync_dev = (int (*)(const mempool_t *, const void *, size_t))dlsym(RTLD_DEFAULT, "mempool_sync_for_device");
  p_sync_cpu = (int (*)(const mempool_t *, const void *, size_t))dlsym(RTLD_DEFAULT, "mempool_sync_for_cpu");
  p_stats = (int (*)(mempool_t *, struct mempool_stats *))dlsym(RTLD_DEFAULT, "mempool_get_stats");
  p_base = (void *(*)(const mempool_t *))dlsym(RTLD_DEFAULT, "mempool_base");
}

/* One block: its address against the maps' (dev NULL: any mapping, plus bus). */
static void check_block(mempool_t *m, char *p, size_t n, const char *dev, uint64_t bus) {
  uintptr_t s, e;
  uint64_t off;
  char path[PATH_MAX];
  uint64_t want = dev                                              ? dev_offset_of(p, dev)
                  : mapping_of(p, &s, &e, &off, path, sizeof path) ? off + ((uintptr_t)p - s)
                                                                   : UINT64_MAX;
  CHECK(want != UINT64_MAX, "block %p (%zu bytes) not in the device's mapping", (void *)p, n);
  uint64_t phys = p_phys(m, p);
  CHECK(phys == want + bus, "mempool_phys(%p) = %#llx, the maps say %#llx", (void *)p, (unsigned long long)phys,
        (unsigned long long)(want + bus));
  CHECK(p_virt(m, phys) == p, "mempool_virt(%#llx) = %p, not %p", (unsigned long long)phys, p_virt(m, phys), (void *)p);
  CHECK(p_phys(m, p + n - 1) == phys + n - 1, "last byte of %zu", n);
  memset(p, 0x3c, n);
  CHECK(p_sync_dev(m, p, n) == 0, "sync_for_device(%zu): %s", n, strerror(errno));
  CHECK(p_sync_cpu(m, p, n) == 0, "sync_for_cpu(%zu): %s", n, strerror(errno));
}

static void sizes(mempool_t *m, const char *dev, uint64_t bus) {
  for (size_t n = 16; n <= (1u << 20); n *= 4) {
    char *p = malloc(n);
    check_block(m, p, n, dev, bus);
    free(p);
  }
  char on_stack[32];
  errno = 0;
  CHECK(p_phys(m, on_stack) == MEMPOOL_NO_PHYS && errno == EINVAL, "stack address: errno %d", errno);
  errno = 0;
  CHECK(p_sync_dev(m, on_stack, 32) == -1 && errno == EINVAL, "sync of the stack: errno %d", errno);
}

/* The window's last bytes, in a chunk of the shared window this process
 * does not hold (it uses little): EINVAL, and a sync of them returns
 * instead of faulting on the reserved (PROT_NONE) addresses. Were the
 * chunk held, the maps' offset would be the answer. */
static void away(mempool_t *m, const char *dev) {
  struct mempool_stats st;
  CHECK(p_stats(m, &st) == 0, "stats");
  char *q = (char *)p_base(m) + st.region_bytes - 16;
  uint64_t want = dev_offset_of(q, dev);
  errno = 0;
  uint64_t phys = p_phys(m, q);
  if (want == UINT64_MAX) {
    CHECK(phys == MEMPOOL_NO_PHYS && errno == EINVAL, "a chunk not held: %#llx, errno %d", (unsigned long long)phys,
          errno);
    errno = 0;
    CHECK(p_sync_dev(m, q, 16) == -1 && errno == EINVAL, "sync of a chunk not held: errno %d", errno);
  } else {
    CHECK(phys == want, "the last chunk is held: %#llx, the maps say %#llx", (unsigned long long)phys,
          (unsigned long long)want);
  }
}

/* A fork child: what it inherited is a copy; what it allocates is the device's. */
static void forked(mempool_t *m, const char *dev) {
  char *kept = malloc(5000);
  pid_t pid = fork();
  if (pid == 0) {
    errno = 0;
    CHECK(p_phys(m, kept) == MEMPOOL_NO_PHYS && errno == EOPNOTSUPP, "inherited block: errno %d", errno);
    CHECK(dev_offset_of(kept, dev) == UINT64_MAX, "inherited block still maps the device");
    char *mine = malloc(5000);
    check_block(m, mine, 5000, dev, 0);
    _exit(g_failures ? 1 : 0);
  }
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork child failed (%#x)", st);
  CHECK(p_phys(m, kept) == dev_offset_of(kept, dev), "parent's block after fork");
  free(kept);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "file";
  look_up();
  if (!strcmp(mode, "none")) {
    CHECK(p_default == NULL, "mempool_default found without the library");
    return finish("preload_dma none");
  }
  CHECK(p_default && p_phys && p_virt && p_sync_dev && p_sync_cpu && p_stats && p_base, "an export is missing");
  if (g_failures) return finish("preload_dma");
  mempool_t *m = p_default();
  CHECK(m != NULL, "no default pool under the preload");
  if (!m) return finish("preload_dma");
  if (!strcmp(mode, "anon")) {
    char *p = malloc(100);
    errno = 0;
    CHECK(p_phys(m, p) == MEMPOOL_NO_PHYS && errno == EOPNOTSUPP, "anon: errno %d", errno);
    free(p);
  } else if (!strcmp(mode, "udmabuf")) {
    struct mempool_stats st;
    uint64_t size = env_u64("UDMABUF_SIZE", 0);
    CHECK(p_stats(m, &st) == 0 && st.region_bytes == size, "window %llu bytes, the buffer %llu",
          (unsigned long long)st.region_bytes, (unsigned long long)size);
    sizes(m, NULL, env_u64("UDMABUF_PHYS", 0));
  } else {
    sizes(m, getenv("MEMPOOL_DEVICE"), 0);
    away(m, getenv("MEMPOOL_DEVICE"));
    forked(m, getenv("MEMPOOL_DEVICE"));
  }
  return finish("preload_dma");
}
