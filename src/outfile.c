/* outfile.c - the files the library writes (see outfile.h). */
#define _GNU_SOURCE
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "msg.h"

enum { MEM_MAJOR = 1, NULL_MINOR = 3, ZERO_MINOR = 5, FULL_MINOR = 7 };

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

static bool is_harmless_device(const struct stat *st, int fd) {
  if (!S_ISCHR(st->st_mode)) return false;
  unsigned mj = major(st->st_rdev), mn = minor(st->st_rdev);
  return isatty(fd) || (mj == MEM_MAJOR && (mn == NULL_MINOR || mn == ZERO_MINOR || mn == FULL_MINOR));
}

/* O3 for an open descriptor: 0 or -errno with the reason. */
static int check_target(int fd, const struct stat *st, const char *what, const char *path, mp_file_id avoid, char *err,
                        size_t errlen) {
  if (S_ISREG(st->st_mode)) {
    if (st->st_uid != geteuid()) {
      mp_format(err, errlen, "%s %.160s is owned by uid %u, not by this user (uid %u): not written", what, path,
                (unsigned)st->st_uid, (unsigned)geteuid());
      return -EPERM;
    }
    if ((avoid.dev || avoid.ino) && st->st_dev == avoid.dev && st->st_ino == avoid.ino) {
      mp_format(err, errlen, "%s %.160s is the region's file: not written", what, path);
      return -EBUSY;
    }
    return 0;
  }
  if (is_harmless_device(st, fd)) return 0;
  mp_format(err, errlen, "%s %.160s is a %s, not a regular file or a terminal: not written", what, path,
            S_ISFIFO(st->st_mode)  ? "FIFO"
            : S_ISCHR(st->st_mode) ? "device"
                                   : "special file");
  return -ENODEV;
}

static int open_checked(const char *what, const char *path, bool append, mp_file_id avoid, char *err, size_t errlen,
                        struct stat *st) {
  int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (append ? O_APPEND : 0);
  int fd = open(path, flags, 0600);
  if (fd < 0) {
    int e = errno;
    if (e == ELOOP)
      mp_format(err, errlen, "%s %.160s is a symbolic link: not followed", what, path);
    else if (e == ENXIO)
      mp_format(err, errlen, "%s %.160s is a FIFO nobody reads: not written", what, path);
    else
      mp_format(err, errlen, "cannot open %s %.160s: %s", what, path, mp_strerror(e));
    return -e;
  }
  int rc = fstat(fd, st) != 0 ? -errno : check_target(fd, st, what, path, avoid, err, errlen);
  if (rc == 0 && fcntl(fd, F_SETFL, append ? O_APPEND : 0) != 0) rc = -errno; /* blocking from now on */
  if (rc == 0 && !append && S_ISREG(st->st_mode) && ftruncate(fd, 0) != 0) rc = -errno;
  if (rc != 0) {
    if (!*err) mp_format(err, errlen, "cannot use %s %.160s: %s", what, path, mp_strerror(-rc));
    close(fd);
    return rc;
  }
  return move_up(fd);
}

int mp_outfile_open(mp_outfile *f, const char *what, const char *path, bool append, mp_file_id avoid, char *err,
                    size_t errlen) {
  int saved = errno;
  struct stat st;
  err[0] = '\0';
  *f = (mp_outfile){.fd = -1, .path = path, .what = what, .append = append};
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
  int rc = mp_outfile_open(f, old.what, old.path, true, (mp_file_id){0, 0}, err, sizeof err);
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
