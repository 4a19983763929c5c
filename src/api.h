/* api.h - what the interposer tells the public API (mempool.h). */
#ifndef MP_API_H
#define MP_API_H

#include "mp_types.h"

/* The interposer's pool, now in use: mempool_default() returns a handle on
 * it from then on. Called once, at the interposer's initialization. */
/* The interposer opens its region at the first request: mempool_default()
 * asks it to open now (open returns the pool, or NULL). */
void mp_api_default_opener(mp_pool *(*open)(void));
void mp_api_publish_default(mp_pool *p);

#endif
