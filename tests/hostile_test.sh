#!/bin/bash
# hostile_test.sh LIB HOSTILE MAPSCRIPT HOSTILE_API - hostile input, judged from outside:
# the files the library writes (FIFOs, symbolic links, files of other users,
# descriptor numbers the program reuses, the region itself, write failures),
# values that try to forge lines, programs that rewrite their environment,
# cancellation at fork and in logging malloc, and fork under RLIMIT_AS.
# Each case: the program runs to its normal end, and the library says one
# "mempool:" line (or none) of the documented kind.
set -u
lib=$1 prog=$2 mapscript=$3 api_prog=$4
tmp=$(mktemp -d "${MEMPOOL_TEST_TMP:-/tmp}/hostile.XXXXXX")
readers=()
trap 'kill "${readers[@]}" 2>/dev/null; rm -rf "$tmp"' EXIT
# shellcheck source=tests/shell_checks.sh
. "$(dirname "${BASH_SOURCE[0]}")/shell_checks.sh"
py=/usr/bin/python3
cd "$tmp" || exit 1  # what a broken library writes by a clobbered name stays here

# run DESC VAR=VALUE... -- CMD...: a fresh region file, 16 MiB; must exit 0 within 20 s.
run() {
  local desc=$1
  shift
  local -a vars=()
  while [ "$1" != "--" ]; do vars+=("$1"); shift; done
  shift
  rm -f "$tmp/dev"
  expect 0 "$desc" timeout 20 env MEMPOOL_DEVICE="$tmp/dev" MEMPOOL_BASE=0x10000000 MEMPOOL_HIGH=0x10FFFFFF \
    "${vars[@]}" LD_PRELOAD="$lib" "$@"
}
# The mempool: lines that are not statistics (a refused file's report goes to stderr).
problems() { grep '^mempool:' "$1" | grep -cv '^mempool: statistics for pid\|^mempool:   '; }
# one_line DESC REGEX: stderr holds exactly one such line, matching REGEX.
one_line() {
  [ "$(problems "$tmp/err")" = 1 ] || fail "$1: $(problems "$tmp/err") mempool: lines, want 1"
  has "$tmp/err" "$2" "$1"
}
# unchanged DESC FILE CONTENT
unchanged() { [ "$(cat "$2")" = "$3" ] || fail "$1: $2 changed: $(head -c 200 "$2")"; }

# ---- the files the library writes ------------------------------------------
for var in MEMPOOL_LOG_FILE MEMPOOL_STATS MEMPOOL_MAP; do
  extra=()
  # A FIFO nobody reads: no hang.
  rm -f "$tmp/fifo" && mkfifo "$tmp/fifo"
  run "$var FIFO without reader" "${extra[@]}" "$var=$tmp/fifo" -- "$prog" spill 1
  one_line "$var FIFO without reader" "^mempool: .*$tmp/fifo is a FIFO, not a regular file or a terminal: not written"
  # A FIFO someone reads: refused all the same (not a regular file).
  sleep 30 <>"$tmp/fifo" &
  readers+=($!)
  run "$var FIFO with a reader" "${extra[@]}" "$var=$tmp/fifo" -- "$prog" spill 1
  one_line "$var FIFO with a reader" "^mempool: .*$tmp/fifo is a FIFO, not a regular file or a terminal: not written"
  # A symbolic link planted where the file would be: the target is untouched.
  echo precious >"$tmp/target"
  ln -sf "$tmp/target" "$tmp/link"
  run "$var symlink" "${extra[@]}" "$var=$tmp/link" -- "$prog" spill 1
  one_line "$var symlink" "^mempool: .*$tmp/link is a symbolic link: not followed"
  unchanged "$var symlink" "$tmp/target" precious
  # A device that is not a terminal or /dev/null: never written (never even
  # opened: opening a watchdog arms it).
  run "$var device" "${extra[@]}" "$var=/dev/urandom" -- "$prog" spill 1
  one_line "$var device" "^mempool: .*/dev/urandom is a device, not a regular file or a terminal: not written"
  # A UNIX socket.
  rm -f "$tmp/sock"
  $py -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$tmp/sock"
  run "$var socket" "${extra[@]}" "$var=$tmp/sock" -- "$prog" spill 1
  one_line "$var socket" "^mempool: .*$tmp/sock is a socket, not a regular file or a terminal: not written"
  # Created 0600: the files hold heap addresses.
  rm -f "$tmp/new"
  run "$var created" "${extra[@]}" "$var=$tmp/new" -- "$prog" spill 1
  [ "$(stat -c %a "$tmp/new" 2>/dev/null)" = 600 ] || fail "$var: created with mode $(stat -c %a "$tmp/new")"
  # A file another user owns (needs root to make one).
  if [ "$(id -u)" = 0 ]; then
    echo theirs >"$tmp/theirs" && chown nobody "$tmp/theirs"
    run "$var owned by another user" "${extra[@]}" "$var=$tmp/theirs" -- "$prog" spill 1
    one_line "$var owned by another user" "^mempool: .*$tmp/theirs is owned by uid [0-9]*, not by this user (uid 0): not written"
    unchanged "$var owned by another user" "$tmp/theirs" theirs
  fi
  # The region's own file: never truncated or appended to.
  rm -f "$tmp/dev"
  expect 0 "$var = the region" timeout 20 env MEMPOOL_DEVICE="$tmp/dev" MEMPOOL_BASE=0 MEMPOOL_HIGH=0xFFFFFF \
    "$var=$tmp/dev" LD_PRELOAD="$lib" $py -c 'import sys; sys.stdout.write("still here\n")'
  has "$tmp/out" "^still here$" "$var = the region: the program's output"
  one_line "$var = the region" "^mempool: .*$tmp/dev is the region's file"
  grep -aq 'mempool' "$tmp/dev" && fail "$var = the region: library text in the region file"
  # ... also when the configuration is refused (another process may hold
  # that window): the file exists, the pool never opens.
  expect 0 "$var = the region, bad configuration" env MEMPOOL_DEVICE="$tmp/dev" MEMPOOL_BASE=0 MEMPOOL_HIGH=0xFFFFFF \
    MEMPOOL_CHUNK=bad "$var=$tmp/dev" LD_PRELOAD="$lib" "$prog" spill 1
  [ "$var" = MEMPOOL_MAP ] || has "$tmp/err" "^mempool: .*$tmp/dev is the region's file" "$var = the region, bad configuration"
  grep -aq 'mempool' "$tmp/dev" && fail "$var = the region, bad configuration: library text in the region file"
done

# Write failures are said once.
run "stats to /dev/full" MEMPOOL_STATS=/dev/full -- "$prog" spill 1
one_line "stats to /dev/full" "^mempool: cannot write MEMPOOL_STATS file /dev/full: No space left on device"
run "log to /dev/full" MEMPOOL_LOG=3 MEMPOOL_LOG_FILE=/dev/full -- "$prog" spill 20
one_line "log to /dev/full" "^mempool: cannot write MEMPOOL_LOG_FILE /dev/full: No space left on device"

# The program reuses descriptor numbers: its files get none of our lines.
run "fd reuse" MEMPOOL_LOG=3 MEMPOOL_LOG_FILE="$tmp/log" -- bash -c \
  "exec 3>'$tmp/user3'; echo data3 >&3; exec 9>'$tmp/user9'; echo data9 >&9; '$prog' spill 5; $py -c 'x = bytearray(64 << 20)'"
unchanged "fd 3 reused" "$tmp/user3" data3
unchanged "fd 9 reused" "$tmp/user9" data9
has "$tmp/log" "^mempool: malloc(6710886" "fd reuse: the log still gets the lines"
# ... and a program that puts its own file on the library's (high) number.
run "log fd taken over" MEMPOOL_LOG=3 MEMPOOL_LOG_FILE="$tmp/log2" -- bash -c \
  "$py -c 'import os
x = bytearray(64 << 20)
for fd in range(3, 1024):
    if fd != 3:
        try: os.dup2(3, fd)
        except OSError: pass
y = bytearray(64 << 20)' 3>'$tmp/user'"
[ -s "$tmp/user" ] && fail "log fd taken over: the program's file got: $(head -c 300 "$tmp/user")"
[ "$(grep -c '^mempool: malloc(6710886' "$tmp/log2")" = 2 ] || fail "log fd taken over: $(grep -c 'malloc(6710886' "$tmp/log2") lines in the log, want 2"
# A relative log path is the one at start, also after a chdir and a close loop.
mkdir -p "$tmp/sub"
run "relative log file after chdir" MEMPOOL_LOG=3 MEMPOOL_LOG_FILE=rel.log -- $py -c "import os
os.chdir('sub'); os.closerange(3, 1024)
x = bytearray(64 << 20)"
[ -e "$tmp/sub/rel.log" ] && fail "relative log file: re-opened in the new working directory"
has "$tmp/rel.log" "^mempool: malloc(6710886" "relative log file: the line after the close loop"
# ... and a daemon that closed stderr and got its data file on number 2.
run "data file on fd 2" MEMPOOL_LOG=3 -- $py -c "import os
os.close(2)
assert os.open('$tmp/data', os.O_RDWR | os.O_CREAT, 0o600) == 2
os.write(2, b'data')
x = bytearray(64 << 20)"
unchanged "data file on fd 2" "$tmp/data" data
# ... also for the statistics that a refused MEMPOOL_STATS file sends to stderr.
rm -f "$tmp/fifo" && mkfifo "$tmp/fifo"
run "statistics to a data file on fd 2" MEMPOOL_STATS="$tmp/fifo" -- $py -c "import os
os.close(2)
assert os.open('$tmp/data2', os.O_RDWR | os.O_CREAT, 0o600) == 2
os.write(2, b'data')"
unchanged "statistics to a data file on fd 2" "$tmp/data2" data
# ... and a device on number 2 (never written: /dev/mem would be memory).
run "a device on fd 2" MEMPOOL_LOG=3 -- strace -f -e trace=openat,write -o "$tmp/strace" $py -c "import os
os.close(2)
assert os.open('/dev/urandom', os.O_RDWR) == 2
x = bytearray(64 << 20)"
if [ -s "$tmp/strace" ]; then
  # (lines before the device was opened went to the run's stderr file)
  awk '/"\/dev\/urandom"/ { dev = 1 } dev && /write\(2, "mempool/ { bad = 1 } END { exit !bad }' "$tmp/strace" &&
    fail "a device on fd 2: a mempool line was written to it"
else
  echo "strace not available: the device-on-fd-2 case is checked by test_config only"
fi

# A FIFO where sysfs should have the device's alignment: read without blocking.
mkdir -p "$tmp/sys/dev/char/1:5" && mkfifo "$tmp/sys/dev/char/1:5/align"
expect 0 "sysfs FIFO" timeout 20 env MEMPOOL_DEVICE=/dev/zero MEMPOOL_SYSFS_ROOT="$tmp/sys" MEMPOOL_BASE=0 \
  MEMPOOL_HIGH=0xFFFFFF LD_PRELOAD="$lib" "$prog" spill 1

# ---- values in messages and reports ----------------------------------------
forge=$'zz\nmempool: region /dev/mem 0x0..0xfff mapped\e[2J'
run "newline in a value" MEMPOOL_BASE="$forge" -- "$prog" spill 1
one_line "newline in a value" "^mempool: MEMPOOL_BASE='zz\\\\x0amempool: region /dev/mem 0x0..0xfff mapped\\\\x1b\[2J' is not"
grep -q $'\e' "$tmp/err" && fail "an escape character reached stderr"

# A device path with a newline, a space, a backslash and bytes >= 0x80.
odd="$tmp/dev
range 0x0 16777216 used \\ é"
oddesc="$tmp/dev\\\\x0arange 0x0 16777216 used \\\\x5c \\\\xc3\\\\xa9"
rm -f "$odd"
expect 0 "odd device path" timeout 20 env MEMPOOL_DEVICE="$odd" MEMPOOL_BASE=0x10000000 MEMPOOL_HIGH=0x10FFFFFF \
  MEMPOOL_STATS=1 MEMPOOL_MAP="$tmp/map" LD_PRELOAD="$lib" "$prog" spill 1
grep -v '^mempool:' "$tmp/err" && fail "odd device path: a statistics line that is not a mempool: line"
has "$tmp/err" "^mempool:   region            $oddesc offset" "odd device path in the statistics"
[ "$(grep -c '^range 0x0 16777216 used' "$tmp/map")" = 0 ] || fail "odd device path: a forged range line in the map"
expect 0 "odd device path: the map reads back" $py "$mapscript" "$tmp/map" -o "$tmp/map.png"
rm -f "$odd"
expect 0 "odd device path, JSON" timeout 20 env MEMPOOL_DEVICE="$odd" MEMPOOL_BASE=0x10000000 MEMPOOL_HIGH=0x10FFFFFF \
  MEMPOOL_STATS="$tmp/stats.json" MEMPOOL_STATS_FORMAT=json LD_PRELOAD="$lib" "$prog" spill 1
ODD="$odd" expect 0 "JSON is valid and gives the path back" $py -c '
import json, os, sys
objs = [json.loads(l) for l in open(sys.argv[1], "rb").read().decode("ascii").splitlines()]
dev = [o for o in objs if o["region"]][-1]["region"]["device"]
assert dev.encode("latin-1") == os.environb[b"ODD"], (dev, os.environb[b"ODD"])' "$tmp/stats.json"
rm -f "$odd"

# A long path: the reason stays in the line, also when every byte is escaped.
long="$tmp/$(printf 'd%.0s' {1..200})/$(printf 'x%.0s' {1..200})/dev"
run "long path" MEMPOOL_STATS="$long" -- "$prog" spill 1
one_line "long path" "^mempool: cannot open MEMPOOL_STATS file $tmp/d*\.\.\.x*/dev: No such file or directory; statistics go to stderr$"
run "long non-ASCII path" MEMPOOL_DEVICE="$tmp/$(printf '\xc3\xa9%.0s' {1..100})/dev" -- "$prog" spill 1
one_line "long non-ASCII path" "\.\.\..*/dev: No such file or directory; running on jemalloc only$"
# A value longer than a path can be is refused, not read cut.
run "value of 4100 digits" MEMPOOL_BASE="0x$(printf '0%.0s' {1..4100})1000000" -- "$prog" spill 1
one_line "value of 4100 digits" "^mempool: MEMPOOL_BASE is longer than 4095 bytes; running on jemalloc only$"

# A program that rewrites its environment block (process title).
run "environment rewritten" MEMPOOL_STATS="$tmp/title.txt" -- "$prog" title
has "$tmp/title.txt" "^mempool:   region            $tmp/dev offset 0x10000000" "environment rewritten: statistics"

# MEMPOOL_STRICT=1 with a bad MEMPOOL_LOG: the line, then abort (README).
expect 134 "strict with a bad MEMPOOL_LOG" env MEMPOOL_STRICT=1 MEMPOOL_LOG=9 LD_PRELOAD="$lib" "$prog" spill 1
one_line "strict with a bad MEMPOOL_LOG" "^mempool: MEMPOOL_LOG='9' must be 0, 1, 2 or 3 (MEMPOOL_STRICT=1: stopping)"

# ---- threads, cancellation, limits -----------------------------------------
run "pending cancel at fork" -- "$prog" cancel-fork
[ -s "$tmp/err" ] && fail "pending cancel at fork: $(cat "$tmp/err")"
run "logging malloc is no cancellation point" MEMPOOL_LOG=3 -- "$prog" cancel-log
has "$tmp/err" "^mempool: malloc(268435456" "cancel-log: the line was written"
run "malloc_stats is no cancellation point" -- "$prog" cancel-stats
has "$tmp/err" "^mempool:   pool allocations" "cancel-stats: the report was written"

# The API library (no preload) says its traps on a stderr that is a regular
# file opened as shells do (write-only, not appended).
expect 134 "API trap with stderr a regular file" sh -c "exec '$api_prog' api-trap 2>'$tmp/api.err'"
has "$tmp/api.err" "^mempool: mempool_free(0x[0-9a-f]*): double free" "API trap with stderr a regular file"

# Fork under RLIMIT_AS just above what the shell uses: no room for a second
# copy of a chunk, the child copies in place (bash writes its heap before exec).
cat >"$tmp/limit.sh" <<'EOF'
x=""
for i in $(seq 1 3000); do x="$x word$i"; done
while read -r k v u; do [ "$k" = VmSize: ] && vm=$v; done </proc/$$/status
ulimit -v $((vm + 256))
a=$(echo sub); echo "command substitution: $a"
( y=1; echo "subshell: $y ${#x}" )
/bin/echo "external command"
EOF
run "fork under ulimit -v" MEMPOOL_HIGH=0x1FFFFFFF -- bash "$tmp/limit.sh"
has "$tmp/out" "^command substitution: sub$" "ulimit -v: command substitution"
has "$tmp/out" "^subshell: 1 25893$" "ulimit -v: subshell"
has "$tmp/out" "^external command$" "ulimit -v: external command"
[ -s "$tmp/err" ] && fail "ulimit -v: $(cat "$tmp/err")"
# The same with an exclusive 256 MiB window: the in-place copy reads back the
# blocks in use, not the window (the subshell stays small).
cat >"$tmp/limit2.sh" <<'EOF'
x=""
for i in $(seq 1 3000); do x="$x word$i"; done
while read -r k v u; do [ "$k" = VmSize: ] && vm=$v; done </proc/$$/status
ulimit -v $((vm + 256))
( while read -r k v u; do [ "$k" != VmHWM: ] || echo "subshell peak: $v"; done </proc/$BASHPID/status )
EOF
# (MEMPOOL_LOG=0: seq, exec'd by the shell that holds the window, says so.)
run "fork under ulimit -v, exclusive window" MEMPOOL_LOG=0 MEMPOOL_SHARE=0 MEMPOOL_HIGH=0x1FFFFFFF -- bash "$tmp/limit2.sh"
read -r _ _ peak <"$tmp/out"
[ "${peak:-999999}" -le 65536 ] || fail "ulimit -v, exclusive window: the subshell's peak is ${peak:-?} kB (want <= 64 MiB)"

# Address space and locked memory follow use: a 1 GiB region adds about its
# own size to VmSize (the free-range node arena grows with the ranges), and
# mlockall(MCL_CURRENT | MCL_FUTURE) makes resident only what is committed.
cat >"$tmp/vm.py" <<'EOF'
import ctypes
def status(key):
    return int([l for l in open("/proc/self/status") if l.startswith(key)][0].split()[1]) << 10
locked = ctypes.CDLL(None).mlockall(3) == 0
print(status("VmSize"), status("VmRSS") if locked else -1)
EOF
base=$($py "$tmp/vm.py")
run "1 GiB region: address space, mlockall" MEMPOOL_BASE=0 MEMPOOL_HIGH=0x3FFFFFFF -- $py "$tmp/vm.py"
read -r size rss <"$tmp/out"
read -r size0 rss0 <<<"$base"
added=$((size - size0))
[ "$added" -le $((1229 << 20)) ] || fail "a 1 GiB region adds $added bytes of address space (want <= 1.2 GiB)"
if [ "$rss" -ge 0 ] && [ "$rss0" -ge 0 ]; then
  [ $((rss - rss0)) -le $((64 << 20)) ] || fail "mlockall with a 1 GiB region: $((rss - rss0)) bytes more resident (want <= 64 MiB)"
else
  echo "mlockall not permitted here: the locked-memory check is skipped"
fi

[ "$failed" = 0 ] && echo "hostile input: ok"
exit "$failed"
