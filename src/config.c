/* config.c - MEMPOOL_* variables -> mp_config.
 *
 * Every bad value is reported by the caller as ONE "mempool:" line; the
 * program then runs on jemalloc alone. Nothing here allocates.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "msg.h"

#define PAGE_SIZE_MIN 4096u

int mp_parse_u64(const char *s, uint64_t *out) {
  unsigned base = 10;
  uint64_t v = 0;
  if (!s || !*s) return -1;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s += 2;
    if (!*s) return -1;
  }
  for (; *s; s++) {
    unsigned d;
    if (*s >= '0' && *s <= '9')
      d = (unsigned)(*s - '0');
    else if (base == 16 && *s >= 'a' && *s <= 'f')
      d = (unsigned)(*s - 'a' + 10);
    else if (base == 16 && *s >= 'A' && *s <= 'F')
      d = (unsigned)(*s - 'A' + 10);
    else
      return -1;
    if (v > (UINT64_MAX - d) / base) return -1;
    v = v * base + d;
  }
  *out = v;
  return 0;
}

int mp_parse_size(const char *s, uint64_t *out) {
  char num[32];
  size_t n = s ? strlen(s) : 0;
  unsigned shift = 0;
  if (n == 0 || n >= sizeof num) return -1;
  switch (s[n - 1]) {
    case 'K':
    case 'k': shift = 10; break;
    case 'M':
    case 'm': shift = 20; break;
    case 'G':
    case 'g': shift = 30; break;
    default: break;
  }
  memcpy(num, s, n + 1);
  if (shift) num[n - 1] = '\0';
  uint64_t v;
  if (mp_parse_u64(num, &v) != 0 || (shift && v > (UINT64_MAX >> shift))) return -1;
  *out = v << shift;
  return 0;
}

int mp_check_window(uint64_t base, uint64_t high, const char *base_name, const char *high_name, char *err,
                    size_t errlen) {
  if (high <= base) {
    mp_format(err, errlen, "%s (%#lx) must be above %s (%#lx)", high_name, (unsigned long)high, base_name,
              (unsigned long)base);
    return -1;
  }
  if (base % PAGE_SIZE_MIN) {
    mp_format(err, errlen, "%s (%#lx) is not page-aligned (4096)", base_name, (unsigned long)base);
    return -1;
  }
  uint64_t span = high - base; /* size - 1: no overflow */
  if (span < PAGE_SIZE_MIN - 1) {
    mp_format(err, errlen, "region %#lx..%#lx is smaller than one page (4096 bytes)", (unsigned long)base,
              (unsigned long)high);
    return -1;
  }
  if (span >= MP_MAX_REGION) {
    mp_format(err, errlen,
              "region %#lx..%#lx is larger than the %lu bytes supported (64 GiB - 256: %s at most %s + %#lx)",
              (unsigned long)base, (unsigned long)high, (unsigned long)MP_MAX_REGION, high_name, base_name,
              (unsigned long)(MP_MAX_REGION - 1));
    return -1;
  }
  if (high > (uint64_t)INT64_MAX) { /* mmap offsets are off_t */
    mp_format(err, errlen, "%s (%#lx) is beyond the largest device offset (%#lx)", high_name, (unsigned long)high,
              (unsigned long)INT64_MAX);
    return -1;
  }
  return 0;
}

static int fail(char *err, size_t errlen, const char *fmt, const char *name, const char *val) {
  mp_format(err, errlen, fmt, name, val);
  return -1;
}

static bool too_long(const char *v) { return v && strnlen(v, MP_VALUE_MAX + 1) > MP_VALUE_MAX; }

static int parse_bool(const char *v, bool dflt, bool *out) {
  if (!v || !*v) {
    *out = dflt;
    return 0;
  }
  if (!strcmp(v, "1")) {
    *out = true;
    return 0;
  }
  if (!strcmp(v, "0")) {
    *out = false;
    return 0;
  }
  return -1;
}

int mp_config_load(mp_config *cfg, mp_getenv_fn get, char *err, size_t errlen) {
  const char *v;
  const char *suffix = ""; /* the caller says what it does about it */
  char why[200];

  memset(cfg, 0, sizeof *cfg);
  cfg->device = MP_DEFAULT_DEVICE;
  cfg->base = MP_DEFAULT_BASE;
  cfg->high = MP_DEFAULT_HIGH;
  cfg->sync = true;
  cfg->share = true;
  err[0] = '\0';

  cfg->log_level = 1;
  cfg->policy.max_size = UINT64_MAX;

  /* First what to do about problems: wanted even when the pool settings are
   * bad, MEMPOOL_STRICT before anything that can be refused. */
  v = get("MEMPOOL_STRICT");
  if (parse_bool(v, false, &cfg->policy.strict) != 0)
    return fail(err, errlen, "MEMPOOL_STRICT='%.60s' must be 0 or 1%s", v, suffix);
  v = get("MEMPOOL_LOG");
  if (v && *v) {
    if (v[1] || v[0] < '0' || v[0] > '3')
      return fail(err, errlen, "MEMPOOL_LOG='%.60s' must be 0, 1, 2 or 3%s", v, suffix);
    cfg->log_level = v[0] - '0';
  }
  v = get("MEMPOOL_LOG_FILE");
  if (too_long(v)) return fail(err, errlen, "%s is longer than %s bytes", "MEMPOOL_LOG_FILE", MP_VALUE_MAX_STR);
  if (v && *v) cfg->log_path = v;
  v = get("MEMPOOL_STATS");
  if (too_long(v)) return fail(err, errlen, "%s is longer than %s bytes", "MEMPOOL_STATS", MP_VALUE_MAX_STR);
  if (v && *v && strcmp(v, "0")) {
    if (!strcmp(v, "1"))
      cfg->stats = MP_STATS_STDERR;
    else {
      cfg->stats = MP_STATS_PATH;
      cfg->stats_path = v;
    }
  }
  v = get("MEMPOOL_STATS_FORMAT");
  if (v && *v) {
    if (!strcmp(v, "json"))
      cfg->stats_format = MP_STATS_JSON;
    else if (strcmp(v, "text"))
      return fail(err, errlen, "MEMPOOL_STATS_FORMAT='%.60s' must be text or json%s", v, suffix);
  }
  v = get("MEMPOOL_MAP");
  if (too_long(v)) return fail(err, errlen, "%s is longer than %s bytes", "MEMPOOL_MAP", MP_VALUE_MAX_STR);
  if (v && *v) cfg->map_path = v;

  v = get("MEMPOOL_DEVICE");
  if (v) {
    if (!*v) return fail(err, errlen, "%s is empty%s", "MEMPOOL_DEVICE", suffix);
    if (too_long(v)) return fail(err, errlen, "%s is longer than %s bytes", "MEMPOOL_DEVICE", MP_VALUE_MAX_STR);
    cfg->device = v;
  }
  static const char *const names[2] = {"MEMPOOL_BASE", "MEMPOOL_HIGH"};
  uint64_t *dst[2] = {&cfg->base, &cfg->high};
  for (int i = 0; i < 2; i++) {
    v = get(names[i]);
    if (v && mp_parse_u64(v, dst[i]) != 0) {
      mp_format(why, sizeof why, "%s='%.60s' is not a hex (0x...) or decimal number%s", names[i], v, suffix);
      return fail(err, errlen, "%s", why, "");
    }
  }
  static const char *const size_names[2] = {"MEMPOOL_MIN_SIZE", "MEMPOOL_MAX_SIZE"};
  uint64_t *size_dst[2] = {&cfg->policy.min_size, &cfg->policy.max_size};
  for (int i = 0; i < 2; i++) {
    v = get(size_names[i]);
    if (v && mp_parse_size(v, size_dst[i]) != 0) {
      mp_format(why, sizeof why, "%s='%.60s' is not a size (a number with an optional K, M or G)%s", size_names[i], v,
                suffix);
      return fail(err, errlen, "%s", why, "");
    }
  }
  if (cfg->policy.max_size == 0) cfg->policy.max_size = UINT64_MAX; /* 0: no limit, as unset */
  if (cfg->policy.min_size > cfg->policy.max_size) {
    mp_format(err, errlen, "MEMPOOL_MIN_SIZE (%lu) is above MEMPOOL_MAX_SIZE (%lu)%s",
              (unsigned long)cfg->policy.min_size, (unsigned long)cfg->policy.max_size, suffix);
    return -1;
  }
  v = get("MEMPOOL_CHECK");
  if (parse_bool(v, false, &cfg->policy.check) != 0)
    return fail(err, errlen, "MEMPOOL_CHECK='%.60s' must be 0 or 1%s", v, suffix);
  v = get("MEMPOOL_SYNC");
  if (parse_bool(v, true, &cfg->sync) != 0)
    return fail(err, errlen, "MEMPOOL_SYNC='%.60s' must be 0 or 1%s", v, suffix);
  v = get("MEMPOOL_SHARE");
  if (parse_bool(v, true, &cfg->share) != 0)
    return fail(err, errlen, "MEMPOOL_SHARE='%.60s' must be 0 or 1%s", v, suffix);
  v = get("MEMPOOL_SYSFS_ROOT");
  if (too_long(v)) return fail(err, errlen, "%s is longer than %s bytes", "MEMPOOL_SYSFS_ROOT", MP_VALUE_MAX_STR);
  if (v && *v) cfg->sysfs_root = v;
  v = get("MEMPOOL_CHUNK");
  if (v && *v) {
    uint64_t c;
    if (mp_parse_size(v, &c) != 0 || c < MP_CHUNK_MIN || c > MP_CHUNK_MAX || (c & (c - 1)))
      return fail(err, errlen, "MEMPOOL_CHUNK='%.60s' must be a power of two from 64K to 1G%s", v, suffix);
    cfg->chunk = c;
  }

  return mp_check_window(cfg->base, cfg->high, "MEMPOOL_BASE", "MEMPOOL_HIGH", err, errlen);
}
