#!/bin/bash
# env_test.sh LIB PROG MAPSCRIPT - logging, statistics and map variables, seen
# from outside: MEMPOOL_LOG levels and file, MEMPOOL_STATS to stderr (even
# when the program closes stderr) and to a file as JSON, MEMPOOL_MAP.
# PROG is policy_preload: "noop" allocates nothing itself; "route" allocates.
set -u
lib=$1 prog=$2 mapscript=$3
tmp=$(mktemp -d "${MEMPOOL_TEST_TMP:-/tmp}/env.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/shell_checks.sh
. "$(dirname "${BASH_SOURCE[0]}")/shell_checks.sh"

run() {  # run DESC WANT_RC VAR=VALUE... -- CMD...
  local desc=$1 want=$2
  shift 2
  local -a vars=()
  while [ "$1" != "--" ]; do vars+=("$1"); shift; done
  shift
  rm -f "$tmp/dev"
  expect "$want" "$desc" env MEMPOOL_DEVICE="$tmp/dev" MEMPOOL_BASE=0x10000000 MEMPOOL_HIGH=0x10FFFFFF \
    "${vars[@]}" LD_PRELOAD="$lib" "$@"
}
lines() { grep -c '^mempool:' "$1"; }

run "log 2" 0 MEMPOOL_LOG=2 -- "$prog" noop
has "$tmp/err" "^mempool: region $tmp/dev 0x10000000..0x10ffffff mapped at 0x" "log 2 says where the region is"
[ "$(lines "$tmp/err")" = 1 ] || fail "log 2: $(lines "$tmp/err") lines"

run "log 1 (default)" 0 -- "$prog" noop
[ -s "$tmp/err" ] && fail "log 1: unexpected output: $(cat "$tmp/err")"

run "log 0 silences a bad value" 0 MEMPOOL_LOG=0 MEMPOOL_BASE=zz -- "$prog" noop
[ -s "$tmp/err" ] && fail "log 0: unexpected output: $(cat "$tmp/err")"

run "log 3" 0 MEMPOOL_LOG=3 MEMPOOL_HIGH=0x1000FFFF -- /usr/bin/python3 -c 'x = bytearray(1 << 20)'
has "$tmp/err" "^mempool: .*(1048[0-9]*, align 16): the region cannot serve it; jemalloc" "log 3 names a spilled request"

run "log file" 0 MEMPOOL_LOG=2 MEMPOOL_LOG_FILE="$tmp/log" -- "$prog" noop
[ -s "$tmp/err" ] && fail "log file: stderr not empty: $(cat "$tmp/err")"
has "$tmp/log" "^mempool: region .* mapped at" "log file"

# Statistics to stderr although ls (coreutils) closes stderr before exit.
run "stats to stderr" 0 MEMPOOL_STATS=1 -- /bin/ls /
has "$tmp/err" "^mempool: statistics for pid [0-9]*$" "stats header"
has "$tmp/err" "^mempool:   pool allocations  [1-9]" "stats count allocations"

run "stats json" 0 MEMPOOL_STATS="$tmp/stats.json" MEMPOOL_STATS_FORMAT=json MEMPOOL_MIN_SIZE=1K MEMPOOL_MAX_SIZE=64K -- "$prog" route
if ! python3 - "$tmp/stats.json" <<'PY'
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
top = [o for o in objs if o["pool"]]
assert top, objs
o = top[-1]
p = o["pool"]
assert o["region"]["bytes"] == 16 << 20 and o["region"]["offset"] == 0x10000000, o
assert p["allocations"] > 0 and p["frees"] > 0 and p["free_bytes"] > 0, p
assert p["bytes_in_use"] <= p["region_in_use"] <= p["region_peak"] <= o["region"]["bytes"], p
assert 0 <= p["fragmentation"] < 1 and p["largest_free"] <= p["free_bytes"], p
assert o["jemalloc"]["allocations"] > 0, o   # route mode sends small and big requests to jemalloc
PY
then fail "stats json: bad content: $(cat "$tmp/stats.json")"; fi

run "map" 0 MEMPOOL_MAP="$tmp/map" MEMPOOL_MIN_SIZE=1K MEMPOOL_MAX_SIZE=64K -- "$prog" route
has "$tmp/map" "^region 0x10000000 16777216 $tmp/dev$" "map header"
has "$tmp/map" "^range 0x0 " "map starts at 0"
expect 0 "map tiles the region" /usr/bin/python3 "$mapscript" "$tmp/map" -o "$tmp/map.png"
has "$tmp/out" "free" "map summary"

[ "$failed" = 0 ] && echo "environment variables: ok"
exit "$failed"
