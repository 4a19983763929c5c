/* map.c - the region map (see map.h). */
#include "map.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

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
  unsigned long bytes = (unsigned long)size << MP_GRANULE_SHIFT;
  unsigned cls = in_use ? mp_small_class_at(c->pool, off) : 0;
  if (in_use && mp_chunk_state_at(c->pool, start) == MP_CHUNK_AWAY) /* chunks this process does not hold */
    mp_out_printf(c->out, "range %#lx %lu away\n", (unsigned long)off, bytes);
  else if (cls)
    mp_out_printf(c->out, "range %#lx %lu span:%u\n", (unsigned long)off, bytes,
                  (unsigned)mp_class_size[mp_span_cls(cls)]);
  else
    mp_out_printf(c->out, "range %#lx %lu %s\n", (unsigned long)off, bytes, in_use ? "used" : "free");
}

void mp_map_write(int fd, mp_pool *pool) {
  mp_outbuf o = {.fd = fd};
  mp_out_printf(&o, "# mempool map v1\nregion %s %#lx %lu\n", pool->region.device,
                (unsigned long)pool->region.dev_offset, (unsigned long)pool->region.size);
  struct map_ctx c = {pool, &o};
  mp_pool_walk(pool, one_range, &c);
  mp_out_flush(&o);
}

int mp_map_write_to(const char *path, mp_pool *pool) {
  int saved = errno;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = errno;
    errno = saved;
    return -e;
  }
  mp_map_write(fd, pool);
  close(fd);
  errno = saved;
  return 0;
}
