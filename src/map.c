/* map.c - the region map (see map.h). */
#include "map.h"

#include "chunks.h"
#include "outbuf.h"
#include "pool.h"
#include "sizeclass.h"
#include "span.h"

struct map_ctx {
  mp_pool *pool;
  mp_outbuf *out;
};

static void one_range(void *vctx, uint32_t start, uint32_t size, bool in_use) {
  struct map_ctx *c = vctx;
  uintptr_t off = (uintptr_t)start << MP_GRANULE_SHIFT;
  unsigned long long bytes = (unsigned long long)size << MP_GRANULE_SHIFT;
  unsigned cls = in_use ? mp_small_class_at(c->pool, off) : 0;
  if (in_use && mp_chunk_state_at(c->pool, start) == MP_CHUNK_AWAY) /* chunks this process does not hold */
    mp_out_printf(c->out, "range %#llx %llu away\n", (unsigned long long)off, bytes);
  else if (cls)
    mp_out_printf(c->out, "range %#llx %llu span:%u\n", (unsigned long long)off, bytes,
                  (unsigned)mp_class_size[mp_span_cls(cls)]);
  else
    mp_out_printf(c->out, "range %#llx %llu %s\n", (unsigned long long)off, bytes, in_use ? "used" : "free");
}

void mp_map_write(mp_outfile *f, mp_pool *pool) {
  mp_outbuf o = {.file = f};
  mp_out_printf(&o, "# mempool map v2\nregion %#llx %llu ", (unsigned long long)pool->region.dev_offset,
                (unsigned long long)pool->region.size);
  mp_out_escaped(&o, pool->region.device);
  mp_out_printf(&o, "\n");
  struct map_ctx c = {pool, &o};
  mp_pool_walk(pool, one_range, &c);
  mp_out_flush(&o);
}

int mp_map_write_to(const char *path, mp_pool *pool, char *err, size_t errlen) {
  mp_outfile f;
  mp_file_id region = {pool->region.dev, pool->region.ino};
  int rc = mp_outfile_open(&f, "MEMPOOL_MAP", path, false, region, err, errlen);
  if (rc != 0) return rc;
  mp_map_write(&f, pool);
  mp_outfile_close(&f);
  return 0;
}
