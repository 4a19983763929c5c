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
 *       a socket, another device (/dev/mem!) or a symbolic link's target.
 *       What a path names is checked (lstat) BEFORE it is opened, and the
 *       file opened must be the one checked.
 */
#ifndef MP_OUTFILE_H
#define MP_OUTFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The identity of a file not to write (the region); dev 0 and ino 0: none. */
typedef struct mp_file_id {
  dev_t dev;
  ino_t ino;
} mp_file_id;

typedef struct mp_outfile {
  int fd;    /* -1: closed */
  dev_t dev; /* what fd was opened on (O2) */
  ino_t ino;
  const char *path; /* to re-open (O2); NULL for a copy of a descriptor */
  const char *what; /* "MEMPOOL_LOG_FILE", ... for the messages */
  bool append;      /* else replaced (truncated after the checks) */
  bool said;        /* a write failure was reported (once) */
  mp_file_id avoid; /* never this file, at a re-open too */
} mp_outfile;

/* Checks what path names (O3), then opens it for writing without following
 * a final symbolic link and without blocking (created 0600 when missing),
 * and moves the descriptor up (O1). A replaced file is truncated only after
 * the checks. "/dev/stderr" and "/dev/stdout" mean a copy of descriptor 2
 * or 1 while it is a diagnostics stream (mp_outfile_fd_is_diagnostic).
 * 0, or -errno with a one-line reason in err (no "mempool: " prefix):
 *   ELOOP   a symbolic link          ENODEV  a FIFO, socket, directory or a
 *   EPERM   owned by another user            device other than a terminal
 *   EBUSY   the region (avoid)               or /dev/null, zero, full
 *   ESTALE  replaced while opened    EBADF   /dev/stderr that is not one
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
/* The identity of a regular file at path (not following a final link), or
 * {0, 0}: the region's file, known even when the pool could not open it. */
mp_file_id mp_file_id_of(const char *path);
/* Whether a message may be written to fd (stderr): it is the file it was
 * at start, or a terminal, pipe, socket, /dev/null, or a regular file
 * opened write-only for appending. Never a data file the program opened on
 * that number, never a device such as /dev/mem. */
bool mp_outfile_fd_is_diagnostic(int fd, mp_file_id at_start);
void mp_outfile_close(mp_outfile *f);

/* The lowest number F_DUPFD_CLOEXEC uses: three quarters of
 * min(RLIMIT_NOFILE, 1024): above what programs and shells open (bash's 10+
 * and 255), below a limit that would make the kernel's table large. */
int mp_outfile_high_fd(void);

#endif
