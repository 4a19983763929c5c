/* fallback.c - the jemalloc side. */
#include "fallback.h"

#include <jemalloc/jemalloc.h>

#include <string.h>

#include "msg.h"

#define MP_STR2(x) #x
#define MP_STR(x)  MP_STR2(x)

static mp_fallback_stats counters;

static inline void count(uint64_t *c, uint64_t v) { __atomic_fetch_add(c, v, __ATOMIC_RELAXED); }

/* jemalloc's 8-byte class is only 8-aligned: every block gets 16 bytes at
 * least, so that all blocks are aligned for max_align_t. */
static inline size_t at_least_16(size_t size) { return size < 16 ? 16 : size; }

void *mp_fallback_alloc(size_t size, size_t align, bool zero) {
  int flags = zero ? MALLOCX_ZERO : 0;
  if (align > 16) flags |= MALLOCX_LG_ALIGN(__builtin_ctzl(align));
  void *p = mallocx(at_least_16(size), flags);
  if (p) {
    count(&counters.allocs, 1);
    count(&counters.bytes_total, size);
  }
  return p;
}

void *mp_fallback_realloc(void *ptr, size_t size) {
  void *p = rallocx(ptr, at_least_16(size), 0);
  if (p) count(&counters.bytes_total, size);
  return p;
}

void mp_fallback_free(void *ptr) {
  count(&counters.frees, 1);
  dallocx(ptr, 0);
}

size_t mp_fallback_usable_size(const void *ptr) { return sallocx(ptr, 0); }

void mp_fallback_get_stats(mp_fallback_stats *out) {
  out->allocs = __atomic_load_n(&counters.allocs, __ATOMIC_RELAXED);
  out->frees = __atomic_load_n(&counters.frees, __ATOMIC_RELAXED);
  out->bytes_total = __atomic_load_n(&counters.bytes_total, __ATOMIC_RELAXED);
}

static void jemalloc_message(void *opaque, const char *s) {
  (void)opaque;
  char line[400];
  while (s && *s) {
    size_t n = strcspn(s, "\n"), k = n < sizeof line - 1 ? n : sizeof line - 1;
    memcpy(line, s, k);
    line[k] = '\0';
    if (k) mp_msg_stderr("jemalloc: %s", line);
    s += n + (s[n] == '\n');
  }
}

void mp_fallback_route_messages(void) { malloc_message = jemalloc_message; }

bool mp_fallback_trim(void) { return mallctl("arena." MP_STR(MALLCTL_ARENAS_ALL) ".purge", NULL, NULL, NULL, 0) == 0; }
