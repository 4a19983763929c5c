/* fork gives the child ordinary heap semantics: a private copy of every pool
 * block; nothing the child writes or allocates reaches the parent. fork while
 * other threads allocate does not deadlock; system(), popen() and
 * posix_spawn() work. */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include "preload_util.h"

extern char **environ;
static volatile int stop;

static void *churn(void *arg) {
  (void)arg;
  unsigned x = 12345;
  void *slots[128] = {0};
  while (!stop) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    unsigned i = x % 128;
    free(slots[i]);
    slots[i] = malloc(16 + x % 3000);
  }
  for (int i = 0; i < 128; i++) free(slots[i]);
  return NULL;
}

/* Block i's size: 64 small ones (1000..3331 B), then 24 of 9 KiB..250 KiB
 * (medium classes in a large region: preload_fork_medium). */
enum { NB = 88 };
static size_t size_of_block(int i) { return i < 64 ? 1000 + (size_t)i * 37 : 9000 + (size_t)(i - 64) * 10500; }

/* Forks one after another from a process whose blocks change in between
 * (small and range blocks rewritten, freed, allocated anew): every child
 * sees each block as it was at its own fork, in private memory (not a
 * mapping of the device: the parent's snapshot moved in place, which the
 * parent keeps and brings up to date for the next fork), and allocates
 * device memory of its own. */
static void forks_in_a_row(void) {
  enum { N = 40 };
  char *blk[N];
  size_t len[N];
  for (int i = 0; i < N; i++) {
    len[i] = i % 4 == 0 ? 20000 + (size_t)i * 100 : 24 + (size_t)i * 9;
    blk[i] = malloc(len[i]);
    fill(blk[i], len[i], (unsigned)i);
  }
  for (unsigned round = 0; round < 6; round++) {
    for (int i = (int)round % 3; i < N; i += 3) {
      if (round % 2) {
        free(blk[i]);
        blk[i] = malloc(len[i]);
      }
      fill(blk[i], len[i], round * 100u + (unsigned)i);
    }
    pid_t pid = fork();
    if (pid == 0) {
      int bad = 0;
      for (int i = 0; i < N; i++) {
        unsigned seed = (unsigned)i;
        for (unsigned r = 0; r <= round; r++)
          if ((i - (int)r % 3) % 3 == 0 && i >= (int)r % 3) seed = r * 100u + (unsigned)i;
        bad |= !verify(blk[i], len[i], seed);
        bad |= in_region(blk[i]) << 1;
      }
      char *mine = malloc(3000);
      bad |= (!mine || !in_region(mine)) << 2;
      _exit(bad ? 10 + bad : 0);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork %u: child status %#x", round, st);
  }
  for (int i = 0; i < N; i++) {
    CHECK(in_region(blk[i]), "parent block %d left the device", i);
    free(blk[i]);
  }
}

int main(void) {
  alarm(120); /* a deadlock fails the test instead of hanging it */
  char *b[NB];
  for (int i = 0; i < NB; i++) {
    b[i] = malloc(size_of_block(i));
    fill(b[i], size_of_block(i), (unsigned)i);
    CHECK(in_region(b[i]), "block %d not in region", i);
  }
  pid_t pid = fork();
  if (pid == 0) {
    int ok = 1;
    for (int i = 0; i < NB; i++) ok &= verify(b[i], size_of_block(i), (unsigned)i);
    for (int i = 0; i < NB; i++) fill(b[i], size_of_block(i), 1000u + (unsigned)i);
    for (int i = 0; i < NB; i++) free(b[i]); /* child frees: parent keeps them */
    for (int i = 0; i < 200; i++) fill(malloc(5000 + (size_t)i * 1000), 5000 + (size_t)i * 1000, 7); /* reuses */
    _exit(ok ? 0 : 3);
  }
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
        "child saw wrong content or crashed (status %#x)", st);
  for (int i = 0; i < NB; i++)
    CHECK(verify(b[i], size_of_block(i), (unsigned)i), "parent block %d changed by the child", i);
  void *fresh = malloc(5000);
  CHECK(in_region(fresh), "parent allocation after fork");
  free(fresh);

  forks_in_a_row();

  /* What the parent writes right after fork() never reaches the child, even
   * when the child's copy of the pool takes a while (a 24 MiB block first). */
  char *bulk = malloc(24u << 20);
  memset(bulk, 'B', 24u << 20);
  char *msg = malloc(64);
  strcpy(msg, "before fork");
  pid = fork();
  if (pid == 0) _exit(strcmp(msg, "before fork") == 0 && bulk[12345] == 'B' ? 0 : 4);
  strcpy(msg, "PARENT WROTE AFTER FORK");
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
        "child saw the parent's write made after fork (status %#x)", st);
  free(bulk);
  free(msg);

  /* fork while three threads allocate. */
  pthread_t t[3];
  for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, churn, NULL);
  for (int k = 0; k < 30; k++) {
    pid_t c = fork();
    if (c == 0) {
      void *q[50];
      for (int i = 0; i < 50; i++) q[i] = malloc(100 + (size_t)i * 50);
      for (int i = 0; i < 50; i++) free(q[i]);
      _exit(0);
    }
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork %d child status %#x", k, st);
  }
  stop = 1;
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);

  /* Programs started from here must not share the region: without the
   * preload they run normally (with it they would print "region busy"). */
  unsetenv("LD_PRELOAD");
  CHECK(system("exit 7") != -1, "system");
  CHECK(WEXITSTATUS(system("exit 7")) == 7, "system exit status");
  FILE *f = popen("echo popen-ok", "r");
  char line[64] = "";
  CHECK(f && fgets(line, sizeof line, f) && !strcmp(line, "popen-ok\n"), "popen read '%s'", line);
  CHECK(f && pclose(f) == 0, "pclose");
  pid_t sp;
  char *argv[] = {"/bin/sh", "-c", "exit 5", NULL};
  CHECK(posix_spawn(&sp, "/bin/sh", NULL, NULL, argv, environ) == 0, "posix_spawn");
  CHECK(waitpid(sp, &st, 0) == sp && WEXITSTATUS(st) == 5, "posix_spawn status");

  for (int i = 0; i < NB; i++) {
    CHECK(verify(b[i], size_of_block(i), (unsigned)i), "parent block %d at the end", i);
    free(b[i]);
  }
  return finish("preload_fork");
}
