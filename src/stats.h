/* stats.h - the statistics report (MEMPOOL_STATS), written without allocating. */
#ifndef MP_STATS_H
#define MP_STATS_H

#include "mp_types.h"
#include "outfile.h"

/* Writes the report to f, as text lines or one JSON object, with
 * cancellation off. pool may be NULL (pool not in use). */
void mp_stats_report(mp_outfile *f, mp_pool *pool, enum mp_stats_format format);
/* The same to stderr (malloc_stats). */
void mp_stats_report_stderr(mp_pool *pool, enum mp_stats_format format);
/* Keeps a copy of stderr (outfile.h: a high number, its identity checked)
 * for the report at exit: many programs (coreutils' close_stdout) close
 * stderr before exit. */
void mp_stats_keep_stderr(void);
/* Opens cfg's destination (the kept stderr, or a path appended with
 * outfile.h's checks, never the region's file) and writes the report. */
void mp_stats_report_to(const mp_config *cfg, mp_pool *pool, mp_file_id region);

/* glibc's mallinfo2 figures, for the pool: arena = region bytes, uordblks =
 * bytes in use (pool blocks), fordblks = free bytes, ordblks = free ranges,
 * keepcost = largest free range, hblkhd = bytes requested from jemalloc. */
struct mallinfo2;
void mp_stats_mallinfo2(mp_pool *pool, struct mallinfo2 *out);

#endif
