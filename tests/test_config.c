/* Configuration parsing and region opening: every bad value gives a clear
 * reason (and the caller runs on jemalloc); good values map lazily. */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "msg.h"
#include "outfile.h"
#include "pool.h"
#include "region.h"

/* A fake environment: pairs of name, value. */
static const char *const *fake_env;
static const char *fake_get(const char *name) {
  for (const char *const *e = fake_env; e && *e; e += 2)
    if (!strcmp(e[0], name)) return e[1];
  return NULL;
}

static int load(const char *const *env, mp_config *c, char *err) {
  fake_env = env;
  return mp_config_load(c, fake_get, err, 320);
}

static const char *tmpdir(void) {
  const char *t = getenv("MEMPOOL_TEST_TMP");
  return t ? t : "/tmp";
}

START_TEST(defaults) {
  mp_config c;
  char err[320];
  const char *env[] = {NULL};
  ck_assert_int_eq(load(env, &c, err), 0);
  ck_assert_str_eq(c.device, "/dev/mem");
  ck_assert_uint_eq(c.base, 0x10000000);
  ck_assert_uint_eq(c.high, 0x1DFFEFFF);
  ck_assert(c.sync);
  ck_assert_int_eq(c.stats, MP_STATS_OFF);
}
END_TEST

START_TEST(numbers) {
  uint64_t v;
  ck_assert_int_eq(mp_parse_u64("010", &v), 0); /* documented: decimal, not octal */
  ck_assert_uint_eq(v, 10);
  ck_assert_int_eq(mp_parse_u64("0x10", &v), 0);
  ck_assert_uint_eq(v, 16);
  ck_assert_int_eq(mp_parse_u64("0XfF", &v), 0);
  ck_assert_uint_eq(v, 255);
  ck_assert_int_eq(mp_parse_u64("4096", &v), 0);
  ck_assert_uint_eq(v, 4096);
  ck_assert_int_eq(mp_parse_u64("18446744073709551615", &v), 0);
  ck_assert_uint_eq(v, UINT64_MAX);
  const char *bad[] = {
      "", "0x", "12a", "0x1g", " 1", "1 ", "-1", "+1", "18446744073709551616", "0x10000000000000000", "1e6", "0b101"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    ck_assert_msg(mp_parse_u64(bad[i], &v) == -1, "'%s' accepted", bad[i]);
}
END_TEST

START_TEST(policy_values) {
  mp_config c;
  char err[320];
  const char *env[] = {"MEMPOOL_MIN_SIZE",
                       "4k",
                       "MEMPOOL_MAX_SIZE",
                       "2G",
                       "MEMPOOL_STRICT",
                       "1",
                       "MEMPOOL_CHECK",
                       "1",
                       "MEMPOOL_LOG",
                       "3",
                       "MEMPOOL_LOG_FILE",
                       "/tmp/l",
                       "MEMPOOL_STATS_FORMAT",
                       "json",
                       "MEMPOOL_MAP",
                       "/tmp/m",
                       NULL};
  ck_assert_int_eq(load(env, &c, err), 0);
  ck_assert_uint_eq(c.policy.min_size, 4096);
  ck_assert_uint_eq(c.policy.max_size, 2ull << 30);
  ck_assert(c.policy.strict && c.policy.check);
  ck_assert_int_eq(c.log_level, 3);
  ck_assert_str_eq(c.log_path, "/tmp/l");
  ck_assert_int_eq(c.stats_format, MP_STATS_JSON);
  ck_assert_str_eq(c.map_path, "/tmp/m");
  const char *none[] = {NULL};
  ck_assert_int_eq(load(none, &c, err), 0);
  ck_assert_uint_eq(c.policy.min_size, 0);
  ck_assert_uint_eq(c.policy.max_size, UINT64_MAX);
  ck_assert(!c.policy.strict && !c.policy.check);
  ck_assert_int_eq(c.log_level, 1);
  /* Strictness and logging are known even when the region settings are bad. */
  const char *bad[] = {"MEMPOOL_STRICT", "1", "MEMPOOL_LOG", "0", "MEMPOOL_BASE", "x", NULL};
  ck_assert_int_eq(load(bad, &c, err), -1);
  ck_assert(c.policy.strict);
  ck_assert_int_eq(c.log_level, 0);
  uint64_t v;
  ck_assert_int_eq(mp_parse_size("0x10K", &v), 0);
  ck_assert_uint_eq(v, 16384);
  ck_assert_int_eq(mp_parse_size("3m", &v), 0);
  ck_assert_uint_eq(v, 3u << 20);
  ck_assert_int_eq(mp_parse_size("17179869183G", &v), 0);
  ck_assert_int_eq(mp_parse_size("17179869184G", &v), -1);
  ck_assert_int_eq(mp_parse_size("", &v), -1);
  ck_assert_int_eq(mp_parse_size("1KB", &v), -1);
}
END_TEST

START_TEST(good_values) {
  mp_config c;
  char err[320];
  const char *env[] = {
      "MEMPOOL_DEVICE", "/tmp/x", "MEMPOOL_BASE", "0", "MEMPOOL_HIGH", "1048575", "MEMPOOL_SYNC", "0", "MEMPOOL_STATS",
      "/tmp/stats.txt", NULL};
  ck_assert_int_eq(load(env, &c, err), 0);
  ck_assert_str_eq(c.device, "/tmp/x");
  ck_assert_uint_eq(c.base, 0);
  ck_assert_uint_eq(c.high, 1048575);
  ck_assert(!c.sync);
  ck_assert_int_eq(c.stats, MP_STATS_PATH);
  ck_assert_str_eq(c.stats_path, "/tmp/stats.txt");
  const char *env2[] = {"MEMPOOL_STATS", "1", NULL};
  ck_assert_int_eq(load(env2, &c, err), 0);
  ck_assert_int_eq(c.stats, MP_STATS_STDERR);
}
END_TEST

/* Each bad environment and a fragment its message must contain. */
static const struct {
  const char *env[13];
  const char *says;
} bad_cases[] = {
    {{"MEMPOOL_BASE", "zz", NULL}, "MEMPOOL_BASE='zz' is not a hex"},
    {{"MEMPOOL_HIGH", "0x1FFFFFFFq", NULL}, "MEMPOOL_HIGH='0x1FFFFFFFq' is not a hex"},
    {{"MEMPOOL_BASE", "", NULL}, "MEMPOOL_BASE='' is not"},
    {{"MEMPOOL_BASE", "0x20000000", "MEMPOOL_HIGH", "0x10000000", NULL}, "must be above MEMPOOL_BASE"},
    {{"MEMPOOL_BASE", "0x10000000", "MEMPOOL_HIGH", "0x10000000", NULL}, "must be above MEMPOOL_BASE"},
    {{"MEMPOOL_BASE", "0x10000100", NULL}, "not page-aligned"},
    {{"MEMPOOL_BASE", "0", "MEMPOOL_HIGH", "100", NULL}, "smaller than one page"},
#if SIZE_MAX > UINT32_MAX
    /* Exactly 64 GiB: one granule index too many (the real limit is said). */
    {{"MEMPOOL_BASE", "0", "MEMPOOL_HIGH", "0xFFFFFFFFF", NULL},
     "larger than the 68719476480 bytes supported (64 GiB - 256: MEMPOOL_HIGH at most MEMPOOL_BASE + 0xffffffeff)"},
#else
    /* 2 GiB + 1 byte above 4 GiB: more than a 32-bit address space holds. */
    {{"MEMPOOL_BASE", "0x100000000", "MEMPOOL_HIGH", "0x180000000", NULL},
     "region 0x100000000..0x180000000 is larger than the 2147483648 bytes supported (2 GiB on a 32-bit target: "
     "MEMPOOL_HIGH at most MEMPOOL_BASE + 0x7fffffff)"},
#endif
    {{"MEMPOOL_BASE", "0", "MEMPOOL_HIGH", "0xFFFFFFFFFFFFFFFF", NULL}, "is larger than the"},
    {{"MEMPOOL_BASE", "0xFFFFFFFFFFFFF000", "MEMPOOL_HIGH", "0xFFFFFFFFFFFFFFFF", NULL},
     "MEMPOOL_HIGH (0xffffffffffffffff) is beyond the largest device offset (0x7fffffffffffffff)"},
    {{"MEMPOOL_SYNC", "yes", NULL}, "MEMPOOL_SYNC='yes' must be 0 or 1"},
    {{"MEMPOOL_DEVICE", "", NULL}, "MEMPOOL_DEVICE is empty"},
    {{"MEMPOOL_LOG", "5", NULL}, "MEMPOOL_LOG='5' must be 0, 1, 2 or 3"},
    {{"MEMPOOL_LOG", "11", NULL}, "MEMPOOL_LOG='11' must be"},
    {{"MEMPOOL_STRICT", "2", NULL}, "MEMPOOL_STRICT='2' must be 0 or 1"},
    {{"MEMPOOL_MIN_SIZE", "1X", NULL}, "MEMPOOL_MIN_SIZE='1X' is not a size"},
    {{"MEMPOOL_MAX_SIZE", "K", NULL}, "MEMPOOL_MAX_SIZE='K' is not a size"},
    {{"MEMPOOL_MAX_SIZE", "99999999999999G", NULL}, "is not a size"},
    {{"MEMPOOL_MIN_SIZE", "2M", "MEMPOOL_MAX_SIZE", "1M", NULL},
     "MEMPOOL_MIN_SIZE (2097152) is above MEMPOOL_MAX_SIZE (1048576)"},
    {{"MEMPOOL_CHECK", "yes", NULL}, "MEMPOOL_CHECK='yes' must be 0 or 1"},
    {{"MEMPOOL_STATS_FORMAT", "xml", NULL}, "MEMPOOL_STATS_FORMAT='xml' must be text or json"},
};

/* A value longer than a path can be is refused, naming the variable. */
START_TEST(too_long_values) {
  static char longv[MP_VALUE_MAX + 2];
  memset(longv, 'a', sizeof longv - 1);
  longv[0] = '/';
  const char *names[] = {
      "MEMPOOL_DEVICE",     "MEMPOOL_STATS", "MEMPOOL_MAP", "MEMPOOL_LOG_FILE",
      "MEMPOOL_SYSFS_ROOT", "MEMPOOL_BASE"}; /* a number cut by the reader would be another address */
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    mp_config c;
    char err[320], want[64];
    const char *env[] = {names[i], longv, NULL};
    ck_assert_int_eq(load(env, &c, err), -1);
    mp_format(want, sizeof want, "%s is longer than 4095 bytes", names[i]);
    ck_assert_msg(strstr(err, want), "message '%s' lacks '%s'", err, want);
  }
  longv[MP_VALUE_MAX] = '\0'; /* the longest accepted */
  mp_config c;
  char err[320];
  const char *env[] = {"MEMPOOL_DEVICE", longv, NULL};
  ck_assert_int_eq(load(env, &c, err), 0);
}
END_TEST

/* A long bad value is shortened in the middle: the reason stays. */
START_TEST(long_value_keeps_reason) {
  static char longv[3000];
  memset(longv, '7', sizeof longv - 1);
  longv[1500] = 'z';
  mp_config c;
  char err[320];
  const char *env[] = {"MEMPOOL_BASE", longv, NULL};
  ck_assert_int_eq(load(env, &c, err), -1);
  ck_assert_msg(strstr(err, "...") && strstr(err, "' is not a hex (0x...) or decimal number"), "message '%s'", err);
  ck_assert_uint_lt(strlen(err), 200);
}
END_TEST

/* MEMPOOL_STRICT is known whatever else is refused (README: the line, then abort). */
START_TEST(strict_before_everything) {
  mp_config c;
  char err[320];
  const char *env[] = {"MEMPOOL_LOG", "9", "MEMPOOL_STRICT", "1", NULL};
  ck_assert_int_eq(load(env, &c, err), -1);
  ck_assert(c.policy.strict);
  /* ... and a bad MEMPOOL_STRICT keeps MEMPOOL_LOG, its file and the device. */
  const char *env2[] = {"MEMPOOL_STRICT", "yes",      "MEMPOOL_LOG", "0", "MEMPOOL_LOG_FILE", "/tmp/lf",
                        "MEMPOOL_DEVICE", "/tmp/dev", NULL};
  ck_assert_int_eq(load(env2, &c, err), -1);
  ck_assert_int_eq(c.log_level, 0);
  ck_assert_str_eq(c.log_path, "/tmp/lf");
  ck_assert_str_eq(c.device, "/tmp/dev");
  ck_assert_msg(strstr(err, "MEMPOOL_STRICT='yes' must be 0 or 1"), "%s", err);
}
END_TEST

/* Documented reading: MAX_SIZE=0 is "no limit" wherever it appears, also
 * beside a MIN_SIZE (a leading 0 is decimal: see numbers). */
START_TEST(number_conventions) {
  mp_config c;
  char err[320];
  const char *env[] = {"MEMPOOL_MIN_SIZE", "1", "MEMPOOL_MAX_SIZE", "0", NULL};
  ck_assert_int_eq(load(env, &c, err), 0);
  ck_assert_uint_eq(c.policy.min_size, 1);
  ck_assert_uint_eq(c.policy.max_size, UINT64_MAX);
}
END_TEST

/* Which descriptors get a message (outfile.h): diagnostics streams only. */
START_TEST(diagnostic_descriptors) {
  char path[] = "/dev/shm/diag-XXXXXX";
  int tmpfd = mkstemp(path);
  ck_assert_int_ge(tmpfd, 0);
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  int rdwr = open(path, O_RDWR), app = open(path, O_WRONLY | O_APPEND), wr = open(path, O_WRONLY);
  int nul = open("/dev/null", O_WRONLY), dev = open("/dev/urandom", O_RDWR);
  mp_file_id none = {0, 0}, start = mp_file_id_of(path);
  ck_assert(mp_outfile_fd_is_diagnostic(p[1], none));
  ck_assert(mp_outfile_fd_is_diagnostic(nul, none));
  ck_assert(mp_outfile_fd_is_diagnostic(app, none));
  ck_assert(!mp_outfile_fd_is_diagnostic(rdwr, none)); /* a data file the program opened on 2 */
  ck_assert(!mp_outfile_fd_is_diagnostic(wr, none));   /* written in place, not appended */
  ck_assert(!mp_outfile_fd_is_diagnostic(dev, none));  /* a device: /dev/mem would be memory */
  ck_assert(mp_outfile_fd_is_diagnostic(rdwr, start)); /* what stderr was at start */
  ck_assert(!mp_outfile_fd_is_diagnostic(1000, none)); /* closed */
  int fds[] = {tmpfd, p[0], p[1], rdwr, app, wr, nul, dev};
  for (size_t i = 0; i < sizeof fds / sizeof *fds; i++) close(fds[i]);
  unlink(path);
}
END_TEST

START_TEST(bad_values) {
  mp_config c;
  char err[320];
  ck_assert_int_eq(load(bad_cases[_i].env, &c, err), -1);
  ck_assert_msg(strstr(err, bad_cases[_i].says) != NULL, "message '%s' lacks '%s'", err, bad_cases[_i].says);
  ck_assert_msg(strchr(err, '\n') == NULL, "message is not one line");
}
END_TEST

static int open_region(const char *dev, uint64_t base, uint64_t high, mp_region *r, char *err) {
  mp_config c = {.device = dev, .base = base, .high = high, .sync = true};
  return mp_region_open(&c, r, err, 320);
}

START_TEST(file_region_sparse_and_lazy) {
  char path[512], err[320];
  snprintf(path, sizeof path, "%s/cfg_region_%d.dev", tmpdir(), getpid());
  unlink(path);
  mp_region r;
  ck_assert_msg(open_region(path, 0x10000000, 0x2FFFFFFF, &r, err) == 0, "%s", err);
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert_int_eq(st.st_size, 0x30000000); /* extended to HIGH+1 */
  ck_assert_int_lt(st.st_blocks, 64);       /* sparse: nothing written */
  ck_assert_uint_eq(r.size, 0x20000000);
  ck_assert(r.shared);
  ((char *)r.base)[0] = 'A';
  ((char *)r.base)[r.size - 1] = 'Z';
  mp_region_close(&r);
  int fd = open(path, O_RDONLY);
  char c;
  ck_assert_int_eq(pread(fd, &c, 1, 0x10000000), 1);
  ck_assert_int_eq(c, 'A'); /* offset BASE holds the first byte */
  ck_assert_int_eq(pread(fd, &c, 1, 0x2FFFFFFF), 1);
  ck_assert_int_eq(c, 'Z');
  close(fd);
  unlink(path);
}
END_TEST

/* The messages' formatter keeps 64-bit values whole where long has 32 bits
 * ('ll'), and size_t's 'z' and long's 'l' at their own widths. */
START_TEST(format_widths) {
  char buf[160];
  mp_format(buf, sizeof buf, "%#llx %llu %lld %zu %lu %d %u", 0x123456789abcull, (unsigned long long)UINT64_MAX,
            (long long)INT64_MIN, (size_t)SIZE_MAX, (unsigned long)ULONG_MAX, -7, 7u);
  char want[160];
  snprintf(want, sizeof want, "0x123456789abc 18446744073709551615 -9223372036854775808 %zu %lu -7 7", (size_t)SIZE_MAX,
           (unsigned long)ULONG_MAX);
  ck_assert_str_eq(buf, want);
}
END_TEST

START_TEST(anon_region) {
  char err[320];
  mp_region r;
  /* 16 GiB (1 GiB on a 32-bit target, where 16 GiB is refused), lazily */
  if (MP_MAX_REGION <= (1ull << 34)) ck_assert_int_eq(open_region("anon", 0, (1ull << 34) - 1, &r, err), -EINVAL);
  uint64_t high = MP_MAX_REGION > (1ull << 34) ? (1ull << 34) - 1 : (1ull << 30) - 1;
  ck_assert_msg(open_region("anon", 0, high, &r, err) == 0, "%s", err);
  ck_assert(!r.shared);
  ((char *)r.base)[12345] = 1;
  mp_region_close(&r);
}
END_TEST

START_TEST(region_errors) {
  char err[320], path[512];
  mp_region r;
  ck_assert_int_eq(open_region("/dev/does-not-exist", 0x10000000, 0x1FFFFFFF, &r, err), -ENOENT);
  ck_assert_msg(strstr(err, "cannot open /dev/does-not-exist: No such file") != NULL, "%s", err);
  ck_assert_int_eq(access("/dev/does-not-exist", F_OK), -1);                /* never created under /dev */
  ck_assert_int_eq(open_region("/dev/null", 0, 0xFFFFF, &r, err), -ENODEV); /* mmap refused */
  ck_assert_msg(strstr(err, "mmap of /dev/null") != NULL, "%s", err);
  ck_assert_int_eq(open_region(tmpdir(), 0, 0xFFFFF, &r, err), -EISDIR); /* a directory */
  ck_assert_msg(strstr(err, "cannot open") != NULL || strstr(err, "not a character device") != NULL, "%s", err);
  snprintf(path, sizeof path, "%s/no-such-dir-%d/dev", tmpdir(), getpid());
  ck_assert_int_eq(open_region(path, 0, 0xFFFFF, &r, err), -ENOENT);
  ck_assert_msg(strstr(err, "No such file") != NULL, "%s", err);
}
END_TEST

/* Permission denied: a 0600 file of root's opened by another user (the test
 * drops to nobody in a child when it runs as root, as CI does). */
START_TEST(region_permission_denied) {
  char path[512], err[320];
  snprintf(path, sizeof path, "%s/cfg_perm_%d.dev", tmpdir(), getpid());
  int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
  ck_assert_int_ge(fd, 0);
  close(fd);
  chmod(tmpdir(), 0755);
  if (geteuid() != 0) ck_assert_int_eq(chmod(path, 0400), 0);
  if (geteuid() == 0 && setuid(65534) != 0) ck_abort_msg("setuid(nobody) failed");
  mp_region r;
  int rc = open_region(path, 0, 0xFFFFF, &r, err);
  ck_assert_int_eq(rc, -EACCES);
  ck_assert_msg(strstr(err, "Permission denied") != NULL, "%s", err);
  unlink(path);
}
END_TEST

START_TEST(region_busy) {
  char path[512], err[320];
  snprintf(path, sizeof path, "%s/cfg_busy_%d.dev", tmpdir(), getpid());
  unlink(path);
  mp_region a, b;
  ck_assert_msg(open_region(path, 0x100000, 0x1FFFFF, &a, err) == 0, "%s", err);
  /* An overlapping range, opened separately (as another process would): refused. */
  ck_assert_int_eq(open_region(path, 0x180000, 0x2FFFFF, &b, err), -EBUSY);
  ck_assert_msg(strstr(err, "in use by another process") != NULL, "%s", err);
  /* A disjoint range of the same device is fine. */
  ck_assert_msg(open_region(path, 0x200000, 0x2FFFFF, &b, err) == 0, "%s", err);
  mp_region_close(&b);
  mp_region_close(&a);
  /* Released with the descriptor. */
  ck_assert_msg(open_region(path, 0x180000, 0x2FFFFF, &b, err) == 0, "%s", err);
  mp_region_close(&b);
  unlink(path);
}
END_TEST

/* ---- region files a hostile user may plant ---- */

static int open_shared(const char *dev, mp_region *r, char *err) {
  mp_config c = {.device = dev, .base = 0x100000, .high = 0x1FFFFF, .sync = true, .share = true, .chunk = 1 << 16};
  return mp_region_open(&c, r, err, 320);
}

/* A file another user (or a careless one) planted: name under the test
 * directory, mode, owner (-1: this user). */
static void plant(char *path, size_t len, const char *name, mode_t mode, uid_t owner) {
  snprintf(path, len, "%s/%s_%d", tmpdir(), name, getpid());
  int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(fchmod(fd, mode), 0);
  if (owner != (uid_t)-1) ck_assert_int_eq(fchown(fd, owner, owner), 0);
  close(fd);
}

/* Opening path as a shared region is refused with rc and a line saying says. */
static void expect_refused(const char *path, int rc, const char *says) {
  char err[320];
  mp_region r;
  ck_assert_int_eq(open_shared(path, &r, err), rc);
  ck_assert_msg(strstr(err, says) != NULL, "'%s' lacks '%s'", err, says);
}

START_TEST(region_symlink_refused) {
  char path[512], target[512];
  plant(target, sizeof target, "cfg_target", 0600, (uid_t)-1);
  ck_assert_int_eq(truncate(target, 8), 0);
  snprintf(path, sizeof path, "%s/cfg_link_%d.dev", tmpdir(), getpid());
  unlink(path);
  ck_assert_int_eq(symlink(target, path), 0);
  expect_refused(path, -ELOOP, "is a symbolic link: not followed");
  struct stat st;
  ck_assert_int_eq(stat(target, &st), 0);
  ck_assert_int_eq(st.st_size, 8); /* the file it points to is untouched */
  unlink(path);
  unlink(target);
}
END_TEST

START_TEST(region_file_of_another_user_refused) {
  char path[512];
  if (geteuid() != 0) return; /* needs root to give a file away (CI runs as root) */
  plant(path, sizeof path, "cfg_foreign", 0600, 65534);
  expect_refused(path, -EPERM, "is owned by uid 65534");
  unlink(path);
}
END_TEST

START_TEST(region_file_writable_by_others_refused) {
  char path[512];
  plant(path, sizeof path, "cfg_0666", 0666, (uid_t)-1);
  expect_refused(path, -EPERM, "is writable by group or others (mode 666)");
  unlink(path);
}
END_TEST

/* RLIMIT_FSIZE below the region's end: a line, never SIGXFSZ. */
START_TEST(region_fsize_limit) {
  char path[512];
  snprintf(path, sizeof path, "%s/cfg_fsize_%d.dev", tmpdir(), getpid());
  unlink(path);
  struct rlimit rl = {0x100000, RLIM_INFINITY};
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
  expect_refused(path, -EFBIG, "RLIMIT_FSIZE (1048576 bytes) is below the region's end");
  unlink(path);
}
END_TEST

/* Missing files are never created in /dev, however the path is spelled. */
START_TEST(never_created_in_dev) {
  static const char *const spellings[] = {"//dev/mempool-test-x", "/dev/./mempool-test-x", "/dev/../dev/mempool-test-x",
                                          "/dev//mempool-test-x"};
  for (size_t i = 0; i < sizeof spellings / sizeof *spellings; i++) {
    expect_refused(spellings[i], -ENOENT, "No such file");
    ck_assert_int_eq(access("/dev/mempool-test-x", F_OK), -1);
  }
}
END_TEST

/* The region keeps no descriptor open; a file it creates is the user's alone. */
START_TEST(region_keeps_no_descriptor) {
  char path[512], err[320];
  snprintf(path, sizeof path, "%s/cfg_fd_%d.dev", tmpdir(), getpid());
  unlink(path);
  int before = open("/dev/null", O_RDONLY);
  close(before);
  mp_region r;
  ck_assert_msg(open_shared(path, &r, err) == 0, "%s", err);
  ck_assert_int_eq(r.fd, -1);
  int after = open("/dev/null", O_RDONLY);
  ck_assert_int_eq(after, before); /* the lowest free number is still free */
  close(after);
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0600); /* created for this user alone */
  mp_region_close(&r);
  unlink(path);
}
END_TEST

int main(void) {
  Suite *s = suite_create("config");
  TCase *tc = tcase_create("parse");
  tcase_add_test(tc, defaults);
  tcase_add_test(tc, numbers);
  tcase_add_test(tc, good_values);
  tcase_add_test(tc, policy_values);
  tcase_add_loop_test(tc, bad_values, 0, (int)(sizeof bad_cases / sizeof *bad_cases));
  tcase_add_test(tc, too_long_values);
  tcase_add_test(tc, long_value_keeps_reason);
  tcase_add_test(tc, strict_before_everything);
  tcase_add_test(tc, number_conventions);
  tcase_add_test(tc, diagnostic_descriptors);
  tcase_add_test(tc, format_widths);
  suite_add_tcase(s, tc);
  TCase *tr = tcase_create("region");
  tcase_add_test(tr, file_region_sparse_and_lazy);
  tcase_add_test(tr, anon_region);
  tcase_add_test(tr, region_errors);
  tcase_add_test(tr, region_busy);
  tcase_add_test(tr, region_permission_denied);
  tcase_add_test(tr, region_symlink_refused);
  tcase_add_test(tr, region_file_of_another_user_refused);
  tcase_add_test(tr, region_file_writable_by_others_refused);
  tcase_add_test(tr, region_fsize_limit);
  tcase_add_test(tr, never_created_in_dev);
  tcase_add_test(tr, region_keeps_no_descriptor);
  suite_add_tcase(s, tr);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
