/* stats.c - the statistics report (MEMPOOL_STATS), as "mempool:" text lines
 * or as one JSON object per process (MEMPOOL_STATS_FORMAT=json). */
#include "stats.h"

#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <unistd.h>

#include "fallback.h"
#include "msg.h"
#include "nocancel.h"
#include "outbuf.h"
#include "pool.h"

#define UL(x) ((unsigned long long)(x))

/* 1 - largest free / free, in tenths of a percent. */
static unsigned long long frag_permille(const mp_pool_info *in) {
  return in->free_bytes ? UL(1000 - in->largest_free * 1000 / in->free_bytes) : 0;
}

static void report_text(mp_outbuf *o, mp_pool *pool, const mp_fallback_stats *fb) {
  mp_out_printf(o, "mempool: statistics for pid %llu\n", UL(getpid()));
  if (pool) {
    mp_pool_info in;
    mp_pool_get_info(pool, &in);
    const mp_stats *s = &in.stats;
    unsigned long long frag = frag_permille(&in);
    mp_out_printf(o, "mempool:   region            %.160s offset %#llx, %llu bytes at %p\n", pool->region.device,
                  UL(pool->region.dev_offset), UL(in.region_bytes), (void *)pool->region.base);
    mp_out_printf(
        o,
        "mempool:   device held       %llu bytes in chunks of %llu (claimed %llu, released %llu, none free %llu times); private copies %llu bytes\n",
        UL(in.held_bytes), UL(in.chunk_bytes), UL(s->chunk_claims), UL(s->chunk_releases), UL(s->no_chunk),
        UL(in.inherited_bytes));
    mp_out_printf(o, "mempool:   pool allocations  %llu (frees %llu, failed requests %llu)\n",
                  UL(s->pool_allocs + in.small_allocs), UL(s->pool_frees + in.small_frees), UL(s->pool_failed));
    mp_out_printf(
        o, "mempool:   pool in use       %llu bytes (%llu in small objects); region in use %llu bytes, peak %llu\n",
        UL(s->pool_bytes + in.small_bytes), UL(in.small_bytes), UL(in.used_bytes), UL(s->region_peak));
    mp_out_printf(o, "mempool:   pool free         %llu bytes in %llu ranges, largest %llu bytes\n", UL(in.free_bytes),
                  UL(in.free_ranges), UL(in.largest_free));
    mp_out_printf(o, "mempool:   fragmentation     %llu.%llu%% (1 - largest free / free)\n", frag / 10, frag % 10);
    mp_out_printf(o, "mempool:   metadata          %llu bytes (%llu.%02llu%% of the region)\n", UL(in.meta_bytes),
                  UL(in.meta_bytes * 100 / in.region_bytes), UL(in.meta_bytes * 10000 / in.region_bytes % 100));
  } else {
    mp_out_printf(o, "mempool:   region            not in use\n");
  }
  mp_out_printf(o, "mempool:   jemalloc          %llu allocations, %llu frees, %llu bytes requested\n", UL(fb->allocs),
                UL(fb->frees), UL(fb->bytes_total));
}

static void report_json(mp_outbuf *o, mp_pool *pool, const mp_fallback_stats *fb) {
  mp_out_printf(o, "{\"pid\":%llu,\"region\":", UL(getpid()));
  if (pool) {
    mp_pool_info in;
    mp_pool_get_info(pool, &in);
    const mp_stats *s = &in.stats;
    unsigned long long frag = frag_permille(&in);
    mp_out_printf(o, "{\"device\":");
    mp_out_json_string(o, pool->region.device);
    mp_out_printf(
        o, ",\"offset\":%llu,\"bytes\":%llu,\"chunk_bytes\":%llu,\"held_bytes\":%llu,\"private_copy_bytes\":%llu,",
        UL(pool->region.dev_offset), UL(in.region_bytes), UL(in.chunk_bytes), UL(in.held_bytes),
        UL(in.inherited_bytes));
    mp_out_printf(o, "\"chunks_claimed\":%llu,\"chunks_released\":%llu,\"no_free_chunk\":%llu},\"pool\":{",
                  UL(s->chunk_claims), UL(s->chunk_releases), UL(s->no_chunk));
    mp_out_printf(o, "\"allocations\":%llu,\"frees\":%llu,\"failed_requests\":%llu,",
                  UL(s->pool_allocs + in.small_allocs), UL(s->pool_frees + in.small_frees), UL(s->pool_failed));
    mp_out_printf(o, "\"bytes_in_use\":%llu,\"small_bytes_in_use\":%llu,\"region_in_use\":%llu,\"region_peak\":%llu,",
                  UL(s->pool_bytes + in.small_bytes), UL(in.small_bytes), UL(in.used_bytes), UL(s->region_peak));
    mp_out_printf(o, "\"free_bytes\":%llu,\"free_ranges\":%llu,\"used_ranges\":%llu,\"largest_free\":%llu,",
                  UL(in.free_bytes), UL(in.free_ranges), UL(in.used_ranges), UL(in.largest_free));
    mp_out_printf(o, "\"fragmentation\":%llu.%03llu,\"metadata_bytes\":%llu}", frag / 1000, frag % 1000,
                  UL(in.meta_bytes));
  } else {
    mp_out_printf(o, "null,\"pool\":null");
  }
  mp_out_printf(o, ",\"jemalloc\":{\"allocations\":%llu,\"frees\":%llu,\"bytes_requested\":%llu}}\n", UL(fb->allocs),
                UL(fb->frees), UL(fb->bytes_total));
}

static void report(mp_outfile *f, mp_pool *pool, enum mp_stats_format format) {
  mp_fallback_stats fb;
  mp_fallback_get_stats(&fb);
  mp_outbuf o = {.file = f};
  if (format == MP_STATS_JSON)
    report_json(&o, pool, &fb);
  else
    report_text(&o, pool, &fb);
  mp_out_flush(&o);
}

void mp_stats_report(mp_outfile *f, mp_pool *pool, enum mp_stats_format format) {
  int cancel = mp_nocancel_begin(); /* a cancelled thread never leaves half a report */
  report(f, pool, format);
  mp_nocancel_end(cancel);
}

void mp_stats_report_stderr(mp_pool *pool, enum mp_stats_format format) {
  int cancel = mp_nocancel_begin();
  mp_outfile f;
  if (mp_msg_stderr_usable() && mp_outfile_dup(&f, "stderr", 2) == 0) {
    report(&f, pool, format);
    mp_outfile_close(&f);
  }
  mp_nocancel_end(cancel);
}

static mp_outfile g_kept_stderr = {.fd = -1};

void mp_stats_keep_stderr(void) { mp_outfile_dup(&g_kept_stderr, "stderr", 2); }

void mp_stats_report_to(const mp_config *cfg, mp_pool *pool, mp_file_id region) {
  if (cfg->stats == MP_STATS_OFF) return;
  if (cfg->stats == MP_STATS_STDERR) {
    if (g_kept_stderr.fd >= 0)
      mp_stats_report(&g_kept_stderr, pool, cfg->stats_format);
    else
      mp_stats_report_stderr(pool, cfg->stats_format);
    return;
  }
  char err[320];
  mp_outfile f;
  int rc = mp_outfile_open(&f, "MEMPOOL_STATS file", cfg->stats_path, true, region, err, sizeof err);
  if (rc == -EACCES) { /* a process of the tree running as another user: quiet */
    mp_log(MP_LOG_INFO, "%s; no statistics", err);
  } else if (rc != 0) {
    mp_msg("%s; statistics go to stderr", err);
    mp_stats_report_stderr(pool, cfg->stats_format);
  } else {
    mp_stats_report(&f, pool, cfg->stats_format);
    mp_outfile_close(&f);
  }
}

void mp_stats_mallinfo2(mp_pool *pool, struct mallinfo2 *out) {
  mp_fallback_stats fb;
  mp_fallback_get_stats(&fb);
  memset(out, 0, sizeof *out);
  out->hblkhd = fb.bytes_total;
  if (!pool) return;
  mp_pool_info in;
  mp_pool_get_info(pool, &in);
  out->arena = in.held_bytes + in.inherited_bytes; /* what this process holds of the window */
  out->ordblks = in.free_ranges;
  out->uordblks = in.stats.pool_bytes + in.small_bytes;
  out->fordblks = in.free_bytes;
  out->keepcost = in.largest_free;
  out->usmblks = in.stats.region_peak;
}
