/* spawn - run one benchmark process and report its wall time and rusage.
 *
 *   spawn RESULT_FILE [NAME=VALUE ...] -- PROGRAM [ARGS ...]
 *
 * scripts/bench runs every workload through this small helper so that
 * ru_maxrss is the workload's own: Linux carries the peak RSS of the process
 * that forked across exec, and the runner (python) is bigger than the small
 * workloads.  The NAME=VALUE pairs (LD_PRELOAD, MEMPOOL_*) are put in the
 * environment of the child only, after fork, so this helper never runs under
 * the allocator being measured.  Writes one line to RESULT_FILE:
 *   wall_ns=... status=... maxrss_kib=... utime_us=... stime_us=... minflt=... majflt=...
 * and exits with 0 (the child's wait status is in the file).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  int dd = 0;
  for (int i = 2; i < argc; i++)
    if (strcmp(argv[i], "--") == 0) {
      dd = i;
      break;
    }
  if (argc < 4 || dd == 0 || dd + 1 >= argc) {
    fprintf(stderr, "usage: %s RESULT_FILE [NAME=VALUE ...] -- PROGRAM [ARGS ...]\n", argv[0]);
    return 2;
  }
  FILE *out = fopen(argv[1], "w");
  if (!out) {
    perror(argv[1]);
    return 2;
  }
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 2;
  }
  if (pid == 0) {
    fclose(out);
    for (int i = 2; i < dd; i++) putenv(argv[i]);
    execvp(argv[dd + 1], argv + dd + 1);
    fprintf(stderr, "spawn: exec %s: %s\n", argv[dd + 1], strerror(errno));
    _exit(127);
  }
  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0)
    if (errno != EINTR) {
      perror("wait4");
      return 2;
    }
  clock_gettime(CLOCK_MONOTONIC, &b);
  long long ns = (long long)(b.tv_sec - a.tv_sec) * 1000000000ll + (b.tv_nsec - a.tv_nsec);
  fprintf(out, "wall_ns=%lld status=%d maxrss_kib=%ld utime_us=%lld stime_us=%lld minflt=%ld majflt=%ld\n", ns, status,
          ru.ru_maxrss, (long long)ru.ru_utime.tv_sec * 1000000ll + ru.ru_utime.tv_usec,
          (long long)ru.ru_stime.tv_sec * 1000000ll + ru.ru_stime.tv_usec, ru.ru_minflt, ru.ru_majflt);
  fclose(out);
  return 0;
}
