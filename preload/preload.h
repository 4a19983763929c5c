/* preload.h - what the C++ operators need from the interposer. */
#ifndef MP_PRELOAD_H
#define MP_PRELOAD_H
#include "mp_types.h"
mp_pool *mp_preload_pool(void);        /* initializes on first use */
mp_pool *mp_preload_owner_pool(void);  /* for frees: no initialization */
#endif
