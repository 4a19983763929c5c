/* msg.c - allocation-free message formatting (see msg.h). */
#define _GNU_SOURCE
#include "msg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nocancel.h"
#include "outfile.h"

/* One byte of a %s argument. Escaped (messages, reports, maps): control
 * characters, DEL, bytes >= 0x80 and the backslash become \xNN, so a value
 * can neither end a line, forge one nor reach the terminal as an escape
 * sequence, and a reader can undo it exactly. */
static inline bool plain(unsigned char c, bool escape) { return !escape || (c >= 0x20 && c < 0x7f && c != '\\'); }
static inline size_t width(unsigned char c, bool escape) { return plain(c, escape) ? 1 : 4; }

/* An escape that does not fit ends the text (no byte vanishes silently
 * from the middle): the result is a prefix. */
static size_t put_byte(char *buf, size_t pos, size_t len, unsigned char c, bool escape) {
  static const char hex[] = "0123456789abcdef";
  if (plain(c, escape)) {
    buf[pos++] = (char)c;
  } else if (pos + 4 < len) {
    const char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
    for (int i = 0; i < 4; i++) buf[pos++] = esc[i];
  } else {
    pos = len - 1;
  }
  return pos;
}

/* A %s argument; with a precision, one wider than it (as it will be
 * written to a reader, escapes counted, even when formatted raw into a
 * reason that is printed later) keeps its start and its end around "...":
 * the reason after a long path stays in the line. */
static size_t put_str(char *buf, size_t pos, size_t len, const char *s, size_t max, bool escape) {
  if (!s) s = "(null)";
  size_t n = strlen(s), head = n, tail_from = n, w = 0;
  for (size_t i = 0; max != SIZE_MAX && i < n; i++) w += width((unsigned char)s[i], true);
  if (max != SIZE_MAX && w > max && max >= 8) {
    size_t budget = (max - 3) / 2, used = 0;
    for (head = 0; head < n && used + width((unsigned char)s[head], true) <= budget; head++)
      used += width((unsigned char)s[head], true);
    budget = max - 3 - used;
    for (used = 0; tail_from > head && used + width((unsigned char)s[tail_from - 1], true) <= budget; tail_from--)
      used += width((unsigned char)s[tail_from - 1], true);
  }
  for (size_t i = 0; i < head && pos + 1 < len; i++) pos = put_byte(buf, pos, len, (unsigned char)s[i], escape);
  if (tail_from < n) {
    for (int i = 0; i < 3 && pos + 1 < len; i++) buf[pos++] = '.';
    for (size_t i = tail_from; i < n && pos + 1 < len; i++) pos = put_byte(buf, pos, len, (unsigned char)s[i], escape);
  }
  return pos;
}

static size_t put_uint(char *buf, size_t pos, size_t len, unsigned long long v, unsigned base) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v);
  while (n && pos + 1 < len) buf[pos++] = tmp[--n];
  return pos;
}

static size_t format(char *buf, size_t len, const char *fmt, va_list ap, bool escape) {
  size_t pos = 0;
  if (len == 0) return 0;
  for (const char *f = fmt; *f && pos + 1 < len; f++) {
    if (*f != '%') {
      buf[pos++] = *f;
      continue;
    }
    bool alt = false, wide = false, llong = false, zero = false;
    unsigned width = 0;
    size_t precision = SIZE_MAX;
    if (f[1] == '#') alt = true, f++;
    if (f[1] == '0') zero = true, f++;
    while (f[1] >= '1' && f[1] <= '9') width = width * 10 + (unsigned)(*++f - '0');
    if (f[1] == '.')
      for (f++, precision = 0; f[1] >= '0' && f[1] <= '9';) precision = precision * 10 + (size_t)(*++f - '0');
    if (f[1] == 'l' || f[1] == 'z') wide = true, f++;
    if (wide && f[0] == 'l' && f[1] == 'l') llong = true, f++; /* 64 bits also where long has 32 */
    switch (*++f) {
      case 's': pos = put_str(buf, pos, len, va_arg(ap, const char *), precision, escape); break;
      case 'u':
      case 'o':
      case 'x': {
        unsigned long long v = llong  ? va_arg(ap, unsigned long long)
                               : wide ? va_arg(ap, unsigned long)
                                      : va_arg(ap, unsigned);
        if (*f == 'x' && alt) pos = put_str(buf, pos, len, "0x", SIZE_MAX, false);
        unsigned base = *f == 'x' ? 16 : *f == 'o' ? 8 : 10, digits = 1;
        for (unsigned long long t = v / base; t; t /= base) digits++;
        while (digits++ < width && pos + 1 < len) buf[pos++] = zero ? '0' : ' ';
        pos = put_uint(buf, pos, len, v, base);
        break;
      }
      case 'p':
        pos = put_str(buf, pos, len, "0x", SIZE_MAX, false);
        pos = put_uint(buf, pos, len, (unsigned long)(uintptr_t)va_arg(ap, void *), 16);
        break;
      case 'd': {
        long long v = llong ? va_arg(ap, long long) : wide ? va_arg(ap, long) : va_arg(ap, int);
        if (v < 0) {
          pos = put_str(buf, pos, len, "-", SIZE_MAX, false);
          pos = put_uint(buf, pos, len, 0ull - (unsigned long long)v, 10);
        } else {
          pos = put_uint(buf, pos, len, (unsigned long long)v, 10);
        }
        break;
      }
      case '%': buf[pos++] = '%'; break;
      case '\0': f--; break;
      default: buf[pos++] = '?'; break;
    }
  }
  buf[pos] = '\0';
  return pos;
}

size_t mp_vformat(char *buf, size_t len, const char *fmt, va_list ap) { return format(buf, len, fmt, ap, false); }

size_t mp_vformat_escaped(char *buf, size_t len, const char *fmt, va_list ap) {
  return format(buf, len, fmt, ap, true);
}

size_t mp_format(char *buf, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t n = mp_vformat(buf, len, fmt, ap);
  va_end(ap);
  return n;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

int mp_log_level = MP_LOG_PROBLEM;
static mp_outfile g_log = {.fd = -1}; /* MEMPOOL_LOG_FILE; closed: stderr */
static mp_file_id g_stderr_at_start;
static bool g_stderr_known;

/* At load (a constructor: the API library has no initialization of its
 * own) or at the interposer's initialization, whichever comes first. */
__attribute__((constructor)) void mp_msg_remember_stderr(void) {
  struct stat st;
  int saved = errno;
  if (!__atomic_exchange_n(&g_stderr_known, true, __ATOMIC_ACQ_REL) && fstat(2, &st) == 0)
    g_stderr_at_start = (mp_file_id){st.st_dev, st.st_ino};
  errno = saved;
}

bool mp_msg_stderr_usable(void) { return mp_outfile_fd_is_diagnostic(2, g_stderr_at_start); }

/* "mempool: <formatted, escaped>\n" to the log file (to_log) or fd 2, in one
 * write(2), with cancellation off (malloc is not a cancellation point). */
static void vmsg(bool to_log, const char *fmt, va_list ap) {
  char buf[512];
  int saved = errno, cancel = mp_nocancel_begin();
  size_t n = mp_format(buf, sizeof buf - 1, "%s", "mempool: ");
  n += mp_vformat_escaped(buf + n, sizeof buf - 1 - n, fmt, ap);
  buf[n++] = '\n';
  if (to_log && g_log.fd >= 0)
    mp_outfile_write(&g_log, buf, n);
  else if (mp_msg_stderr_usable())
    write_all(2, buf, n);
  mp_nocancel_end(cancel);
  errno = saved;
}

void mp_msg_stderr(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vmsg(false, fmt, ap);
  va_end(ap);
}

/* A relative path is made absolute now: a re-open after the program took
 * the descriptor over must not follow a chdir. */
static char g_log_path[2 * 4096 + 2];

void mp_log_setup(int level, const char *path, mp_file_id region) {
  mp_log_level = level;
  if (!path || level == 0) return;
  if (path[0] != '/' && getcwd(g_log_path, 4097)) {
    size_t n = strlen(g_log_path);
    mp_format(g_log_path + n, sizeof g_log_path - n, "/%s", path);
    path = g_log_path;
  }
  char err[320];
  if (mp_outfile_open(&g_log, "MEMPOOL_LOG_FILE", path, true, region, err, sizeof err) != 0)
    mp_msg_stderr("%s; logging to stderr", err);
}

void mp_log_avoid(mp_file_id region) {
  if (!mp_outfile_is(&g_log, region)) return;
  mp_outfile_close(&g_log);
  mp_msg_stderr("MEMPOOL_LOG_FILE %.160s is the region's file: logging to stderr", g_log.path);
}

void mp_log(int level, const char *fmt, ...) {
  if (level > mp_log_level) return;
  va_list ap;
  va_start(ap, fmt);
  vmsg(true, fmt, ap);
  va_end(ap);
}

void mp_fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vmsg(false, fmt, ap);
  va_end(ap);
  if (g_log.fd >= 0) { /* the log file gets the trap too */
    va_start(ap, fmt);
    vmsg(true, fmt, ap);
    va_end(ap);
  }
  abort();
}

const char *mp_strerror(int err) {
  /* strerror() may translate (and allocate); strerrordesc_np never does. */
  const char *d = strerrordesc_np(err);
  return d ? d : "unknown error";
}
