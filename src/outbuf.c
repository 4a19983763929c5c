/* outbuf.c - buffered write(2) output (see outbuf.h). */
#include "outbuf.h"

#include <errno.h>
#include <unistd.h>

#include "msg.h"

void mp_out_flush(mp_outbuf *o) {
  size_t done = 0;
  while (done < o->len) {
    ssize_t w = write(o->fd, o->buf + done, o->len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += (size_t)w;
  }
  o->len = 0;
}

void mp_out_printf(mp_outbuf *o, const char *fmt, ...) {
  if (sizeof o->buf - o->len < 512) mp_out_flush(o);
  va_list ap;
  va_start(ap, fmt);
  o->len += mp_vformat(o->buf + o->len, sizeof o->buf - o->len, fmt, ap);
  va_end(ap);
}

void mp_out_json_string(mp_outbuf *o, const char *s) {
  static const char hex[] = "0123456789abcdef";
  mp_out_printf(o, "\"");
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (sizeof o->buf - o->len < 16) mp_out_flush(o);
    if (c == '"' || c == '\\') {
      o->buf[o->len++] = '\\';
      o->buf[o->len++] = (char)c;
    } else if (c < 0x20) {
      const char esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      for (size_t i = 0; i < sizeof esc; i++) o->buf[o->len++] = esc[i];
    } else {
      o->buf[o->len++] = (char)c;
    }
  }
  mp_out_printf(o, "\"");
}
