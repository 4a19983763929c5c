/* msg.h - messages written with write(2) from a stack buffer: usable inside
 * malloc, before initialization, in a fork child. Never allocates.
 *
 * Format directives: a deliberately tiny printf, checked by the compiler:
 *   %s (with a precision .N: a longer string keeps its start and end around
 *   "..."), %p, %%, and %u %d %x with optional '#' (0x prefix), a width
 *   (0 to pad with zeros, for %u and %x) and 'l'/'z'/'ll'. A 64-bit value
 *   (device offsets, uint64_t counters) is printed with 'll' and a cast to
 *   unsigned long long: long has 32 bits on 32-bit targets.
 * What reaches a reader (messages, mp_vformat_escaped: reports and maps)
 * has every %s byte that is a control character, DEL, >= 0x80 or a
 * backslash written as \xNN: one message is one line whatever the values.
 */
#ifndef MP_MSG_H
#define MP_MSG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "outfile.h"

/* Formats into buf (always NUL-terminated), returns the length written. */
size_t mp_vformat(char *buf, size_t len, const char *fmt, va_list ap);
size_t mp_format(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* mp_vformat with %s arguments escaped (see above). */
size_t mp_vformat_escaped(char *buf, size_t len, const char *fmt, va_list ap);

/* Writes "mempool: <formatted>\n" to stderr in one write(2), while
 * descriptor 2 is still a diagnostics stream (msg.c: stderr_usable). */
void mp_msg_stderr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Logging (MEMPOOL_LOG): 0 silent, 1 problems (default), 2 information
 * (the region at start), 3 debugging (every request the region cannot serve,
 * every thread cache made); to MEMPOOL_LOG_FILE or stderr. Traps are always
 * written to stderr. */
enum { MP_LOG_PROBLEM = 1, MP_LOG_INFO = 2, MP_LOG_DEBUG = 3 };
extern int mp_log_level;
/* Notes what descriptor 2 is at start (see mp_msg_stderr); runs at load
 * and at the interposer's initialization, whichever is first. */
void mp_msg_remember_stderr(void);
/* Whether descriptor 2 may be written (outfile.h: a diagnostics stream). */
bool mp_msg_stderr_usable(void);
/* Opens MEMPOOL_LOG_FILE (outfile.h's checks, never the region's file; a
 * refusal is one line on stderr, and messages then go there). */
void mp_log_setup(int level, const char *path, mp_file_id region);
/* Once the region is open: a log file that is the region's file is closed
 * (one line), messages go to stderr. */
void mp_log_avoid(mp_file_id region);
void mp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define mp_msg(...) mp_log(MP_LOG_PROBLEM, __VA_ARGS__)

/* mp_msg then abort(): the one-line trap for corrupted pointers. */
_Noreturn void mp_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A short, untranslated description of an errno value (no allocation). */
const char *mp_strerror(int err);

#endif
