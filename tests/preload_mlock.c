/* fork under mlockall(MCL_CURRENT | MCL_FUTURE): the parent's snapshot of
 * its blocks (a chunk-sized mapping, which MCL_FUTURE would lock and make
 * resident whole) is given up, so the locked memory does not grow by a
 * chunk (512 KiB on the tests' 64 MiB window); the children still see
 * their blocks and allocate device memory. Skipped (passes) where mlockall
 * is not permitted. */
#include <sys/mman.h>
#include <sys/wait.h>

#include "preload_util.h"

/* VmLck of /proc/self/status, in KiB (-1: unknown). */
static long locked_kib(void) {
  static char buf[8192];
  int fd = open("/proc/self/status", O_RDONLY);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  if (fd >= 0) close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char *l = strstr(buf, "VmLck:");
  return l ? strtol(l + 6, NULL, 10) : -1;
}

int main(void) {
  char *b = malloc(3000);
  fill(b, 3000, 5);
  CHECK(in_region(b), "block not in the region");
  if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
    printf("preload_mlock: mlockall not permitted, skipped\n");
    return 0;
  }
  long before = locked_kib();
  for (int k = 0; k < 4; k++) {
    pid_t pid = fork();
    if (pid == 0) {
      char *mine = malloc(3000);
      _exit(verify(b, 3000, 5) && mine && in_region(mine) ? 0 : 3);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork %d: child status %#x", k, st);
  }
  long after = locked_kib();
  CHECK(before >= 0 && after - before < 128, "locked memory grew from %ld to %ld KiB over 4 forks", before, after);
  munlockall();
  free(b);
  return finish("preload_mlock");
}
