/* preload.h - what the C++ operators need from the interposer. */
#ifndef MP_PRELOAD_H
#define MP_PRELOAD_H
#include "mp_types.h"
mp_pool *mp_preload_pool(void);       /* opens the region on first use */
mp_pool *mp_preload_owner_pool(void); /* for frees: no initialization */
/* +1 / -1: this thread's requests go to jemalloc while the count is above 0
 * (stdio.c: the FILE objects libc makes). */
void mp_preload_not_pool(int delta);
#endif
