#!/bin/bash
# shellcheck disable=SC2317  # functions called through check and trap
# status_test.sh LAUNCHER LIB - `mempool-run --status DEVICE` (issue 10): two
# processes under LD_PRELOAD=LIB hold chunks of one 64 MiB window of a file
# standing in for the device (about 3 MB and 1 MB allocated); --status must
# name both, with per-process totals that add up to the locks in /proc/locks,
# and must report nothing held once they are gone. Bad input: exit 2 and one
# line on stderr. Prints "ok - NAME" / "not ok - NAME"; exits 1 on a failure.
set -u
run=$1 lib=$2
unset MEMPOOL_BASE MEMPOOL_HIGH MEMPOOL_CHUNK
# awk without gawk's strtonum: 0x... -> number
hex='function hex(s,  v, i) { s = tolower(substr(s, 3)); v = 0
  for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
  return v }'
tmp=$(mktemp -d "${MEMPOOL_TEST_TMP:-/tmp}/status.XXXXXX") || exit 1
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

failures=0
ok() { echo "ok - $1"; }
not_ok() {
  echo "not ok - $1"
  failures=$((failures + 1))
  [ -s "$tmp/out" ] && sed 's/^/  | /' "$tmp/out"
  [ -s "$tmp/err" ] && sed 's/^/  | stderr: /' "$tmp/err"
  return 0
}
check() {  # check NAME CONDITION-COMMAND...
  local name=$1
  shift
  if "$@"; then ok "$name"; else not_ok "$name"; fi
}
status() { "$run" --status "$@" >"$tmp/out" 2>"$tmp/err"; }

base=0x10000000 high=0x13FFFFFF chunk=$((512 << 10)) nchunks=128  # 64 MiB / 128
dev="$tmp/status.dev"
# The interpreter itself, not a wrapper (pyenv shims fork preloaded helpers).
py=$(python3 -c 'import sys; print(sys.executable)') || { echo "not ok - python3 missing"; exit 1; }

# ---- help and bad input --------------------------------------------------------
"$run" --help >"$tmp/out" 2>&1
check "--help documents --status" grep -q -- '--status DEVICE' "$tmp/out"
one_line_exit2() {  # DESC ARGS...: exit 2, exactly one line on stderr, none on stdout
  local desc=$1 rc
  shift
  status "$@"
  rc=$?
  check "$desc: exit 2 with one line on stderr" \
    test "$rc" = 2 -a "$(wc -l <"$tmp/err")" = 1 -a ! -s "$tmp/out"
}
one_line_exit2 "missing device" "$tmp/nope"
has_err() { grep -q -- "$1" "$tmp/err"; }
check "missing device: message names it" has_err "$tmp/nope"
one_line_exit2 "directory as device" "$tmp"
check "directory as device: message says why" has_err "not a regular file or a character device"
: >"$dev.bad"
MEMPOOL_CHUNK=3M one_line_exit2 "bad MEMPOOL_CHUNK" "$dev.bad"
one_line_exit2 "unaligned base" "$dev.bad" --base 0x10000001 --high $high
MEMPOOL_BASE=junk one_line_exit2 "bad MEMPOOL_BASE" "$dev.bad"

# ---- a file nobody holds -----------------------------------------------------
status "$dev.bad" --base $base --high $high
rc=$?
check "no locks: exit 0, nothing held, all free" \
  eval "[ $rc = 0 ] && grep -q '^no chunk of the window is held' '$tmp/out' && grep -qx 'free: $nchunks of $nchunks chunks' '$tmp/out'"

# ---- two holders ---------------------------------------------------------------
# A worker allocates N blocks of 100 KB (malloc, not pymalloc's arenas), says
# so through a file and sleeps.
worker() {  # NAME BLOCKS
  env -u MEMPOOL_CHUNK -u MEMPOOL_SHARE MEMPOOL_DEVICE="$dev" MEMPOOL_BASE=$base MEMPOOL_HIGH=$high \
    LD_PRELOAD="$lib" "$py" -c '
import sys, time
x = [bytes(100000) for i in range(int(sys.argv[2]))]
open(sys.argv[1], "w").close()
time.sleep(120)' "$tmp/$1.ready" "$2" 2>"$tmp/$1.stderr" &
  pids+=($!)
}
worker big 30    # 3 MB
big=$!
worker small 10  # 1 MB
small=$!

# The device as /proc/locks names it (MAJ:MIN:INODE): the entry whose inode
# is the device's (MAJ:MIN as /proc/locks prints it, not as the script does).
# The library keeps no descriptor: its locks live on in its chunk mappings.
devino=
find_devino() {
  local ino
  ino=$(stat -c %i "$dev")
  devino=$(awk -v i=":$ino" '$2 != "->" && substr($6, length($6) - length(i) + 1) == i { print $6; exit }' /proc/locks)
}
locks_now() {  # "START END" of each lock on the device in /proc/locks, sorted
  [ -n "$devino" ] || find_devino
  [ -n "$devino" ] || return 0
  awk -v d="$devino" '$2 != "->" && $6 == d { print $7, $8 }' /proc/locks | sort -n
}
for _ in $(seq 300); do  # up to 30 s
  [ -e "$tmp/big.ready" ] && [ -e "$tmp/small.ready" ] && [ -n "$(locks_now)" ] && break
  sleep 0.1
done
find_devino  # here, not in locks_now's subshells: keep it
echo "# the device in /proc/locks: $devino"
check "both workers started and hold locks" \
  test -e "$tmp/big.ready" -a -e "$tmp/small.ready" -a -n "$(locks_now)"
if grep -q '^mempool:' "$tmp/big.stderr" "$tmp/small.stderr"; then
  not_ok "workers printed mempool: lines: $(cat "$tmp/big.stderr" "$tmp/small.stderr")"
fi

# The workers sleep: the locks are stable; take a listing between two equal reads.
for _ in 1 2 3 4 5; do
  before=$(locks_now)
  status "$dev" --base $base --high $high
  rc=$?
  after=$(locks_now)
  [ "$before" = "$after" ] && break
done
locked=$(echo "$after" | awk '{ s += $2 - $1 + 1 } END { print s + 0 }')
echo "# --status output:"; sed 's/^/#   /' "$tmp/out"
echo "# /proc/locks: $(echo "$after" | tr '\n' ' ')"
check "--status exit 0" test "$rc" = 0
check "header names the device as /proc/locks does ($devino)" grep -q "^$dev ($devino): " "$tmp/out"
check "header names the window and the chunks" \
  grep -q "window 0x10000000-0x13ffffff, $nchunks chunks of $chunk bytes" "$tmp/out"
cp "$tmp/out" "$tmp/listing"

# The figures, from the listing: per pid chunks and bytes (totals lines) and
# chunks and bytes summed over the run lines.
figures() {  # PID -> "chunks bytes run_chunks run_bytes comm"
  awk -v pid="$1" "$hex"'
    $1 ~ /^[0-9]+-[0-9]+$/ && $3 == pid {
      split($1, k, "-"); split($2, a, "-")
      rc += k[2] - k[1] + 1; rb += hex(a[2]) - hex(a[1]) + 1 }
    $1 == "pid" && $2 == pid { comm = $3; sub(":$", "", comm); n = $4; b = $6 }
    END { printf "%d %d %d %d %s\n", n, b, rc, rb, comm }' "$tmp/listing"
}
read -r big_n big_b big_rn big_rb big_comm < <(figures "$big")
read -r small_n small_b small_rn small_rb small_comm < <(figures "$small")
echo "# big pid $big: $big_n chunks, $big_b bytes; small pid $small: $small_n chunks, $small_b bytes; locked $locked"
want_comm=$(cat "/proc/$big/comm")
check "big worker listed with its command name" test "$big_comm" = "$want_comm" -a "$big_n" -gt 0
check "small worker listed with its command name" test "$small_comm" = "$want_comm" -a "$small_n" -gt 0
check "plausible chunk counts (whole chunks, at least what was allocated, not the whole window)" \
  test "$big_b" = $((big_n * chunk)) -a "$small_b" = $((small_n * chunk)) \
  -a "$big_b" -ge 3000000 -a "$small_b" -ge 1000000 -a $((big_n + small_n)) -lt $nchunks
check "the 3 MB worker holds more than the 1 MB one" test "$big_b" -gt "$small_b"
check "run lines add up to each worker's totals" \
  test "$big_rn" = "$big_n" -a "$big_rb" = "$big_b" -a "$small_rn" = "$small_n" -a "$small_rb" = "$small_b"
total_b=$(awk '$1 == "pid" || $1 == "unknown" { s += $(NF - 1) } END { print s + 0 }' "$tmp/listing")
check "per-process totals sum to the bytes locked in /proc/locks ($locked)" \
  test "$total_b" = "$locked" -a "$((big_b + small_b))" = "$locked"
check "free chunks: the rest of the window" \
  grep -qx "free: $((nchunks - big_n - small_n)) of $nchunks chunks" "$tmp/listing"
check "no holder unknown" eval "! grep -q unknown '$tmp/listing'"
# Each run line: chunk numbers and addresses agree.
# shellcheck disable=SC2016  # awk program
check "run lines: chunk numbers match the addresses" awk -v B=$((base)) -v C=$chunk "$hex"'
  $1 ~ /^[0-9]+-[0-9]+$/ { n++; split($1, k, "-"); split($2, a, "-")
    if (hex(a[1]) != B + k[1] * C || hex(a[2]) != B + (k[2] + 1) * C - 1) bad = 1 }
  END { exit bad || n < 2 }' "$tmp/listing"

# BASE and HIGH from the environment give the same listing; MEMPOOL_CHUNK
# changes the chunks, not the bytes.
MEMPOOL_BASE=$base MEMPOOL_HIGH=$high status "$dev"
check "window from MEMPOOL_BASE/MEMPOOL_HIGH" cmp -s "$tmp/out" "$tmp/listing"
MEMPOOL_CHUNK=64K status "$dev" --base $base --high $high
n64=$(awk -v pid="$big" '$1 == "pid" && $2 == pid { print $4 }' "$tmp/out")
check "MEMPOOL_CHUNK=64K: 8 times the chunks, the same bytes" \
  eval "[ '$n64' = $((big_n * 8)) ] && grep -q 'pid $big .*: $n64 chunks, $big_b bytes' '$tmp/out' && grep -q ' 1024 chunks of 65536 bytes' '$tmp/out'"
# A window that covers only part of the locks: the rest is counted outside.
status "$dev" --base 0x12000000 --high $high
check "a window beside the held chunks: nothing held there, the others counted outside" \
  eval "grep -q '^no chunk of the window is held' '$tmp/out' && grep -q 'other lock.* outside this window' '$tmp/out'"

# Seen by another user (root only): the holders' fdinfo cannot be read.
chmod 755 "$tmp"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && as_nobody test -e "$dev"; then
  as_nobody "$run" --status "$dev" --base $base --high $high \
    >"$tmp/out" 2>"$tmp/err"
  check "as another user: holders unknown (not visible), same bytes" \
    eval "grep -q 'unknown (not visible)' '$tmp/out' && grep -qx 'unknown (not visible): $((big_n + small_n)) chunks, $locked bytes' '$tmp/out'"
else
  echo "ok - as another user # skip (not root, no setpriv, or the device out of reach)"
fi
chmod 700 "$tmp"

# ---- gone ----------------------------------------------------------------------
kill "$big" "$small"
wait "$big" "$small" 2>/dev/null
pids=()
for _ in $(seq 50); do [ -z "$(locks_now)" ] && break; sleep 0.1; done
status "$dev" --base $base --high $high
rc=$?
check "after the workers exit: exit 0, no held chunks, all free" \
  eval "[ $rc = 0 ] && grep -q '^no chunk of the window is held' '$tmp/out' && ! grep -q '^pid ' '$tmp/out' && grep -qx 'free: $nchunks of $nchunks chunks' '$tmp/out'"

[ "$failures" = 0 ] || { echo "# $failures failure(s)"; exit 1; }
exit 0
