/* Chunks of a shared window: two pools over one file stand for two
 * processes (each has its own open file description, so their OFD locks
 * conflict exactly as between processes). Placement is judged from the
 * file's bytes and from /proc/self/maps, the invariants by mp_pool_check. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chunks.h"
#include "dma.h"
#include "pool.h"
#include "preload_util.h" /* mapping_of: placement from /proc/self/maps */

#define BASE   0x100000ull
#define WINDOW (4ull << 20) /* 64 chunks of 64 KiB */
#define CHUNK  (64ull << 10)

static char g_path[512];

static void setup(void) {
  const char *t = getenv("MEMPOOL_TEST_TMP");
  snprintf(g_path, sizeof g_path, "%s/chunks_%d.dev", t ? t : "/tmp", getpid());
  unlink(g_path);
}
static void teardown(void) { unlink(g_path); }

static void open_pool(mp_pool *p, bool share) {
  mp_config c = {
      .device = g_path, .base = BASE, .high = BASE + WINDOW - 1, .sync = true, .share = share, .chunk = CHUNK};
  char err[320];
  ck_assert_msg(mp_pool_open(p, &c, err, sizeof err) == 0, "%s", err);
}

static void assert_valid(mp_pool *p) {
  char why[256] = "";
  ck_assert_msg(mp_pool_check(p, why, sizeof why) == 0, "invariant: %s", why);
}

static uint64_t offset_of(const mp_pool *p, const void *b) { return (uintptr_t)b - p->region.base; }

/* Fills the pool with n-byte blocks until it refuses; returns how many. */
static int fill_pool(mp_pool *p, void **out, int max, size_t n) {
  int k = 0;
  while (k < max && (out[k] = mp_pool_alloc(p, n, 16)) != NULL) k++;
  return k;
}

START_TEST(two_holders_never_overlap) {
  mp_pool a, b;
  open_pool(&a, true);
  open_pool(&b, true);
  static void *ba[4096], *bb[4096];
  int na = 0, nb = 0;
  /* Interleaved: each takes chunks as it needs them. */
  for (int i = 0; i < 3000; i++) {
    size_t n = 16 + (size_t)(i * 7919 % 20000);
    if (i % 2 && (ba[na] = mp_pool_alloc(&a, n, 16))) memset(ba[na++], 'A', n);
    if (!(i % 2) && (bb[nb] = mp_pool_alloc(&b, n, 16))) memset(bb[nb++], 'B', n);
  }
  ck_assert_int_gt(na, 10);
  ck_assert_int_gt(nb, 10);
  assert_valid(&a);
  assert_valid(&b);
  /* Every byte of a's blocks still says A in the file: b never wrote it. */
  int fd = open(g_path, O_RDONLY);
  for (int i = 0; i < na; i++) {
    size_t n = mp_pool_usable_size(&a, ba[i], "test");
    char buf[20016];
    ck_assert_int_eq(pread(fd, buf, 16, (off_t)(BASE + offset_of(&a, ba[i]))), 16);
    ck_assert_msg(!memcmp(buf, "AAAAAAAAAAAAAAAA", 16), "block %d of a overwritten", i);
    (void)n;
  }
  close(fd);
  /* No chunk is held by both. */
  for (uint32_t k = 0; k < a.chunks.count; k++)
    ck_assert(!(a.chunks.state[k] == MP_CHUNK_HELD && b.chunks.state[k] == MP_CHUNK_HELD));
  mp_pool_close(&a);
  mp_pool_close(&b);
}
END_TEST

START_TEST(full_window_then_release) {
  mp_pool a, b;
  open_pool(&a, true);
  open_pool(&b, true);
  static void *blk[100];
  int n = fill_pool(&a, blk, 100, 60 << 10); /* blocks straddle held chunks: the window is one */
  ck_assert_int_eq(n, (int)(WINDOW / (60 << 10)));
  ck_assert_ptr_null(mp_pool_alloc(&b, 100, 16)); /* a holds the whole window */
  mp_pool_info in;
  mp_pool_get_info(&b, &in);
  ck_assert_uint_eq(in.stats.no_chunk, 1);
  for (int i = 0; i < n; i++) mp_pool_free(&a, blk[i], "test");
  assert_valid(&a);
  mp_pool_get_info(&a, &in);
  /* Hysteresis: what was needed a moment ago is kept for reuse, up to an
   * eighth of the window... */
  ck_assert_uint_le(in.held_bytes, WINDOW / 8 + 2 * CHUNK);
  ck_assert_uint_ge(in.held_bytes, WINDOW / 8);
  /* ...and given back at the first free once the peak is 1-2 s old. */
  usleep(2100000);
  mp_pool_free(&a, mp_pool_alloc(&a, CHUNK, 16), "test");
  mp_pool_get_info(&a, &in);
  ck_assert_uint_le(in.held_bytes, 2 * CHUNK);
  /* What a gave back, b can now have. */
  int m = fill_pool(&b, blk, 100, 60 << 10);
  ck_assert_int_ge(m, 62);
  assert_valid(&b);
  mp_pool_close(&a);
  mp_pool_close(&b);
}
END_TEST

START_TEST(churn_does_not_claim_each_time) {
  mp_pool a;
  open_pool(&a, true);
  for (int i = 0; i < 2000; i++) {
    void *x = mp_pool_alloc(&a, 3 * CHUNK, 16); /* a run of chunks */
    ck_assert_ptr_nonnull(x);
    mp_pool_free(&a, x, "test");
  }
  mp_pool_info in;
  mp_pool_get_info(&a, &in);
  ck_assert_uint_le(in.stats.chunk_claims, 8);
  assert_valid(&a);
  mp_pool_close(&a);
}
END_TEST

START_TEST(large_block_takes_a_run) {
  mp_pool a, b;
  open_pool(&a, true);
  open_pool(&b, true);
  void *small = mp_pool_alloc(&b, 100, 16); /* b holds the first chunk */
  ck_assert_ptr_nonnull(small);
  void *big = mp_pool_alloc(&a, 2ull << 20, 16); /* 32 contiguous chunks */
  ck_assert_ptr_nonnull(big);
  memset(big, 7, 2ull << 20);
  ck_assert_uint_ge(offset_of(&a, big), CHUNK); /* not over b's chunk */
  /* Aligned requests larger than a chunk still fit. */
  void *al = mp_pool_alloc(&a, 100, 1 << 20);
  ck_assert_ptr_nonnull(al);
  ck_assert_uint_eq((uintptr_t)al & ((1 << 20) - 1), 0);
  assert_valid(&a);
  mp_pool_free(&a, big, "test");
  mp_pool_free(&a, al, "test");
  mp_pool_free(&b, small, "test");
  assert_valid(&a);
  assert_valid(&b);
  mp_pool_close(&a);
  mp_pool_close(&b);
}
END_TEST

/* Aligned requests right after a claim: the claimed run is sized for the
 * block at its alignment and the block is placed in it (a good-fit search
 * would want a larger free range); what the block leaves whole free of the
 * run goes back. */
START_TEST(aligned_requests_fit_the_run_they_claim) {
  static const size_t cases[][2] = {{32768, 65536}, {65536, 65536},  {65536, 16384},
                                    {40000, 65536}, {65536, 131072}, {16, 1 << 20}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    mp_pool a;
    open_pool(&a, true);
    void *x = mp_pool_alloc(&a, cases[i][0], cases[i][1]);
    ck_assert_msg(x != NULL, "alloc(%zu, align %zu) on an empty window", cases[i][0], cases[i][1]);
    ck_assert_uint_eq((uintptr_t)x & (cases[i][1] - 1), 0);
    mp_pool_info in;
    mp_pool_get_info(&a, &in);
    ck_assert_msg(in.held_bytes <= (cases[i][0] + CHUNK - 1) / CHUNK * CHUNK + 2 * CHUNK,
                  "alloc(%zu, align %zu) keeps %lu bytes", cases[i][0], cases[i][1], (unsigned long)in.held_bytes);
    assert_valid(&a);
    mp_pool_close(&a);
    unlink(g_path);
  }
}
END_TEST

/* A process holding most of the window is killed: the next one gets it. */
START_TEST(sigkill_leaves_chunks_claimable) {
  int ready[2];
  ck_assert_int_eq(pipe(ready), 0);
  pid_t pid = fork();
  if (pid == 0) {
    mp_pool a;
    open_pool(&a, true);
    void *x = mp_pool_alloc(&a, WINDOW - 4 * CHUNK, 16);
    if (!x) _exit(1);
    memset(x, 'K', 100);
    if (write(ready[1], "r", 1) != 1) _exit(2);
    pause();
    _exit(0);
  }
  char c;
  ck_assert_int_eq(read(ready[0], &c, 1), 1);
  mp_pool b;
  open_pool(&b, true);
  ck_assert_ptr_null(mp_pool_alloc(&b, WINDOW / 2, 16)); /* held by the child */
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  usleep(30000); /* b's back-off after finding the window full */
  void *y = mp_pool_alloc(&b, WINDOW - 4 * CHUNK, 16);
  ck_assert_ptr_nonnull(y);
  ck_assert_int_eq(((char *)y)[0], 'K'); /* a newcomer finds the previous owner's bytes */
  assert_valid(&b);
  mp_pool_close(&b);
}
END_TEST

/* Mapping flags and device offset of the mapping holding p (/proc/self/maps). */
static int maps_entry_of(const void *p, char *perms, uint64_t *phys) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[1024];
  int found = 0;
  while (f && fgets(line, sizeof line, f)) {
    unsigned long s, e, off;
    char pm[8];
    if (sscanf(line, "%lx-%lx %7s %lx", &s, &e, pm, &off) == 4 && (uintptr_t)p >= s && (uintptr_t)p < e) {
      strcpy(perms, pm);
      *phys = off + ((uintptr_t)p - s);
      found = strstr(line, g_path) != NULL ? 2 : 1;
      break;
    }
  }
  if (f) fclose(f);
  return found;
}

START_TEST(fork_child_copies_and_claims_its_own) {
  mp_pool a;
  open_pool(&a, true);
  char *old = mp_pool_alloc(&a, 1000, 16), *gone = mp_pool_alloc(&a, 200 << 10, 16);
  memset(old, 'P', 1000);
  memset(gone, 'G', 200 << 10);
  mp_pool_fork_prepare(&a, false);
  pid_t pid = fork();
  if (pid == 0) {
    int rc = mp_pool_fork_child(&a);
    char perms[8];
    uint64_t phys;
    int bad = rc != 0;
    bad |= (maps_entry_of(old, perms, &phys) != 1 || perms[3] != 'p') << 1; /* a private copy */
    bad |= (old[999] != 'P') << 2;
    char *mine = mp_pool_alloc(&a, 1000, 16);
    bad |= (!mine || maps_entry_of(mine, perms, &phys) != 2 || perms[3] != 's') << 3; /* the device */
    bad |= (mine && a.chunks.state[offset_of(&a, mine) / CHUNK] != MP_CHUNK_HELD) << 4;
    if (mine) memset(mine, 'C', 1000);
    /* Inherited free space is never handed out. */
    for (int i = 0; i < 50 && mine; i++) {
      char *x = mp_pool_alloc(&a, 64, 16);
      bad |= (!x || a.chunks.state[offset_of(&a, x) / CHUNK] != MP_CHUNK_HELD) << 5;
    }
    mp_pool_free(&a, gone, "child"); /* its chunks empty: given up */
    char why[256];
    bad |= (mp_pool_check(&a, why, sizeof why) != 0) << 6;
    _exit(bad);
  }
  mp_pool_fork_parent(&a);
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
  ck_assert_int_eq(old[0], 'P'); /* the child wrote its own chunk, not ours */
  ck_assert_int_eq(gone[0], 'G');
  assert_valid(&a);
  mp_pool_close(&a);
}
END_TEST

/* Small objects: what a fork child frees of its inherited ones is never
 * handed out again (not through its thread cache either). */
START_TEST(fork_child_never_reuses_inherited_small_objects) {
  mp_pool a;
  mp_config c = {.device = g_path, .base = BASE, .high = BASE + (16 << 20) - 1, .share = true, .chunk = CHUNK};
  char err[320];
  ck_assert_msg(mp_pool_open(&a, &c, err, sizeof err) == 0, "%s", err);
  ck_assert_int_eq(mp_pool_enable_small(&a), 0);
  static void *obj[100];
  for (int i = 0; i < 100; i++) ck_assert_ptr_nonnull(obj[i] = mp_pool_alloc(&a, 64, 16));
  mp_pool_fork_prepare(&a, false);
  pid_t pid = fork();
  if (pid == 0) {
    int bad = mp_pool_fork_child(&a) != 0;
    for (int i = 0; i < 100; i += 2) mp_pool_free(&a, obj[i], "child");
    for (int k = 0; k < 300; k++) {
      char *x = mp_pool_alloc(&a, 64, 16);
      bad |= (!x || a.chunks.state[offset_of(&a, x) / CHUNK] != MP_CHUNK_HELD) << 1;
    }
    char why[256];
    bad |= (mp_pool_check(&a, why, sizeof why) != 0) << 2;
    if (bad & 4) fprintf(stderr, "child: %s\n", why);
    _exit(bad);
  }
  mp_pool_fork_parent(&a);
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
  mp_pool_close(&a);
}
END_TEST

START_TEST(exclusive_mode_refuses_a_second) {
  mp_pool a, b;
  open_pool(&a, false);
  mp_config c = {
      .device = g_path, .base = BASE, .high = BASE + WINDOW - 1, .sync = true, .share = false, .chunk = CHUNK};
  char err[320];
  ck_assert_int_eq(mp_pool_open(&b, &c, err, sizeof err), -EBUSY);
  ck_assert_msg(strstr(err, "in use by another process") != NULL, "%s", err);
  c.share = true; /* a sharing pool finds no free chunk: spills, no error */
  ck_assert_int_eq(mp_pool_open(&b, &c, err, sizeof err), 0);
  ck_assert_ptr_null(mp_pool_alloc(&b, 100, 16));
  mp_pool_close(&b);
  mp_pool_close(&a);
}
END_TEST

/* Descriptors that name the window's file, from /proc/self/fd. */
static int fds_on_device(void) {
  int n = 0;
  for (int fd = 0; fd < 1024; fd++) {
    char link[64], target[600];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, target, sizeof target - 1);
    if (len > 0) {
      target[len] = '\0';
      n += strcmp(target, g_path) == 0;
    }
  }
  return n;
}

/* The library keeps no descriptor (a program that lists or closes its
 * descriptors sees none of ours, so a daemon's close loop loses no claim). */
START_TEST(no_descriptor_is_kept) {
  mp_pool a, b;
  open_pool(&a, true);
  open_pool(&b, true);
  void *x = mp_pool_alloc(&a, 3 * CHUNK, 16);
  ck_assert_ptr_nonnull(x);
  ck_assert_int_eq(fds_on_device(), 0);
  static void *blk[100];
  int n = fill_pool(&b, blk, 100, 60 << 10);
  ck_assert_int_gt(n, 0);
  for (int i = 0; i < n; i++) {
    uint64_t k = offset_of(&b, blk[i]) / CHUNK;
    ck_assert_msg(a.chunks.state[k] != MP_CHUNK_HELD, "b got chunk %lu that a holds", (unsigned long)k);
  }
  mp_pool_free(&a, x, "test");
  mp_pool_close(&a);
  mp_pool_close(&b);
}
END_TEST

/* A device that maps in units of its alignment (device dax, found in
 * sysfs): chunks follow it, and its "resource" is the physical address of
 * its offset 0. /dev/zero (1:5) stands in, with a fake sysfs. */
START_TEST(dax_alignment_sets_the_chunk) {
  char root[600], dir[700], file[720], err[320];
  snprintf(root, sizeof root, "%s.sysfs", g_path);
  snprintf(dir, sizeof dir, "%s/dev/char/1:5", root);
  char cmd[800];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
  snprintf(file, sizeof file, "%s/align", dir);
  FILE *f = fopen(file, "w");
  ck_assert_ptr_nonnull(f);
  fputs("2097152\n", f);
  fclose(f);
  snprintf(file, sizeof file, "%s/resource", dir); /* its physical start */
  f = fopen(file, "w");
  ck_assert_ptr_nonnull(f);
  fputs("0x30200000\n", f);
  fclose(f);
  mp_pool p;
  mp_config c = {.device = "/dev/zero", .base = 0, .high = (8 << 20) - 1, .share = true, .sysfs_root = root};
  ck_assert_msg(mp_pool_open(&p, &c, err, sizeof err) == 0, "%s", err);
  ck_assert_uint_eq(1u << p.chunks.shift, 2u << 20); /* not the 64 KiB an 8 MiB window would get */
  ck_assert_uint_eq(p.region.base & ((2u << 20) - 1), 0);
  char *q = mp_pool_alloc(&p, 100, 16), path[PATH_MAX]; /* the first chunk: offset 0 of /dev/zero */
  uintptr_t s, e;
  uint64_t off, phys;
  ck_assert(q && mapping_of(q, &s, &e, &off, path, sizeof path));
  ck_assert_int_eq(mp_dma_phys(&p, q, &phys), 0);
  ck_assert_uint_eq(phys, 0x30200000 + off + ((uintptr_t)q - s));
  mp_pool_close(&p);
  c.base = 64 << 10; /* not a multiple of the alignment: refused with a line */
  ck_assert_int_eq(mp_pool_open(&p, &c, err, sizeof err), -EINVAL);
  ck_assert_msg(strstr(err, "/dev/zero maps in units of 2097152 bytes") != NULL, "%s", err);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("chunks");
  TCase *tc = tcase_create("shared window");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, two_holders_never_overlap);
  tcase_add_test(tc, full_window_then_release);
  tcase_add_test(tc, churn_does_not_claim_each_time);
  tcase_add_test(tc, large_block_takes_a_run);
  tcase_add_test(tc, aligned_requests_fit_the_run_they_claim);
  tcase_add_test(tc, sigkill_leaves_chunks_claimable);
  tcase_add_test(tc, fork_child_copies_and_claims_its_own);
  tcase_add_test(tc, fork_child_never_reuses_inherited_small_objects);
  tcase_add_test(tc, exclusive_mode_refuses_a_second);
  tcase_add_test(tc, no_descriptor_is_kept);
  tcase_add_test(tc, dax_alignment_sets_the_chunk);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
