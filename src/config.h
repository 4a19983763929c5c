/* config.h - the environment, parsed without allocating. */
#ifndef MP_CONFIG_H
#define MP_CONFIG_H

#include "mp_types.h"

/* The longest value read (a path: PATH_MAX - 1); a longer one is refused. */
#define MP_VALUE_MAX     4095
#define MP_VALUE_MAX_STR "4095"

/* Where variables come from: secure_getenv in the interposer, a table in tests. */
typedef const char *(*mp_getenv_fn)(const char *name);

/* Fills cfg from the environment, reading each variable once. Returns 0
 * when the pool may be used, -1 otherwise with the first problem found, one
 * line without the "mempool: " prefix, in err. Every value that parses is
 * filled in even then (logging, MEMPOOL_STRICT and the device say what to
 * do about it and where not to write); a refused one keeps its default. A
 * value longer than MP_VALUE_MAX (the reader may have cut it) is refused. */
int mp_config_load(mp_config *cfg, mp_getenv_fn get, char *err, size_t errlen);

/* The window [base, high] (inclusive): high above base, base 4096-aligned,
 * at least a page, at most MP_MAX_REGION, high a valid off_t. 0, or -1 with
 * the reason (naming the two values as base_name, high_name) in err. */
int mp_check_window(uint64_t base, uint64_t high, const char *base_name, const char *high_name, char *err,
                    size_t errlen);

/* Parses a hex (0x...) or decimal unsigned number; 0 on success, -1 if s is
 * empty, has stray characters or overflows 64 bits. */
int mp_parse_u64(const char *s, uint64_t *out);
/* Like mp_parse_u64, with an optional K, M or G suffix (powers of 1024). */
int mp_parse_size(const char *s, uint64_t *out);

#endif
