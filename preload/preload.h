/* preload.h - what the interposer's other files (the C++ operators, the
 * stream constructors) need from preload.c. */
#ifndef MP_PRELOAD_H
#define MP_PRELOAD_H
#include "mp_types.h"
mp_pool *mp_preload_pool(void);       /* initializes on first use */
mp_pool *mp_preload_owner_pool(void); /* for frees: no initialization */
/* +1 / -1: this thread's requests go to jemalloc while the count is above 0
 * (stdio.c: the FILE objects libc makes). */
void mp_preload_not_pool(int delta);

/* How deep this thread is in calls into the library: every exported entry
 * runs its work inside MP_INSIDE (never a user callback: a new_handler may
 * throw). A fork that finds it above 0 in a process of one thread comes
 * from a signal handler that interrupted the library, whose metadata may be
 * half-changed (preload.c: fork_prepare). Two instructions per call. */
extern __thread unsigned mp_t_inside __attribute__((tls_model("initial-exec")));
static inline void mp_preload_enter(void) {
  mp_t_inside++;
  __atomic_signal_fence(__ATOMIC_SEQ_CST); /* a handler on this thread sees the mark before the work */
}
static inline void mp_preload_leave(void) {
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  mp_t_inside--;
}
/* The value of call, made inside the library; MP_INSIDE_DO for void calls. */
#define MP_INSIDE(call)              \
  ({                                 \
    mp_preload_enter();              \
    __typeof__(call) inside_ = call; \
    mp_preload_leave();              \
    inside_;                         \
  })
#define MP_INSIDE_DO(call) \
  do {                     \
    mp_preload_enter();    \
    call;                  \
    mp_preload_leave();    \
  } while (0)
#endif
