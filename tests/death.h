/* death.h - death tests: run a function in a child whose stderr is captured,
 * and judge how it died: SIGABRT after exactly one "mempool: " line that
 * contains the expected words. Shared by the check suites and the preload
 * programs. */
#ifndef DEATH_H
#define DEATH_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* 2^(bits of size_t / 2): HALF_WIDTH * HALF_WIDTH wraps to 0 (calloc overflow
 * tests, on 32- and 64-bit targets). */
#define HALF_WIDTH ((size_t)1 << (sizeof(size_t) * 4))

/* Runs fn in a child (it should not return); stderr goes to buf. Returns the
 * wait status, or -1 if the child could not be run. */
static inline int death_run(void (*fn)(void), char *buf, size_t len) {
  int fds[2];
  if (len == 0 || pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    signal(SIGABRT, SIG_DFL);
    fn();
    _exit(0);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t r;
  while (n < len - 1 && (r = read(fds[0], buf + n, len - 1 - n)) > 0) n += (size_t)r;
  buf[n] = '\0';
  close(fds[0]);
  /* qemu user emulation (cross builds) reports the signal on the target's
   * stderr after the program's own output: not the program's line. */
  char *emu = strstr(buf, "qemu: uncaught target signal ");
  if (emu && (emu == buf || emu[-1] == '\n')) *emu = '\0';
  int st;
  return waitpid(pid, &st, 0) == pid ? st : -1;
}

/* NULL when fn died as a trap should, else what was wrong (static text). */
static inline const char *death_problem(void (*fn)(void), const char *says) {
  static char buf[2048], why[2600];
  int st = death_run(fn, buf, sizeof buf);
  if (st == -1) return "could not run the child";
  if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT)
    snprintf(why, sizeof why, "no SIGABRT (status %#x), stderr '%s'", st, buf);
  else if (strncmp(buf, "mempool: ", 9) != 0)
    snprintf(why, sizeof why, "message '%s' lacks the 'mempool: ' prefix", buf);
  else if (!strstr(buf, says))
    snprintf(why, sizeof why, "message '%s' lacks '%s'", buf, says);
  else if (strchr(buf, '\n') != buf + strlen(buf) - 1)
    snprintf(why, sizeof why, "not exactly one line: '%s'", buf);
  else
    return NULL;
  return why;
}

#endif
