/* region.c - the device window: validated, opened at a descriptor of the
 * library's own, reserved in the address space, and mapped chunk by chunk.
 *
 * A regular file stands in for a device: its offsets are the "physical
 * addresses". "anon" maps private anonymous memory. mmap only reserves: no
 * page is touched here, so start-up cost does not depend on the region's size.
 *
 * Shared mode (the interposer's default): open() reserves the window's
 * addresses (PROT_NONE) and maps nothing of the device; mp_region_claim()
 * opens the device, locks a chunk's bytes with a non-blocking OFD write lock,
 * maps it MAP_SHARED|MAP_FIXED over the reservation and closes the
 * descriptor. A mapping keeps its open file description (and so its lock)
 * alive: a chunk stays ours until it is unmapped or the process dies.
 * Exclusive mode (MEMPOOL_SHARE=0, API pools): the whole window is locked and
 * mapped at open.
 */
#define _GNU_SOURCE
#include "region.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <unistd.h>

#include "config.h"
#include "msg.h"
#include "nocancel.h"

#define UL(x) ((unsigned long long)(x))

/* Device offsets are 64-bit on 32-bit targets too (LPAE): mmap, ftruncate,
 * fallocate and the OFD locks take them as off_t (meson builds with
 * -D_FILE_OFFSET_BITS=64, which makes mmap mmap64). */
_Static_assert(sizeof(off_t) == 8, "build with -D_FILE_OFFSET_BITS=64: off_t must hold a 64-bit device offset");

static size_t page_size(void) {
  long p = sysconf(_SC_PAGESIZE);
  return p > 0 ? (size_t)p : 4096;
}

void *mp_meta_map(size_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void *mp_meta_reserve(size_t len) {
  void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

bool mp_meta_commit(void *p, size_t len) { return mprotect(p, len, PROT_READ | PROT_WRITE) == 0; }

bool mp_meta_resident(void *p, size_t len) {
  unsigned char v = 0;
  size_t pg = page_size();
  return len >= pg && mincore((char *)p + (len & ~(pg - 1)) - pg, pg, &v) == 0 && (v & 1);
}

void mp_meta_unmap(void *p, size_t len) {
  if (p) munmap(p, len);
}

/* ---- the device, opened for one claim ----------------------------------- */

/* The region keeps no descriptor: every chunk is claimed through an open of
 * its own, closed at once; its mapping keeps that open file description, and
 * so its lock, alive. Unmapping the chunk drops the lock. The program's
 * descriptors are never touched, closed or reused, and a daemon's close loop
 * cannot lose a claim. The path is opened again without following a final
 * symlink and must still be the same file (device and inode). */
static int open_same(const mp_region *r) {
  int fd = open(r->device, r->open_flags | O_NOFOLLOW);
  struct stat st;
  if (fd >= 0 && (fstat(fd, &st) != 0 || st.st_dev != r->dev || st.st_ino != r->ino)) {
    close(fd);
    errno = ESTALE;
    fd = -1;
  }
  return fd;
}

/* ---- device geometry: sysfs ------------------------------------------------ */

/* A character device's number, or false. */
static bool char_dev(const char *device, dev_t *rdev) {
  struct stat st;
  if (stat(device, &st) != 0 || !S_ISCHR(st.st_mode)) return false;
  *rdev = st.st_rdev;
  return true;
}

/* Opens SYSFS/dev/char/MAJ:MIN/NAME (the device's own sysfs directory:
 * dax, u-dma-buf) if it is a regular file: never a FIFO or a link planted
 * there (MEMPOOL_SYSFS_ROOT), no hang. fd or -1; errno untouched. */
static int sysfs_open(dev_t rdev, const char *root, const char *name, int flags) {
  char path[4200];
  struct stat st;
  mp_format(path, sizeof path, "%s/dev/char/%u:%u/%s", root && *root ? root : "/sys", major(rdev), minor(rdev), name);
  int saved = errno, fd = open(path, flags | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
  if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
    close(fd);
    fd = -1;
  }
  errno = saved;
  return fd;
}

/* The number in attribute NAME (decimal or 0x hex, one line), or false. */
static bool sysfs_u64(dev_t rdev, const char *root, const char *name, uint64_t *out) {
  char buf[40];
  int saved = errno, fd = sysfs_open(rdev, root, name, O_RDONLY);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  if (fd >= 0) close(fd);
  errno = saved;
  if (n <= 0) return false;
  buf[n] = '\0';
  buf[strcspn(buf, "\n")] = '\0';
  return mp_parse_u64(buf, out) == 0;
}

uint64_t mp_region_device_align(const char *device, const char *sysfs_root) {
  dev_t rdev;
  uint64_t a = 0;
  if (!char_dev(device, &rdev) || !sysfs_u64(rdev, sysfs_root, "align", &a)) return 0;
  return a;
}

/* u-dma-buf: its class directory (what /sys/dev/char/MAJ:MIN links to)
 * has phys_addr, size and the sync controls. */
static bool udmabuf_of(dev_t rdev, const char *root, uint64_t *phys, uint64_t *size) {
  uint64_t p, s;
  if (!sysfs_u64(rdev, root, "phys_addr", &p) || !sysfs_u64(rdev, root, "size", &s)) return false;
  int fd = sysfs_open(rdev, root, "sync_for_device", O_WRONLY);
  if (fd < 0) return false;
  close(fd);
  *phys = p;
  *size = s;
  return true;
}

bool mp_region_udmabuf(const char *device, const char *sysfs_root, uint64_t *phys, uint64_t *size) {
  dev_t rdev;
  return char_dev(device, &rdev) && udmabuf_of(rdev, sysfs_root, phys, size);
}

/* u-dma-buf's sync_direction values: the kernel's enum dma_data_direction. */
enum { UDMABUF_TO_DEVICE = 1, UDMABUF_FROM_DEVICE = 2 };

/* One attribute written whole; 0 or -errno. */
static int sysfs_put(const mp_region *r, const char *name, uint64_t v) {
  char val[32];
  size_t n = mp_format(val, sizeof val, "%llu", (unsigned long long)v);
  int fd = sysfs_open(r->rdev, r->sysfs_root, name, O_WRONLY | O_TRUNC); /* as a shell's > does */
  if (fd < 0) return -EIO;
  ssize_t w = write(fd, val, n);
  int rc = w == (ssize_t)n ? 0 : w < 0 ? -errno : -EIO;
  close(fd);
  return rc;
}

int mp_region_sysfs_sync(const mp_region *r, size_t off, size_t len, bool to_device) {
  int saved = errno, cancel = mp_nocancel_begin(); /* open, write and close are cancellation points */
  int rc = sysfs_put(r, "sync_offset", r->dev_offset + off);
  if (rc == 0) rc = sysfs_put(r, "sync_size", len);
  if (rc == 0) rc = sysfs_put(r, "sync_direction", to_device ? UDMABUF_TO_DEVICE : UDMABUF_FROM_DEVICE);
  if (rc == 0) rc = sysfs_put(r, to_device ? "sync_for_device" : "sync_for_cpu", 1);
  mp_nocancel_end(cancel);
  errno = saved;
  return rc;
}

/* What the sync calls do on this backing, and the bus address of offset 0. */
static void learn_dma(mp_region *r, const struct stat *st, const char *sysfs_root) {
  uint64_t phys, size, coherent = 0;
  r->dma = MP_DMA_CPU;
  r->sysfs_root = sysfs_root;
  if (!S_ISCHR(st->st_mode)) return;
  r->rdev = st->st_rdev;
  if (r->open_flags & O_SYNC) /* /dev/mem with O_SYNC: uncached (x86 UC-, arm64 Device or Normal-NC) */
    r->dma = MP_DMA_COHERENT;
  else if (udmabuf_of(r->rdev, sysfs_root, &phys, &size)) {
    r->bus_offset = phys;
    r->dma =
        sysfs_u64(r->rdev, sysfs_root, "dma_coherent", &coherent) && coherent == 1 ? MP_DMA_COHERENT : MP_DMA_SYSFS;
  } else if (sysfs_u64(r->rdev, sysfs_root, "align", &size) && sysfs_u64(r->rdev, sysfs_root, "resource", &phys)) {
    r->bus_offset = phys; /* device dax: its offset 0 is the physical "resource" (one range, as pmem's) */
  }
}

/* ---- opening --------------------------------------------------------------- */

typedef struct open_ctx {
  char *err;
  size_t errlen;
} open_ctx;

/* Creates a missing regular file, never in /dev however the path is spelled
 * (the directory is compared by identity, not by name). fd or -errno. */
static int create_file(const char *dev, int flags) {
  char dir[4096];
  const char *slash = strrchr(dev, '/');
  const char *name = slash ? slash + 1 : dev;
  size_t dlen = !slash ? 1 : slash == dev ? 1 : (size_t)(slash - dev);
  if (dlen >= sizeof dir) return -ENAMETOOLONG;
  memcpy(dir, !slash ? "." : dev, dlen);
  dir[dlen] = '\0';
  int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return -errno;
  struct stat d, devdir;
  int rc;
  if (fstat(dfd, &d) != 0)
    rc = -errno;
  else if (stat("/dev", &devdir) == 0 && d.st_dev == devdir.st_dev && d.st_ino == devdir.st_ino)
    rc = -ENOENT;
  else if ((rc = openat(dfd, name, flags | O_CREAT | O_EXCL | O_NOFOLLOW, 0600)) < 0)
    rc = -errno;
  close(dfd);
  return rc;
}

static int open_device(const mp_config *cfg, int flags, open_ctx *o) {
  const char *dev = cfg->device;
  int fd = open(dev, flags | O_NOFOLLOW);
  int e = fd < 0 ? errno : 0;
  if (e == ENOENT) {
    fd = create_file(dev, flags);
    if (fd == -EEXIST && (fd = open(dev, flags | O_NOFOLLOW)) < 0) fd = -errno; /* created meanwhile */
    e = fd < 0 ? -fd : 0;
  }
  if (e) {
    if (e == ELOOP)
      mp_format(o->err, o->errlen, "%.160s is a symbolic link: not followed", dev);
    else
      mp_format(o->err, o->errlen, "cannot open %.160s: %s", dev, mp_strerror(e));
    return -e;
  }
  return fd;
}

/* A regular file must be the caller's own and writable by it alone, and
 * RLIMIT_FSIZE must allow the region's end (no SIGXFSZ later). */
static int check_file(const mp_config *cfg, const struct stat *st, uint64_t end, open_ctx *o) {
  uid_t me = geteuid();
  if (st->st_uid != me && st->st_uid != 0) {
    mp_format(o->err, o->errlen, "%.160s is owned by uid %u, not by this user (%u) or root: not used", cfg->device,
              (unsigned)st->st_uid, (unsigned)me);
    return -EPERM;
  }
  if (st->st_mode & (S_IWGRP | S_IWOTH)) {
    mp_format(o->err, o->errlen, "%.160s is writable by group or others (mode %o): not used", cfg->device,
              (unsigned)(st->st_mode & 07777));
    return -EPERM;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (uint64_t)rl.rlim_cur < end) {
    mp_format(o->err, o->errlen, "RLIMIT_FSIZE (%llu bytes) is below the region's end in %s (%llu bytes)",
              UL(rl.rlim_cur), cfg->device, UL(end));
    return -EFBIG;
  }
  return 0;
}

static int lock_range(int fd, short type, uint64_t off, uint64_t len) {
  struct flock lk = {.l_type = type, .l_whence = SEEK_SET, .l_start = (off_t)off, .l_len = (off_t)len};
  return fcntl(fd, F_OFD_SETLK, &lk);
}

static void say_mmap_failure(const mp_region *r, bool chr, int e, uint64_t off, uint64_t len, open_ctx *o) {
  if (e == EPERM && chr)
    mp_format(o->err, o->errlen,
              "mmap of %s at %#llx (%llu bytes) refused: %s (System RAM or a range a driver claims?)", r->device,
              UL(off), UL(len), mp_strerror(e));
  else
    mp_format(o->err, o->errlen, "mmap of %.160s at %#llx (%llu bytes) failed: %s", r->device, UL(off), UL(len),
              mp_strerror(e));
}

/* Exclusive: the whole window locked and mapped now. */
static int map_exclusive(const mp_config *cfg, mp_region *r, const struct stat *st, open_ctx *o) {
  uint64_t end = cfg->base + r->map_len;
  if (S_ISREG(st->st_mode) && (uint64_t)st->st_size < end && ftruncate(r->fd, (off_t)end) != 0) {
    int e = errno;
    mp_format(o->err, o->errlen, "cannot extend %.160s to %llu bytes: %s", r->device, UL(end), mp_strerror(e));
    return -e;
  }
  if (lock_range(r->fd, F_WRLCK, cfg->base, r->map_len) != 0) {
    int e = errno;
    if (e == EAGAIN || e == EACCES) {
      mp_format(o->err, o->errlen, "region %.160s %#llx..%#llx is in use by another process", r->device, UL(cfg->base),
                UL(cfg->high));
      return -EBUSY;
    }
    mp_format(o->err, o->errlen, "cannot lock region %.160s %#llx..%#llx: %s", r->device, UL(cfg->base), UL(cfg->high),
              mp_strerror(e));
    return -e;
  }
  void *m = mmap((void *)r->base, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, r->fd, (off_t)cfg->base);
  if (m == MAP_FAILED) {
    int e = errno;
    say_mmap_failure(r, S_ISCHR(st->st_mode), e, cfg->base, r->map_len, o);
    return -e;
  }
  return 0;
}

/* Shared: nothing mapped yet; one page (a device dax: one unit of its
 * alignment, the least it maps) is mapped and unmapped to learn now (not at
 * the first claim) whether the device can be mapped at all. */
static int probe_shared(const mp_config *cfg, mp_region *r, const struct stat *st, open_ctx *o) {
  size_t pg = page_size();
  uint64_t a = S_ISCHR(st->st_mode) ? mp_region_device_align(cfg->device, cfg->sysfs_root) : 0;
  if (a > pg && a <= r->map_len) pg = (size_t)a;
  void *m = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, (off_t)cfg->base);
  if (m == MAP_FAILED) {
    int e = errno;
    say_mmap_failure(r, S_ISCHR(st->st_mode), e, cfg->base, r->map_len, o);
    return -e;
  }
  munmap(m, pg);
  return 0;
}

static int open_backing(const mp_config *cfg, mp_region *r, open_ctx *o) {
  bool is_devmem = !strcmp(cfg->device, "/dev/mem");
  int flags = O_RDWR | O_CLOEXEC;
  if (is_devmem && cfg->sync) flags |= O_SYNC;
  int fd = open_device(cfg, flags, o);
  if (fd < 0) return fd;
  r->fd = fd;
  r->open_flags = flags;
  struct stat st;
  if (fstat(r->fd, &st) != 0) {
    int e = errno;
    mp_format(o->err, o->errlen, "cannot stat %.160s: %s", cfg->device, mp_strerror(e));
    return -e;
  }
  r->dev = st.st_dev;
  r->ino = st.st_ino;
  if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
    mp_format(o->err, o->errlen, "%.160s is not a character device or a regular file", cfg->device);
    return -ENODEV;
  }
  r->is_file = S_ISREG(st.st_mode);
  struct statfs fs;
  r->in_memory = r->is_file && fstatfs(r->fd, &fs) == 0 && fs.f_type == TMPFS_MAGIC;
  learn_dma(r, &st, cfg->sysfs_root);
  if (r->is_file) {
    int rc = check_file(cfg, &st, cfg->base + r->map_len, o);
    if (rc) return rc;
  }
  r->shared = true;
  return cfg->share ? probe_shared(cfg, r, &st, o) : map_exclusive(cfg, r, &st, o);
}

int mp_region_open(const mp_config *cfg, mp_region *r, char *err, size_t errlen) {
  size_t pg = page_size();
  uint64_t want = cfg->high - cfg->base + 1;
  int saved_errno = errno;
  open_ctx o = {err, errlen};

  memset(r, 0, sizeof *r);
  r->fd = -1;
  r->device = cfg->device;
  r->dev_offset = cfg->base;
  if (cfg->base % pg) {
    mp_format(err, errlen, "MEMPOOL_BASE (%#llx) is not aligned to the page size (%llu)", UL(cfg->base), UL(pg));
    return -EINVAL;
  }
  if (cfg->high < cfg->base || want >= MP_MAX_REGION) { /* the configuration refuses these: callers of this layer too */
    mp_format(err, errlen, "a window of %#llx..%#llx is not below the largest region (%s)", UL(cfg->base),
              UL(cfg->high), MP_MAX_REGION_WHY);
    return -EINVAL;
  }
  r->map_len = (size_t)((want + pg - 1) / pg * pg);
  r->size = (size_t)(want & ~(uint64_t)(MP_GRANULE - 1));
  bool anon = !strcmp(cfg->device, "anon");
  r->anon = anon;
  /* The window's addresses, aligned to the chunk size (a chunk-aligned
   * block is then aligned for any request up to a chunk). */
  size_t align = cfg->chunk > pg ? (size_t)cfg->chunk : pg;
  if (align < MP_HELD_BASE_ALIGN) align = MP_HELD_BASE_ALIGN; /* the held map's addressing (span.h) */
  char *res = mmap(NULL, r->map_len + align, anon ? PROT_READ | PROT_WRITE : PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (res == MAP_FAILED) {
    int e = errno;
    mp_format(err, errlen, "cannot reserve %llu bytes of address space: %s", UL(r->map_len), mp_strerror(e));
    errno = saved_errno;
    return -e;
  }
  char *base = (char *)(((uintptr_t)res + align - 1) & ~(uintptr_t)(align - 1));
  if (base > res) munmap(res, (size_t)(base - res));
  munmap(base + r->map_len, (size_t)(res + align - base));
  r->base = (uintptr_t)base;
  int rc = anon ? 0 : open_backing(cfg, r, &o);
  if (r->fd >= 0) close(r->fd); /* an exclusive window's lock lives on with its mapping */
  r->fd = -1;
  if (rc != 0) mp_region_close(r);
  errno = saved_errno;
  return rc;
}

void mp_region_close(mp_region *r) {
  if (r->base) munmap((void *)r->base, r->map_len); /* drops every lock */
  r->base = 0;
  r->size = 0;
  r->fd = -1;
}

/* ---- chunks ----------------------------------------------------------------- */

/* The conflicting lock's end (device offset relative to the window), or the
 * end of the tried range when the kernel no longer reports one. */
static uint64_t busy_until(int fd, uint64_t dev_off, uint64_t len) {
  struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)dev_off, .l_len = (off_t)len};
  if (fcntl(fd, F_OFD_GETLK, &q) != 0 || q.l_type == F_UNLCK) return dev_off + len;
  if (q.l_len == 0) return UINT64_MAX; /* locked to the end of the file */
  return (uint64_t)q.l_start + (uint64_t)q.l_len;
}

/* Real blocks for a file's chunk: a full filesystem is ENOSPC now, not
 * SIGBUS at the first touch. Filesystems without fallocate get the file
 * extended (sparse) instead. On tmpfs a chunk that had them keeps them
 * (release does not punch it): the first hole says from where on they are
 * missing (SEEK_HOLE walks the pages, about 15 us for 2 MiB here, where
 * fallocate, which visits each page even when all are there, took 200-450
 * us: a fork child's first chunk paid that on every spawn). */
static int give_blocks(int fd, uint64_t dev_off, uint64_t len, bool in_memory) {
  if (in_memory) {
    off_t hole = lseek(fd, (off_t)dev_off, SEEK_HOLE);
    if (hole >= 0 && (uint64_t)hole >= dev_off + len) return 0;
    if (hole > (off_t)dev_off) len -= (uint64_t)hole - dev_off, dev_off = (uint64_t)hole;
  }
  if (fallocate(fd, 0, (off_t)dev_off, (off_t)len) == 0) return 0;
  int e = errno;
  if (e != EOPNOTSUPP && e != ENOSYS) return -e;
  struct stat st;
  if (fstat(fd, &st) == 0 && (uint64_t)st.st_size < dev_off + len && ftruncate(fd, (off_t)(dev_off + len)) != 0)
    return -errno;
  return 0;
}

int mp_region_claim(mp_region *r, size_t off, size_t len, size_t *busy_end) {
  int saved = errno, cancel = mp_nocancel_begin(); /* open and close are cancellation points */
  int rc = 0;
  uint64_t dev_off = r->dev_offset + off;
  int fd = open_same(r);
  if (fd < 0) {
    rc = -errno;
  } else if (lock_range(fd, F_WRLCK, dev_off, len) != 0) {
    rc = (errno == EAGAIN || errno == EACCES) ? -EBUSY : -errno;
    if (rc == -EBUSY && busy_end) {
      uint64_t e = busy_until(fd, dev_off, len);
      *busy_end = e == UINT64_MAX || e - r->dev_offset > r->map_len ? r->map_len : (size_t)(e - r->dev_offset);
    }
  } else {
    if (r->is_file) rc = give_blocks(fd, dev_off, len, r->in_memory);
    if (rc == 0 && mmap((void *)(r->base + off), len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
                        (off_t)dev_off) == MAP_FAILED)
      rc = -errno;
  }
  if (fd >= 0) close(fd); /* without a mapping, the lock goes with it */
  mp_nocancel_end(cancel);
  errno = saved;
  return rc;
}

/* [off, off+len) becomes reserved addresses again (no device, no memory). */
static int reserve(mp_region *r, size_t off, size_t len) {
  void *m =
      mmap((void *)(r->base + off), len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  return m == MAP_FAILED ? -errno : 0;
}

void mp_region_release(mp_region *r, size_t off, size_t len) {
  int saved = errno;
  reserve(r, off, len); /* the chunk's own open file description goes, and its lock */
  errno = saved;
}

struct copy_state {
  uintptr_t src, dst; /* region offset x is at src + x, goes to dst + x */
  size_t lo, hi;      /* the run of pages being gathered (populate) */
  int fd;             /* in place: the device */
  uint64_t dev_offset;
  int rc;
};

static void copy_extent(void *v, size_t off, size_t len) {
  struct copy_state *c = v;
  memcpy((void *)(c->dst + off), (const void *)(c->src + off), len);
}

/* [lo, hi) read from the device into the copy; a run of several pages is
 * populated first, in one call (the read would fault them one by one). */
static void read_run(struct copy_state *c) {
  size_t pg = page_size(), lo = c->lo & ~(pg - 1), hi = (c->hi + pg - 1) & ~(pg - 1);
  if (c->lo < c->hi && hi - lo > 2 * pg) madvise((void *)(c->dst + lo), hi - lo, MADV_POPULATE_WRITE);
  for (size_t done = 0, len = c->hi - c->lo; c->lo < c->hi && done < len && c->rc == 0;) {
    ssize_t n = pread(c->fd, (char *)(c->dst + c->lo + done), len - done, (off_t)(c->dev_offset + c->lo + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) c->rc = n < 0 ? -errno : -EIO;
    done += n > 0 ? (size_t)n : 0;
  }
}

/* Extents less than a page apart are read as one: a system call costs more
 * than the bytes between them (free ones, never handed out in the child). */
static void read_extent(void *v, size_t off, size_t len) {
  struct copy_state *c = v;
  if (c->lo < c->hi && off <= c->hi + page_size()) { /* ascending */
    if (off + len > c->hi) c->hi = off + len;
    return;
  }
  read_run(c);
  c->lo = off, c->hi = off + len;
}

/* Faults one page at a time cost more than the copy (the child has no page
 * table entries for the parent's shared pages): both sides of each run of
 * pages the live extents touch are populated in one call each first
 * (ignored where unsupported). Only those pages: a chunk whose few live
 * bytes lie far apart costs those pages, not the chunk. */
static void populate(const struct copy_state *c) {
  if (c->lo >= c->hi) return;
  madvise((void *)(c->src + c->lo), c->hi - c->lo, MADV_POPULATE_READ);
  madvise((void *)(c->dst + c->lo), c->hi - c->lo, MADV_POPULATE_WRITE);
}

static void populate_extent(void *v, size_t off, size_t len) {
  struct copy_state *c = v;
  size_t pg = page_size(), lo = off & ~(pg - 1), hi = (off + len + pg - 1) & ~(pg - 1);
  if (c->lo < c->hi && lo <= c->hi) { /* ascending: touches the run or overlaps it */
    if (hi > c->hi) c->hi = hi;
    return;
  }
  populate(c);
  c->lo = lo, c->hi = hi;
}

static bool g_copies; /* between mp_region_copies_begin and _end (a fork child: one thread) */

/* Without memory for a second copy: the range becomes anonymous memory in
 * place (no address space more) and its live extents are read from the
 * device. Where that fails (no memory at all, a device without read such
 * as device dax) the parent's mapping comes back, read-only. */
static int copy_in_place(mp_region *r, size_t off, size_t len, mp_live_fn live, void *ctx) {
  int fd = r->fd >= 0 ? r->fd : open_same(r);
  if (fd < 0) return -errno;
  if (g_copies) r->fd = fd; /* kept for the next copies: mp_region_copies_end closes it */
  char *at = (char *)(r->base + off);
  struct copy_state c = {.dst = r->base, .fd = fd, .dev_offset = r->dev_offset};
  if (mmap(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) ==
      MAP_FAILED)
    c.rc = -errno;
  else
    live(ctx, read_extent, &c);
  read_run(&c); /* the last run */
  /* A failed MAP_FIXED may have unmapped the original too: map it back. */
  if (c.rc != 0 && mmap(at, len, PROT_READ, MAP_SHARED | MAP_FIXED, fd, (off_t)(r->dev_offset + off)) == MAP_FAILED)
    mp_fatal("fork: the child lost its copy of %llu bytes of the region at %#llx and cannot map them back: %s", UL(len),
             UL(off), mp_strerror(errno));
  if (fd != r->fd) close(fd);
  return c.rc;
}

void mp_region_copies_begin(mp_region *r) {
  (void)r;
  g_copies = true;
}

void mp_region_copies_end(mp_region *r) {
  g_copies = false;
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
}

int mp_region_adopt(mp_region *r, size_t off, size_t len, void *shadow, mp_live_fn live, void *ctx) {
  void *at = (void *)(r->base + off);
  int rc = 0;
  if (shadow && mremap(shadow, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, at) != MAP_FAILED) return 0;
  if (mmap(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) ==
      MAP_FAILED)
    rc = -errno; /* never the device: the parent goes on writing it */
  else if (shadow)
    live(ctx, copy_extent, &(struct copy_state){.src = (uintptr_t)shadow - off, .dst = r->base});
  if (shadow) munmap(shadow, len);
  return rc;
}

int mp_region_copy_private(mp_region *r, size_t off, size_t len, mp_live_fn live, void *ctx) {
  if (r->is_file) return copy_in_place(r, off, len, live, ctx); /* from the page cache: no second mapping */
  char *tmp = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (tmp == MAP_FAILED) return errno == ENOMEM ? copy_in_place(r, off, len, live, ctx) : -errno;
  struct copy_state c = {.src = r->base, .dst = (uintptr_t)tmp - off};
  live(ctx, populate_extent, &c);
  populate(&c); /* the last run */
  live(ctx, copy_extent, &c);
  if (mremap(tmp, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(r->base + off)) == MAP_FAILED) {
    int e = errno;
    munmap(tmp, len);
    return -e;
  }
  return 0;
}

int mp_region_privatize(mp_region *r, mp_live_fn live, void *ctx) {
  if (!r->shared) return 0;
  int rc = mp_region_copy_private(r, 0, r->map_len, live, ctx);
  if (rc != 0) return rc;
  r->shared = false;
  return 0;
}
