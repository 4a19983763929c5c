/* region.c - open and map the device window.
 *
 * /dev/mem and other character devices are mapped MAP_SHARED at offset BASE
 * (O_SYNC for /dev/mem unless MEMPOOL_SYNC=0). A regular file stands in for
 * a device: its offsets are the "physical addresses"; it is created and
 * extended (sparse) when shorter than HIGH+1. "anon" maps private anonymous
 * memory. mmap only reserves: no page is touched here, so start-up cost does
 * not depend on the region's size.
 */
#define _GNU_SOURCE
#include "region.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "msg.h"

static size_t page_size(void) {
  long p = sysconf(_SC_PAGESIZE);
  return p > 0 ? (size_t)p : 4096;
}

void *mp_meta_map(size_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void mp_meta_unmap(void *p, size_t len) {
  if (p) munmap(p, len);
}

int mp_region_open(const mp_config *cfg, mp_region *r, char *err, size_t errlen) {
  size_t pg = page_size();
  uint64_t want = cfg->high - cfg->base + 1;
  const char *dev = cfg->device;
  int saved_errno = errno;

  memset(r, 0, sizeof *r);
  r->fd = -1;
  r->device = dev;
  r->dev_offset = cfg->base;
  if (cfg->base % pg) {
    mp_format(err, errlen, "MEMPOOL_BASE (%#lx) is not aligned to the page size (%lu)",
              (unsigned long)cfg->base, (unsigned long)pg);
    return -EINVAL;
  }
  r->map_len = (size_t)((want + pg - 1) / pg * pg);
  r->size = (size_t)(want & ~(uint64_t)(MP_GRANULE - 1));

  void *m;
  if (!strcmp(dev, "anon")) {
    m = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
      int e = errno;
      mp_format(err, errlen, "cannot map %lu bytes of anonymous memory: %s", (unsigned long)r->map_len,
                mp_strerror(e));
      errno = saved_errno;
      return -e;
    }
  } else {
    bool is_devmem = !strcmp(dev, "/dev/mem");
    int flags = O_RDWR | O_CLOEXEC;
    if (is_devmem && cfg->sync) flags |= O_SYNC;
    int fd = open(dev, flags);
    if (fd < 0 && errno == ENOENT) {
      /* A path that does not exist yet may be created as a regular file,
       * but never directly in /dev (a missing device is an error, not a
       * file); /dev/shm/... is tmpfs and fine. */
      bool in_dev = !strncmp(dev, "/dev/", 5) && !strchr(dev + 5, '/');
      if (!in_dev) fd = open(dev, flags | O_CREAT | O_EXCL, 0600);
      else errno = ENOENT;
    }
    if (fd < 0) {
      int e = errno;
      mp_format(err, errlen, "cannot open %s: %s", dev, mp_strerror(e));
      errno = saved_errno;
      return -e;
    }
    int rc;
    struct stat st;
    if (fstat(fd, &st) != 0) {
      rc = -errno;
      mp_format(err, errlen, "cannot stat %s: %s", dev, mp_strerror(-rc));
      goto fail_fd;
    }
    if (S_ISREG(st.st_mode)) {
      uint64_t end = cfg->base + r->map_len;
      if ((uint64_t)st.st_size < end && ftruncate(fd, (off_t)end) != 0) {
        rc = -errno;
        mp_format(err, errlen, "cannot extend %s to %lu bytes: %s",
                  dev, (unsigned long)end, mp_strerror(-rc));
        goto fail_fd;
      }
    } else if (S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode) || S_ISFIFO(st.st_mode) ||
               S_ISSOCK(st.st_mode)) {
      rc = -ENODEV;
      mp_format(err, errlen, "%s is not a character device or a regular file", dev);
      goto fail_fd;
    }
    /* One process per physical range: an open file description lock on the
     * bytes of the device (works on character devices too), released when
     * the last descriptor of this open closes, i.e. when the owner exits. */
    struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)cfg->base,
                       .l_len = (off_t)r->map_len};
    if (fcntl(fd, F_OFD_SETLK, &lk) != 0) {
      rc = (errno == EAGAIN || errno == EACCES) ? -EBUSY : -errno;
      if (rc == -EBUSY)
        mp_format(err, errlen, "region %s %#lx..%#lx is in use by another process",
                  dev, (unsigned long)cfg->base, (unsigned long)cfg->high);
      else
        mp_format(err, errlen, "cannot lock region %s %#lx..%#lx: %s",
                  dev, (unsigned long)cfg->base, (unsigned long)cfg->high, mp_strerror(-rc));
      goto fail_fd;
    }
    m = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)cfg->base);
    if (m == MAP_FAILED) {
      int e = errno;
      rc = -e;
      if (e == EPERM && S_ISCHR(st.st_mode))
        mp_format(err, errlen, "mmap of %s at %#lx (%lu bytes) refused: %s (System RAM or a range a driver claims?)",
                  dev, (unsigned long)cfg->base, (unsigned long)r->map_len, mp_strerror(e));
      else
        mp_format(err, errlen, "mmap of %s at %#lx (%lu bytes) failed: %s",
                  dev, (unsigned long)cfg->base, (unsigned long)r->map_len, mp_strerror(e));
      goto fail_fd;
    }
    r->fd = fd;
    r->shared = true;
    goto mapped;
  fail_fd:
    close(fd);
    errno = saved_errno;
    return rc;
  }
mapped:
  r->base = (uintptr_t)m;
  errno = saved_errno;
  return 0;
}

void mp_region_close(mp_region *r) {
  if (r->base) munmap((void *)r->base, r->map_len);
  if (r->fd >= 0) close(r->fd);
  r->base = 0;
  r->size = 0;
  r->fd = -1;
}

int mp_region_privatize(mp_region *r, mp_copy_fn copy_ranges, void *ctx) {
  if (!r->shared) return 0;
  void *copy = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (copy == MAP_FAILED) return -errno;
  copy_ranges(ctx, (uintptr_t)copy);
  void *moved = mremap(copy, r->map_len, r->map_len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)r->base);
  if (moved == MAP_FAILED) {
    int e = errno;
    munmap(copy, r->map_len);
    return -e;
  }
  r->shared = false;
  if (r->fd >= 0) close(r->fd);  /* the parent keeps its own descriptor */
  r->fd = -1;
  return 0;
}
