/* forkorder.c - the lock order at fork (see forkorder.h). */
#define _GNU_SOURCE
#include "forkorder.h"

#include <pthread.h>
#include <sys/single_threaded.h>

#include "nocancel.h"

/* glibc's stdio list lock, exported (GLIBC_2.2.5) for exactly this use. */
extern void _IO_list_lock(void);
extern void _IO_list_unlock(void);
extern void _IO_list_resetlock(void);

void mp_fork_begin(mp_fork_state *s) {
  s->mask = mp_fork_atomic_begin();
  s->cancel = mp_nocancel_begin();
  s->single = __libc_single_threaded;
  if (!s->single) _IO_list_lock();
}

void mp_fork_end_parent(const mp_fork_state *s) {
  if (!s->single) _IO_list_unlock();
  mp_nocancel_end(s->cancel);
  mp_fork_atomic_end(&s->mask);
}

void mp_fork_end_child(const mp_fork_state *s) {
  if (!s->single) _IO_list_resetlock();
  mp_nocancel_end(s->cancel);
  mp_fork_atomic_end(&s->mask);
}

sigset_t mp_fork_atomic_begin(void) {
  sigset_t all, old;
  sigfillset(&all);
  static const int faults[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT};
  for (unsigned i = 0; i < sizeof faults / sizeof faults[0]; i++) sigdelset(&all, faults[i]);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  return old;
}

void mp_fork_atomic_end(const sigset_t *old) { pthread_sigmask(SIG_SETMASK, old, NULL); }
