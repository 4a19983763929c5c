/* nocancel.h - the library's system calls that are cancellation points
 * (open, close, write, fcntl, ...) run with cancellation disabled: POSIX
 * does not let malloc, free or fork be cancellation points, and a thread
 * cancelled there would leave a pool lock held for ever. */
#ifndef MP_NOCANCEL_H
#define MP_NOCANCEL_H

#include <pthread.h>

/* Returns the state to give back to mp_nocancel_end. No system call. */
static inline int mp_nocancel_begin(void) {
  int old;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
  return old;
}
static inline void mp_nocancel_end(int old) {
  int ignored;
  pthread_setcancelstate(old, &ignored);
}

#endif
