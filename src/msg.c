/* msg.c - allocation-free message formatting (see msg.h). */
#define _GNU_SOURCE
#include "msg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t put_str(char *buf, size_t pos, size_t len, const char *s) {
  if (!s) s = "(null)";
  while (*s && pos + 1 < len) buf[pos++] = *s++;
  return pos;
}

static size_t put_uint(char *buf, size_t pos, size_t len, unsigned long v, unsigned base) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v);
  while (n && pos + 1 < len) buf[pos++] = tmp[--n];
  return pos;
}

size_t mp_vformat(char *buf, size_t len, const char *fmt, va_list ap) {
  size_t pos = 0;
  if (len == 0) return 0;
  for (const char *f = fmt; *f && pos + 1 < len; f++) {
    if (*f != '%') {
      buf[pos++] = *f;
      continue;
    }
    bool alt = false, wide = false, zero = false;
    unsigned width = 0;
    if (f[1] == '#') alt = true, f++;
    if (f[1] == '0') zero = true, f++;
    while (f[1] >= '1' && f[1] <= '9') width = width * 10 + (unsigned)(*++f - '0');
    if (f[1] == 'l' || f[1] == 'z') wide = true, f++;
    switch (*++f) {
      case 's': pos = put_str(buf, pos, len, va_arg(ap, const char *)); break;
      case 'u':
      case 'o':
      case 'x': {
        unsigned long v = wide ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
        if (*f == 'x' && alt) pos = put_str(buf, pos, len, "0x");
        unsigned base = *f == 'x' ? 16 : *f == 'o' ? 8 : 10, digits = 1;
        for (unsigned long t = v / base; t; t /= base) digits++;
        while (digits++ < width && pos + 1 < len) buf[pos++] = zero ? '0' : ' ';
        pos = put_uint(buf, pos, len, v, base);
        break;
      }
      case 'p':
        pos = put_str(buf, pos, len, "0x");
        pos = put_uint(buf, pos, len, (unsigned long)(uintptr_t)va_arg(ap, void *), 16);
        break;
      case 'd': {
        long v = wide ? va_arg(ap, long) : va_arg(ap, int);
        if (v < 0) {
          pos = put_str(buf, pos, len, "-");
          pos = put_uint(buf, pos, len, 0ul - (unsigned long)v, 10);
        } else {
          pos = put_uint(buf, pos, len, (unsigned long)v, 10);
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

static void vmsg(int fd, const char *fmt, va_list ap) {
  char buf[512];
  int saved = errno;
  size_t n = mp_format(buf, sizeof buf - 1, "%s", "mempool: ");
  n += mp_vformat(buf + n, sizeof buf - 1 - n, fmt, ap);
  buf[n++] = '\n';
  write_all(fd, buf, n);
  errno = saved;
}

void mp_msg_fd(int fd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vmsg(fd, fmt, ap);
  va_end(ap);
}

int mp_log_level = MP_LOG_PROBLEM, mp_log_fd = 2;

void mp_log_setup(int level, const char *path) {
  mp_log_level = level;
  if (path && level > 0) {
    int saved = errno;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0)
      mp_log_fd = fd;
    else
      mp_msg_fd(2, "cannot open MEMPOOL_LOG_FILE %s: %s; logging to stderr", path, mp_strerror(errno));
    errno = saved;
  }
}

void mp_log(int level, const char *fmt, ...) {
  if (level > mp_log_level) return;
  va_list ap;
  va_start(ap, fmt);
  vmsg(mp_log_fd, fmt, ap);
  va_end(ap);
}

void mp_fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vmsg(2, fmt, ap);
  va_end(ap);
  if (mp_log_fd != 2) { /* the log file gets the trap too */
    va_start(ap, fmt);
    vmsg(mp_log_fd, fmt, ap);
    va_end(ap);
  }
  abort();
}

const char *mp_strerror(int err) {
  /* strerror() may translate (and allocate); strerrordesc_np never does. */
  const char *d = strerrordesc_np(err);
  return d ? d : "unknown error";
}
