/* outfile.c - the files the library writes (see outfile.h). */
#define _GNU_SOURCE
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "msg.h"

/* Character devices that take text without side effects: memory devices
 * null, zero and full, and terminals (/dev/tty, the console, ttyN, pts). */
enum { MEM_MAJOR = 1, TTY_MAJOR = 4, TTYAUX_MAJOR = 5, PTS_MAJOR_FIRST = 136, PTS_MAJOR_LAST = 143 };

static bool harmless_device(dev_t rdev) {
  unsigned mj = major(rdev), mn = minor(rdev);
  if (mj == MEM_MAJOR) return mn == 3 || mn == 5 || mn == 7;
  if (mj == TTYAUX_MAJOR) return mn == 0 || mn == 1; /* not ptmx (5:2): opening it makes a terminal */
  return mj == TTY_MAJOR || (mj >= PTS_MAJOR_FIRST && mj <= PTS_MAJOR_LAST);
}

static bool same_file(const struct stat *st, mp_file_id id) {
  return (id.dev || id.ino) && st->st_dev == id.dev && st->st_ino == id.ino;
}

int mp_outfile_high_fd(void) {
  struct rlimit rl;
  rlim_t lim = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
  if (lim > 1024) lim = 1024;
  return (int)(lim / 4 * 3);
}

/* O1: fd moved up (kept where it is when no high number is free). */
static int move_up(int fd) {
  int high = fcntl(fd, F_DUPFD_CLOEXEC, mp_outfile_high_fd());
  if (high < 0) return fd;
  close(fd);
  return high;
}

bool mp_outfile_fd_is_diagnostic(int fd, mp_file_id at_start) {
  struct stat st;
  int saved = errno;
  bool ok = fstat(fd, &st) == 0;
  if (ok && !same_file(&st, at_start)) {
    int fl = fcntl(fd, F_GETFL);
    ok = S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || (S_ISCHR(st.st_mode) && harmless_device(st.st_rdev)) ||
         (S_ISREG(st.st_mode) && fl >= 0 && (fl & O_ACCMODE) == O_WRONLY && (fl & O_APPEND));
  }
  errno = saved;
  return ok;
}

/* O3 from what the path names, before it is opened (opening a device can
 * act: a watchdog arms, a modem line drops): 0 or -errno with the reason. */
static int check_target(const struct stat *st, const char *what, const char *path, mp_file_id avoid, char *err,
                        size_t errlen) {
  if (S_ISREG(st->st_mode)) {
    if (st->st_uid != geteuid()) {
      mp_format(err, errlen, "%s %.160s is owned by uid %u, not by this user (uid %u): not written", what, path,
                (unsigned)st->st_uid, (unsigned)geteuid());
      return -EPERM;
    }
    if (same_file(st, avoid)) {
      mp_format(err, errlen, "%s %.160s is the region's file: not written", what, path);
      return -EBUSY;
    }
    return 0;
  }
  if (S_ISCHR(st->st_mode) && harmless_device(st->st_rdev)) return 0;
  if (S_ISLNK(st->st_mode)) {
    mp_format(err, errlen, "%s %.160s is a symbolic link: not followed", what, path);
    return -ELOOP;
  }
  mp_format(err, errlen, "%s %.160s is a %s, not a regular file or a terminal: not written", what, path,
            S_ISFIFO(st->st_mode)   ? "FIFO"
            : S_ISSOCK(st->st_mode) ? "socket"
            : S_ISCHR(st->st_mode)  ? "device"
            : S_ISDIR(st->st_mode)  ? "directory"
                                    : "block device");
  return -ENODEV;
}

/* lstat, check, open without following or blocking, and make sure the
 * file opened is the one checked (a missing file is created 0600 and
 * checked after). A replaced file is truncated only then. fd or -errno. */
static int open_checked(const char *what, const char *path, bool append, mp_file_id avoid, char *err, size_t errlen,
                        struct stat *st) {
  struct stat before;
  bool existed = lstat(path, &before) == 0;
  int rc = existed ? check_target(&before, what, path, avoid, err, errlen) : 0;
  if (rc != 0) return rc;
  int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (append ? O_APPEND : 0);
  int fd = open(path, flags | (existed ? 0 : O_EXCL), 0600);
  if (fd < 0) {
    int e = errno;
    if (e == ELOOP || e == EEXIST)
      mp_format(err, errlen, "%s %.160s changed while it was opened: not written", what, path);
    else
      mp_format(err, errlen, "cannot open %s %.160s: %s", what, path, mp_strerror(e));
    return -e;
  }
  if (fstat(fd, st) != 0)
    rc = -errno;
  else if (existed && (st->st_dev != before.st_dev || st->st_ino != before.st_ino))
    rc = -ESTALE;
  else if (!existed)
    rc = check_target(st, what, path, avoid, err, errlen);
  if (rc == 0 && fcntl(fd, F_SETFL, append ? O_APPEND : 0) != 0) rc = -errno; /* blocking from now on */
  if (rc == 0 && !append && S_ISREG(st->st_mode) && ftruncate(fd, 0) != 0) rc = -errno;
  if (rc != 0) {
    if (!*err) mp_format(err, errlen, "cannot use %s %.160s: %s", what, path, mp_strerror(-rc));
    close(fd);
    return rc;
  }
  return move_up(fd);
}

/* "/dev/stderr" and "/dev/stdout" are links to /proc/self/fd/N: named,
 * they mean a copy of that descriptor (while it is a diagnostics stream). */
static int std_stream(const char *path) {
  return !strcmp(path, "/dev/stderr") ? 2 : !strcmp(path, "/dev/stdout") ? 1 : -1;
}

int mp_outfile_open(mp_outfile *f, const char *what, const char *path, bool append, mp_file_id avoid, char *err,
                    size_t errlen) {
  int saved = errno, std = std_stream(path);
  struct stat st;
  err[0] = '\0';
  if (std >= 0) {
    if (mp_outfile_fd_is_diagnostic(std, (mp_file_id){0, 0}) && mp_outfile_dup(f, what, std) == 0) return 0;
    mp_format(err, errlen, "%s %s: descriptor %d is closed or not a terminal, pipe or appended file", what, path, std);
    return -EBADF;
  }
  *f = (mp_outfile){.fd = -1, .path = path, .what = what, .append = append, .avoid = avoid};
  int fd = open_checked(what, path, append, avoid, err, errlen, &st);
  errno = saved;
  if (fd < 0) return fd;
  f->fd = fd;
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  return 0;
}

int mp_outfile_dup(mp_outfile *f, const char *what, int fd) {
  int saved = errno;
  struct stat st;
  *f = (mp_outfile){.fd = -1, .what = what, .append = true};
  int rc = 0;
  if (fstat(fd, &st) != 0 || (f->fd = fcntl(fd, F_DUPFD_CLOEXEC, mp_outfile_high_fd())) < 0) rc = -errno;
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  errno = saved;
  return rc;
}

static bool still_same(const mp_outfile *f) {
  struct stat st;
  return f->fd >= 0 && fstat(f->fd, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino;
}

/* O2: the number no longer names the file (the program closed it or put
 * its own file there): never write through it; a path is re-opened. */
static int reopen(mp_outfile *f) {
  f->fd = -1; /* the number is the program's now: not closed */
  if (!f->path) return -EBADF;
  char err[256];
  mp_outfile old = *f;
  int rc = mp_outfile_open(f, old.what, old.path, true, old.avoid, err, sizeof err);
  f->said = old.said;
  return rc;
}

static void say_failure(mp_outfile *f, int e) {
  if (f->said) return;
  f->said = true;
  mp_msg_stderr("cannot write %s%s%.160s: %s; what follows for it is lost", f->what, f->path ? " " : "",
                f->path ? f->path : "", mp_strerror(e));
}

int mp_outfile_write(mp_outfile *f, const char *p, size_t n) {
  int saved = errno, rc = 0;
  if (!still_same(f)) rc = reopen(f);
  while (rc == 0 && n) {
    ssize_t w = write(f->fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      rc = w < 0 ? -errno : -EIO;
      break;
    }
    p += w;
    n -= (size_t)w;
  }
  if (rc != 0) say_failure(f, -rc);
  errno = saved;
  return rc;
}

bool mp_outfile_is(const mp_outfile *f, mp_file_id id) {
  return f->fd >= 0 && (id.dev || id.ino) && f->dev == id.dev && f->ino == id.ino;
}

void mp_outfile_close(mp_outfile *f) {
  int saved = errno;
  if (still_same(f)) close(f->fd);
  f->fd = -1;
  errno = saved;
}

mp_file_id mp_file_id_of(const char *path) {
  struct stat st;
  int saved = errno;
  mp_file_id id = {0, 0};
  if (path && lstat(path, &st) == 0 && S_ISREG(st.st_mode)) id = (mp_file_id){st.st_dev, st.st_ino};
  errno = saved;
  return id;
}
