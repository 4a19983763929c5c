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
 *   3. per pool: the reclaimers' steal lock (tcache.h: no reclaim is
 *      then under way, no cache has its hits stopped), every size-class
 *      lock, the thread-cache list lock, then the pool lock (pool.c:
 *      mp_pool_fork_prepare).
 * The parent releases in reverse; the child re-makes every lock (one
 * thread only; every thread cache's lock too), and the stdio list lock is
 * reset, as glibc does.
 *
 * A process with one thread (fork may come from a signal handler that
 * interrupted that very thread inside malloc: POSIX lists fork as
 * async-signal-safe, glibc bug 24161) waits for no lock, as glibc does:
 * each lock is only tried, and when every one was got they are given back
 * at once (nothing can take them before fork: no other thread, the
 * signals blocked): the child inherits them free (neither process writes
 * them after fork: no copy-on-write fault for that), and a prepare
 * handler that runs after ours may allocate. The child may return from the handler
 * into the interrupted call and complete it, so:
 *   - a lock held means the call was inside it and its metadata may be
 *     half-changed: the child changes nothing and re-makes no lock the call
 *     holds; it copies what the process holds (its blocks in use when the
 *     pool lock was free: the ranges and chunks change only under it; all
 *     of it otherwise) and the pool serves nothing more there
 *     (mp_pool_fork_child);
 *   - every lock free means only the calling thread's cache can be
 *     half-changed (its hit path takes no lock): the child takes the usual
 *     path but leaves that cache as it is (mp_small_fork_purge).
 *
 * What must not be seen half done by such a child, because the child would
 * resume it and share the parent's memory, runs with signals blocked
 * (mp_fork_atomic_begin/end): mapping a chunk of the device and marking it held,
 * unmapping one and marking it away, creating and listing an API pool,
 * unlisting and unmapping one.
 *
 * Cancellation is off, and the asynchronous signals blocked, from each
 * prepare handler to its parent and child handlers: a handler that forks
 * cannot interrupt a fork between them (the state of each is kept once,
 * in static memory; jemalloc's prepare handler, which runs after ours,
 * is covered too).
 */
#ifndef MP_FORKORDER_H
#define MP_FORKORDER_H

#include <signal.h>
#include <stdbool.h>

typedef struct mp_fork_state {
  sigset_t mask; /* the thread's signal mask, given back after */
  int cancel;    /* the thread's cancel state, given back after */
  bool single;   /* one thread: locks were only tried */
} mp_fork_state;

/* Step 1 (prepare): signals blocked, cancellation off; the stdio list lock
 * unless single. */
void mp_fork_begin(mp_fork_state *s);
/* The parent's end: the stdio list lock released, cancellation and the
 * signal mask back. */
void mp_fork_end_parent(const mp_fork_state *s);
/* The child's end: the stdio list lock reset, cancellation and the signal
 * mask back. */
void mp_fork_end_child(const mp_fork_state *s);

/* Blocks the asynchronous signals for the calling thread (the
 * synchronous ones a fault raises stay open: blocked, they would kill the
 * process) and returns the mask to give back: a fork from a signal handler
 * sees the work between begin and end done or not begun. Two system calls,
 * for changes that make several already (open, mmap, close). */
sigset_t mp_fork_atomic_begin(void);
void mp_fork_atomic_end(const sigset_t *old);

#endif
