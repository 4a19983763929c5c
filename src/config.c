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
    mp_format(err, errlen, "%s (%#llx) must be above %s (%#llx)", high_name, (unsigned long long)high, base_name,
              (unsigned long long)base);
    return -1;
  }
  if (base % PAGE_SIZE_MIN) {
    mp_format(err, errlen, "%s (%#llx) is not page-aligned (4096)", base_name, (unsigned long long)base);
    return -1;
  }
  uint64_t span = high - base; /* size - 1: no overflow */
  if (span < PAGE_SIZE_MIN - 1) {
    mp_format(err, errlen, "region %#llx..%#llx is smaller than one page (4096 bytes)", (unsigned long long)base,
              (unsigned long long)high);
    return -1;
  }
  if (span >= MP_MAX_REGION) {
    mp_format(err, errlen,
              "region %#llx..%#llx is larger than the %llu bytes supported (" MP_MAX_REGION_WHY
              ": %s at most %s + %#llx)",
              (unsigned long long)base, (unsigned long long)high, (unsigned long long)MP_MAX_REGION, high_name,
              base_name, (unsigned long long)(MP_MAX_REGION - 1));
    return -1;
  }
  if (high > (uint64_t)INT64_MAX) { /* mmap offsets are off_t */
    mp_format(err, errlen, "%s (%#llx) is beyond the largest device offset (%#llx)", high_name,
              (unsigned long long)high, (unsigned long long)INT64_MAX);
    return -1;
  }
  return 0;
}

/* The first problem found is the one said: later ones keep their defaults. */
static void note(char *err, size_t errlen, const char *fmt, const char *name, const char *val) {
  if (!err[0]) mp_format(err, errlen, fmt, name, val);
}

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

/* Every variable, read once, before anything is parsed: a refused value
 * cannot hide how problems are to be reported (MEMPOOL_LOG, its file,
 * MEMPOOL_STRICT) or which file is the region (the library never writes
 * its reports into it). */
enum {
  V_LOG,
  V_LOG_FILE,
  V_STRICT,
  V_STATS,
  V_STATS_FORMAT,
  V_MAP,
  V_DEVICE,
  V_BASE,
  V_HIGH,
  V_MIN_SIZE,
  V_MAX_SIZE,
  V_CHECK,
  V_SYNC,
  V_SHARE,
  V_SYSFS_ROOT,
  V_CHUNK,
  V_COUNT
};
static const char *const var_name[V_COUNT] = {
    "MEMPOOL_LOG",          "MEMPOOL_LOG_FILE", "MEMPOOL_STRICT",     "MEMPOOL_STATS",
    "MEMPOOL_STATS_FORMAT", "MEMPOOL_MAP",      "MEMPOOL_DEVICE",     "MEMPOOL_BASE",
    "MEMPOOL_HIGH",         "MEMPOOL_MIN_SIZE", "MEMPOOL_MAX_SIZE",   "MEMPOOL_CHECK",
    "MEMPOOL_SYNC",         "MEMPOOL_SHARE",    "MEMPOOL_SYSFS_ROOT", "MEMPOOL_CHUNK"};

static void parse_bool_var(const char *const *v, int i, bool dflt, bool *out, char *err, size_t errlen) {
  if (parse_bool(v[i], dflt, out) != 0) note(err, errlen, "%s='%.60s' must be 0 or 1", var_name[i], v[i]);
}

static void parse_outputs(mp_config *cfg, const char *const *v, char *err, size_t errlen) {
  if (v[V_LOG] && *v[V_LOG]) {
    if (v[V_LOG][1] || v[V_LOG][0] < '0' || v[V_LOG][0] > '3')
      note(err, errlen, "%s='%.60s' must be 0, 1, 2 or 3", var_name[V_LOG], v[V_LOG]);
    else
      cfg->log_level = v[V_LOG][0] - '0';
  }
  if (v[V_LOG_FILE] && *v[V_LOG_FILE]) cfg->log_path = v[V_LOG_FILE];
  parse_bool_var(v, V_STRICT, false, &cfg->policy.strict, err, errlen);
  const char *st = v[V_STATS];
  if (st && *st && strcmp(st, "0")) {
    cfg->stats = strcmp(st, "1") ? MP_STATS_PATH : MP_STATS_STDERR;
    if (cfg->stats == MP_STATS_PATH) cfg->stats_path = st;
  }
  const char *fmt = v[V_STATS_FORMAT];
  if (fmt && !strcmp(fmt, "json"))
    cfg->stats_format = MP_STATS_JSON;
  else if (fmt && *fmt && strcmp(fmt, "text"))
    note(err, errlen, "%s='%.60s' must be text or json", var_name[V_STATS_FORMAT], fmt);
  if (v[V_MAP] && *v[V_MAP]) cfg->map_path = v[V_MAP];
  if (v[V_DEVICE] && !*v[V_DEVICE])
    note(err, errlen, "%s is empty", var_name[V_DEVICE], "");
  else if (v[V_DEVICE])
    cfg->device = v[V_DEVICE];
}

static void parse_numbers(mp_config *cfg, const char *const *v, char *err, size_t errlen) {
  uint64_t *dst[2] = {&cfg->base, &cfg->high};
  cfg->window_default = !v[V_BASE] && !v[V_HIGH];
  for (int i = V_BASE; i <= V_HIGH; i++)
    if (v[i] && mp_parse_u64(v[i], dst[i - V_BASE]) != 0)
      note(err, errlen, "%s='%.60s' is not a hex (0x...) or decimal number", var_name[i], v[i]);
  uint64_t *size_dst[2] = {&cfg->policy.min_size, &cfg->policy.max_size};
  for (int i = V_MIN_SIZE; i <= V_MAX_SIZE; i++)
    if (v[i] && mp_parse_size(v[i], size_dst[i - V_MIN_SIZE]) != 0)
      note(err, errlen, "%s='%.60s' is not a size (a number with an optional K, M or G)", var_name[i], v[i]);
  if (cfg->policy.max_size == 0) cfg->policy.max_size = UINT64_MAX; /* 0: no limit, as unset */
  if (cfg->policy.min_size > cfg->policy.max_size && !err[0])
    mp_format(err, errlen, "MEMPOOL_MIN_SIZE (%llu) is above MEMPOOL_MAX_SIZE (%llu)",
              (unsigned long long)cfg->policy.min_size, (unsigned long long)cfg->policy.max_size);
  parse_bool_var(v, V_CHECK, false, &cfg->policy.check, err, errlen);
  parse_bool_var(v, V_SYNC, true, &cfg->sync, err, errlen);
  parse_bool_var(v, V_SHARE, true, &cfg->share, err, errlen);
  if (v[V_SYSFS_ROOT] && *v[V_SYSFS_ROOT]) cfg->sysfs_root = v[V_SYSFS_ROOT];
  const char *ch = v[V_CHUNK];
  uint64_t c = 0;
  if (ch && *ch && (mp_parse_size(ch, &c) != 0 || c < MP_CHUNK_MIN || c > MP_CHUNK_MAX || (c & (c - 1))))
    note(err, errlen, "%s='%.60s' must be a power of two from 64K to 1G", var_name[V_CHUNK], ch);
  else
    cfg->chunk = c;
}

int mp_config_load(mp_config *cfg, mp_getenv_fn get, char *err, size_t errlen) {
  const char *v[V_COUNT];
  memset(cfg, 0, sizeof *cfg);
  cfg->device = MP_DEFAULT_DEVICE;
  cfg->base = MP_DEFAULT_BASE;
  cfg->high = MP_DEFAULT_HIGH;
  cfg->sync = true;
  cfg->share = true;
  cfg->log_level = 1;
  cfg->policy.max_size = UINT64_MAX;
  err[0] = '\0';
  for (int i = 0; i < V_COUNT; i++) {
    v[i] = get(var_name[i]);
    if (v[i] && strnlen(v[i], MP_VALUE_MAX + 1) > MP_VALUE_MAX) { /* cut by the reader, or too long for a path */
      note(err, errlen, "%s is longer than %s bytes", var_name[i], MP_VALUE_MAX_STR);
      v[i] = NULL;
    }
  }
  parse_outputs(cfg, v, err, errlen);
  parse_numbers(cfg, v, err, errlen);
  if (err[0]) return -1;
  return mp_check_window(cfg->base, cfg->high, "MEMPOOL_BASE", "MEMPOOL_HIGH", err, errlen);
}
