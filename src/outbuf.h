/* outbuf.h - a stack buffer flushed to an mp_outfile: reports and maps of
 * any length without allocating. */
#ifndef MP_OUTBUF_H
#define MP_OUTBUF_H

#include <stdarg.h>
#include <stddef.h>

#include "outfile.h"

typedef struct mp_outbuf {
  mp_outfile *file;
  size_t len;
  char buf[4096];
} mp_outbuf;

/* mp_vformat_escaped into the buffer (msg.h): a %s value cannot add a line. */
void mp_out_printf(mp_outbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s written as a %s of mp_out_printf is, whatever its length (a path of
 * 4095 bytes is up to 16 KiB escaped; mp_out_printf cuts at 4 KiB). */
void mp_out_escaped(mp_outbuf *o, const char *s);
/* A JSON string literal: quoted, '"', '\' and control characters escaped,
 * and every byte >= 0x80 written as \u00XX, so the text is valid JSON (and
 * ASCII) whatever the bytes: a reader gets the bytes back by encoding the
 * string as Latin-1. */
void mp_out_json_string(mp_outbuf *o, const char *s);
void mp_out_flush(mp_outbuf *o);

#endif
