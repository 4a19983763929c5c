/* outbuf.c - buffered output to an mp_outfile (see outbuf.h). */
#include "outbuf.h"

#include <string.h>

#include "msg.h"

void mp_out_flush(mp_outbuf *o) {
  if (o->len) mp_outfile_write(o->file, o->buf, o->len);
  o->len = 0;
}

void mp_out_printf(mp_outbuf *o, const char *fmt, ...) {
  if (sizeof o->buf - o->len < 512) mp_out_flush(o);
  va_list ap;
  va_start(ap, fmt);
  o->len += mp_vformat_escaped(o->buf + o->len, sizeof o->buf - o->len, fmt, ap);
  va_end(ap);
}

void mp_out_escaped(mp_outbuf *o, const char *s) {
  char piece[128]; /* at most 512 bytes escaped: mp_out_printf always has room */
  for (size_t n = s ? strlen(s) : 0; n;) {
    size_t k = n < sizeof piece - 1 ? n : sizeof piece - 1;
    memcpy(piece, s, k);
    piece[k] = '\0';
    mp_out_printf(o, "%s", piece);
    s += k;
    n -= k;
  }
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
    } else if (c < 0x20 || c >= 0x7f) {
      const char esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      for (size_t i = 0; i < sizeof esc; i++) o->buf[o->len++] = esc[i];
    } else {
      o->buf[o->len++] = (char)c;
    }
  }
  mp_out_printf(o, "\"");
}
