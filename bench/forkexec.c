/* forkexec - fork + exec of a small program from a process with a live heap.
 *
 *   forkexec LIVE_MB N [PROG] [SEED]
 *
 * Allocates LIVE_MB MiB of live heap in blocks of log-uniform size in
 * 16 B..64 KiB, every byte of every block written (and tagged, see common.h),
 * then N times: fork(), the child execv()s PROG (default /bin/true) at once,
 * the parent waitpid()s it. The environment is inherited, so the exec'd
 * program runs under the same LD_PRELOAD as this one: a spawn costs the
 * fork (page tables; for libmempool, the child's private copy of the chunks
 * with blocks in use), the exec and the start and exit of the new program.
 * The live blocks are checked after the loop. A child that does not exit 0
 * fails the run (exit 5).
 *
 * us_per_spawn = wall time of the N spawns / N; fork_us = mean time of the
 * fork() call in the parent.
 */
#include "common.h"

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static size_table sizes_tab;

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s LIVE_MB N [PROG] [SEED]\n", argv[0]);
    return 2;
  }
  size_t live_bytes = (size_t)arg_ull(argc, argv, 1, 16) << 20;
  unsigned long long n = arg_ull(argc, argv, 2, 300);
  const char *prog = argc > 3 ? argv[3] : "/bin/true";
  rng_t r = {arg_ull(argc, argv, 4, 42)};
  size_table_init(&sizes_tab, 16, 65536, r.s);

  size_t cap = 1024, count = 0, total = 0;
  slot_t *slot = xmalloc(cap * sizeof *slot);
  while (total < live_bytes) {
    if (count == cap) {
      cap *= 2;
      slot_t *ns = realloc(slot, cap * sizeof *slot);
      if (!ns) {
        fprintf(stderr, "realloc of the slot table failed\n");
        return 4;
      }
      slot = ns;
    }
    size_t sz = size_pick(&sizes_tab, &r);
    void *p = xmalloc(sz);
    memset(p, 0x5a, sz); /* every byte written */
    slot_set(&slot[count++], p, sz, &r);
    total += sz;
  }

  char *const child_argv[] = {(char *)prog, NULL};
  uint64_t fork_ns = 0;
  uint64_t t0 = now_ns();
  for (unsigned long long k = 0; k < n; k++) {
    uint64_t f0 = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      return 5;
    }
    if (pid == 0) {
      execve(prog, child_argv, environ);
      _exit(127);
    }
    fork_ns += now_ns() - f0;
    int status;
    if (waitpid(pid, &status, 0) != pid) {
      perror("waitpid");
      return 5;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "spawn %llu: %s did not exit 0 (status %#x)\n", k, prog, status);
      return 5;
    }
  }
  uint64_t t1 = now_ns();

  for (size_t i = 0; i < count; i++) {
    slot_check(&slot[i], "forkexec");
    free(slot[i].p);
  }
  free(slot);
  printf("RESULT us_per_spawn=%.2f fork_us=%.2f live_bytes=%zu blocks=%zu spawns=%llu\n",
         (double)(t1 - t0) / (double)n / 1e3, (double)fork_ns / (double)n / 1e3, total, count, n);
  return 0;
}
