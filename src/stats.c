/* stats.c - human-readable statistics, one "mempool:" line per figure. */
#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fallback.h"
#include "msg.h"
#include "pool.h"

#define UL(x) ((unsigned long)(x))

void mp_stats_report(int fd, mp_pool *pool) {
  mp_fallback_stats fb;
  mp_fallback_get_stats(&fb);
  mp_msg_fd(fd, "statistics for pid %lu", UL(getpid()));
  if (pool) {
    mp_pool_info in;
    mp_pool_get_info(pool, &in);
    const mp_stats *s = &in.stats;
    mp_msg_fd(fd, "  region            %s offset %#lx, %lu bytes at %p", pool->region.device,
              UL(pool->region.dev_offset), UL(in.region_bytes), (void *)pool->region.base);
    mp_msg_fd(fd, "  pool allocations  %lu (frees %lu, failed requests %lu)", UL(s->pool_allocs + in.small_allocs),
              UL(s->pool_frees + in.small_frees), UL(s->pool_failed));
    mp_msg_fd(fd, "  pool in use       %lu bytes (%lu in small objects); region in use %lu bytes, peak %lu",
              UL(s->pool_bytes + in.small_bytes), UL(in.small_bytes), UL(in.used_bytes), UL(s->region_peak));
    mp_msg_fd(fd, "  pool free         %lu bytes in %lu ranges, largest %lu bytes", UL(in.free_bytes),
              UL(in.free_ranges), UL(in.largest_free));
    unsigned long frag = in.free_bytes ? UL(1000 - in.largest_free * 1000 / in.free_bytes) : 0;
    mp_msg_fd(fd, "  fragmentation     %lu.%lu%% (1 - largest free / free)", frag / 10, frag % 10);
    mp_msg_fd(fd, "  metadata          %lu bytes (%lu.%lu%% of the region)", UL(in.meta_bytes),
              UL(in.meta_bytes * 100 / in.region_bytes), UL(in.meta_bytes * 1000 / in.region_bytes % 10));
  } else {
    mp_msg_fd(fd, "  region            not in use");
  }
  mp_msg_fd(fd, "  jemalloc          %lu allocations, %lu frees, %lu bytes requested", UL(fb.allocs),
            UL(fb.frees), UL(fb.bytes_total));
}

void mp_stats_report_to(const mp_config *cfg, mp_pool *pool) {
  if (cfg->stats == MP_STATS_OFF) return;
  if (cfg->stats == MP_STATS_STDERR) {
    mp_stats_report(2, pool);
    return;
  }
  int saved = errno;
  int fd = open(cfg->stats_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    mp_msg("cannot open MEMPOOL_STATS file %s: %s; statistics go to stderr", cfg->stats_path,
           mp_strerror(errno));
    mp_stats_report(2, pool);
  } else {
    mp_stats_report(fd, pool);
    close(fd);
  }
  errno = saved;
}
