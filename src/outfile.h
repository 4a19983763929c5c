/* outfile.h - the files the library writes (MEMPOOL_LOG_FILE, MEMPOOL_STATS,
 * MEMPOOL_MAP, the kept copy of stderr), opened and written so that a path
 * another user planted, a FIFO nobody reads or a descriptor number the
 * program reuses can neither hang the process nor put a byte where it does
 * not belong. Never allocates.
 *
 * Invariants of an open mp_outfile:
 *   O1  fd is close-on-exec and at a high number (mp_outfile_high_fd).
 *   O2  a byte is written through fd only while fstat(fd) still names the
 *       (dev, ino) opened: a number the program closed and reused is never
 *       written (the path is re-opened, with every check, instead).
 *   O3  what is written is a regular file owned by this user and not the
 *       region, a terminal, or /dev/null, /dev/zero, /dev/full: never a FIFO,
 *       another device (/dev/mem!) or a symbolic link's target.
 */
#ifndef MP_OUTFILE_H
#define MP_OUTFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct mp_outfile {
  int fd;    /* -1: closed */
  dev_t dev; /* what fd was opened on (O2) */
  ino_t ino;
  const char *path; /* to re-open (O2); NULL for a copy of a descriptor */
  const char *what; /* "MEMPOOL_LOG_FILE", ... for the messages */
  bool append;      /* else replaced (truncated after the checks) */
  bool said;        /* a write failure was reported (once) */
} mp_outfile;

/* The identity of a file not to write (the region); dev 0 and ino 0: none. */
typedef struct mp_file_id {
  dev_t dev;
  ino_t ino;
} mp_file_id;

/* Opens path for writing without following a final symbolic link and
 * without blocking (created 0600 when missing), checks O3, and moves the
 * descriptor up (O1). A replaced file is truncated only after the checks.
 * 0, or -errno with a one-line reason in err (no "mempool: " prefix):
 *   ELOOP  a symbolic link           ENXIO   a FIFO without a reader
 *   EPERM  owned by another user     ENODEV  a FIFO, socket or device other
 *   EBUSY  the region (avoid)                than a terminal or /dev/null
 *   or what open/fstat said. O(1) system calls. */
int mp_outfile_open(mp_outfile *f, const char *what, const char *path, bool append, mp_file_id avoid, char *err,
                    size_t errlen);
/* A copy of fd (stderr) at a high number (O1, O2); -errno when fd is closed. */
int mp_outfile_dup(mp_outfile *f, const char *what, int fd);
/* Writes all of p (O2). A failure (ENOSPC on /dev/full, EIO, a file the
 * program replaced and that cannot be re-opened) is said once on stderr;
 * returns 0 or -errno. Two system calls (fstat, write) per call. */
int mp_outfile_write(mp_outfile *f, const char *p, size_t n);
/* Whether f is open on the file id (the log file named like the region). */
bool mp_outfile_is(const mp_outfile *f, mp_file_id id);
void mp_outfile_close(mp_outfile *f);

/* The lowest number F_DUPFD_CLOEXEC uses: three quarters of
 * min(RLIMIT_NOFILE, 1024): above what programs and shells open (bash's 10+
 * and 255), below a limit that would make the kernel's table large. */
int mp_outfile_high_fd(void);

#endif
