/* stats.h - the statistics report (MEMPOOL_STATS), written without allocating. */
#ifndef MP_STATS_H
#define MP_STATS_H

#include "mp_types.h"

/* Writes the report to fd, as text lines or one JSON object. pool may be
 * NULL (pool not in use). */
void mp_stats_report(int fd, mp_pool *pool, enum mp_stats_format format);
/* Keeps a copy of stderr (on a high descriptor) for the report at exit:
 * many programs (coreutils' close_stdout) close stderr before exit. */
extern int mp_stats_fd;
void mp_stats_keep_stderr(void);
/* Opens cfg's destination (stderr or a path, appended) and writes the report. */
void mp_stats_report_to(const mp_config *cfg, mp_pool *pool);

/* glibc's mallinfo2 figures, for the pool: arena = region bytes, uordblks =
 * bytes in use (pool blocks), fordblks = free bytes, ordblks = free ranges,
 * keepcost = largest free range, hblkhd = bytes requested from jemalloc. */
struct mallinfo2;
void mp_stats_mallinfo2(mp_pool *pool, struct mallinfo2 *out);

#endif
