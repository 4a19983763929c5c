/* forkorder.h - THE lock order at fork, for every fork handler of the
 * library (the interposer's and the API's), in one place.
 *
 * glibc's fork runs the pthread_atfork prepare handlers, then takes the
 * stdio list lock (_IO_list_lock), then its own malloc's locks. A prepare
 * handler that takes a malloc lock first closes a cycle (glibc bug 19431):
 * a thread in fflush(NULL) holds the list lock and waits for a FILE's lock,
 * a thread in getline holds that FILE's lock and waits for the pool in
 * realloc, the forking thread holds the pool and waits for the list lock.
 * So every handler of ours takes, in this order:
 *   1. the stdio list lock (recursive: glibc's fork takes it again), as
 *      glibc's own malloc does: malloc is then always entered with the list
 *      lock either free or held by the forking thread, never the reverse;
 *   2. the interposer's initialization lock (preload.c);
 *   3. per pool: every size-class lock, the thread-cache list lock, then
 *      the pool lock (pool.c: mp_pool_fork_prepare).
 * The parent releases in reverse; the child re-makes every lock (one
 * thread only), and the stdio list lock is reset, as glibc does.
 *
 * A process with one thread (fork may come from a signal handler that
 * interrupted that very thread inside malloc: POSIX lists fork as
 * async-signal-safe, glibc bug 24161) waits for no lock, as glibc does.
 * The interposer marks every call into it (preload.h: MP_INSIDE); a fork
 * that finds the mark set interrupted the library anywhere, locked or not
 * (a thread cache is changed without a lock), so no lock is tried and no
 * metadata read: what the process holds is copied whole in the child, and
 * the pool serves nothing there; the interrupted call, resumed in the child
 * when the handler returns, completes on that private copy
 * (mp_pool_fork_child). Without the mark each lock is only tried, and a lock
 * held (the API's pools, which take a lock for every call, or the exit
 * report) means the same.
 *
 * What must not be seen half done by such a child, because the child would
 * resume it and share the parent's memory, runs with signals blocked
 * (mp_fork_atomic_begin/end): mapping a chunk of the device and marking it held,
 * unmapping one and marking it away, creating and listing an API pool,
 * unlisting and unmapping one.
 *
 * Cancellation is off from prepare to the parent and child handlers.
 */
#ifndef MP_FORKORDER_H
#define MP_FORKORDER_H

#include <signal.h>
#include <stdbool.h>

typedef enum mp_fork_mode {
  MP_FORK_LOCK,        /* several threads: wait for every lock */
  MP_FORK_TRY,         /* one thread, outside the library: try each lock */
  MP_FORK_INTERRUPTED, /* one thread, inside the library: touch nothing */
} mp_fork_mode;

typedef struct mp_fork_state {
  int cancel;  /* the thread's cancel state, given back after */
  bool single; /* one thread: locks were only tried */
} mp_fork_state;

/* Step 1 (prepare): cancellation off; the stdio list lock unless single. */
void mp_fork_begin(mp_fork_state *s);
/* The parent's end: the stdio list lock released, cancellation back. */
void mp_fork_end_parent(const mp_fork_state *s);
/* The child's end: the stdio list lock reset, cancellation back. */
void mp_fork_end_child(const mp_fork_state *s);

/* Blocks the asynchronous signals for the calling thread (the
 * synchronous ones a fault raises stay open: blocked, they would kill the
 * process) and returns the mask to give back: a fork from a signal handler
 * sees the work between begin and end done or not begun. Two system calls,
 * for changes that make several already (open, mmap, close). */
sigset_t mp_fork_atomic_begin(void);
void mp_fork_atomic_end(const sigset_t *old);

#endif
