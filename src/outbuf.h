/* outbuf.h - a stack buffer flushed to a descriptor with write(2): reports
 * and maps of any length without allocating. */
#ifndef MP_OUTBUF_H
#define MP_OUTBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct mp_outbuf {
  int fd;
  size_t len;
  char buf[4096];
} mp_outbuf;

void mp_out_printf(mp_outbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal (quoted, escaped). */
void mp_out_json_string(mp_outbuf *o, const char *s);
void mp_out_flush(mp_outbuf *o);

#endif
