/* stdio.c - the FILE objects libc makes live outside the region.
 *
 * In a fork child of a multi-threaded process glibc resets the lock of
 * every FILE (fresetlockfiles) before any fork handler runs. A FILE in a
 * shared chunk is then the PARENT's FILE: its lock is cleared under a
 * parent thread that holds it or waits for it, and the parent hangs or two
 * threads own one stream (tests/forkstress.c stdio, on a file region). So
 * the constructors of streams are wrapped and their allocations served by
 * jemalloc, whose memory the child gets copy-on-write. A stream's buffer is
 * allocated later, outside these calls, and may live in the region: glibc
 * does not write it in the child.
 *
 * The real functions are found once, with dlsym(RTLD_NEXT), on the first
 * call of each (never during the library's initialization).
 */
#undef _FILE_OFFSET_BITS /* fopen and fopen64 are both defined here, under their own names */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <wchar.h>

#include "preload.h"

#define EXPORT __attribute__((visibility("default")))

/* Defines NAME(PARAMS) calling the next NAME with ARGS, outside the pool. */
#define STREAM_CTOR(ret, name, params, args)                               \
  EXPORT ret name params {                                                 \
    static ret(*real) params;                                              \
    ret(*fn) params = __atomic_load_n(&real, __ATOMIC_ACQUIRE);            \
    if (!fn) {                                                             \
      fn = (ret(*) params)dlsym(RTLD_NEXT, #name);                         \
      __atomic_store_n(&real, fn, __ATOMIC_RELEASE);                       \
      if (!fn) return NULL; /* no libc function of that name: no stream */ \
    }                                                                      \
    mp_preload_not_pool(1);                                                \
    ret r = fn args;                                                       \
    mp_preload_not_pool(-1);                                               \
    return r;                                                              \
  }

STREAM_CTOR(FILE *, fopen, (const char *path, const char *mode), (path, mode))
STREAM_CTOR(FILE *, fopen64, (const char *path, const char *mode), (path, mode))
STREAM_CTOR(FILE *, fdopen, (int fd, const char *mode), (fd, mode))
STREAM_CTOR(FILE *, fmemopen, (void *buf, size_t size, const char *mode), (buf, size, mode))
STREAM_CTOR(FILE *, open_memstream, (char **ptr, size_t *size), (ptr, size))
STREAM_CTOR(FILE *, open_wmemstream, (wchar_t * *ptr, size_t *size), (ptr, size))
STREAM_CTOR(FILE *, fopencookie, (void *cookie, const char *mode, cookie_io_functions_t io), (cookie, mode, io))
STREAM_CTOR(FILE *, popen, (const char *command, const char *type), (command, type))
STREAM_CTOR(FILE *, tmpfile, (void), ())
STREAM_CTOR(FILE *, tmpfile64, (void), ())
