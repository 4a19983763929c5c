/* forkorder.c - the lock order at fork (see forkorder.h). */
#define _GNU_SOURCE
#include "forkorder.h"

#include <sys/single_threaded.h>

#include "nocancel.h"

/* glibc's stdio list lock, exported (GLIBC_2.2.5) for exactly this use. */
extern void _IO_list_lock(void);
extern void _IO_list_unlock(void);
extern void _IO_list_resetlock(void);

void mp_fork_begin(mp_fork_state *s) {
  s->cancel = mp_nocancel_begin();
  s->single = __libc_single_threaded;
  if (!s->single) _IO_list_lock();
}

void mp_fork_end_parent(const mp_fork_state *s) {
  if (!s->single) _IO_list_unlock();
  mp_nocancel_end(s->cancel);
}

void mp_fork_end_child(const mp_fork_state *s) {
  if (!s->single) _IO_list_resetlock();
  mp_nocancel_end(s->cancel);
}
