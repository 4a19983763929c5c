/* stats.h - the statistics report (MEMPOOL_STATS), written without allocating. */
#ifndef MP_STATS_H
#define MP_STATS_H

#include "mp_types.h"

/* Writes the report to fd. pool may be NULL (pool not in use). */
void mp_stats_report(int fd, mp_pool *pool);
/* Opens cfg's destination (stderr or a path, appended) and writes the report. */
void mp_stats_report_to(const mp_config *cfg, mp_pool *pool);

#endif
