#!/bin/bash
# process_tree.sh LIB WORKER - process trees sharing one window (issue 10).
# Processes started through wrappers (timeout, sh -c, bash -c, a wrapper
# script, make -j2), siblings, a prefork server, a daemon, a window given back
# by SIGKILL, an 8-process stress on a small window, exec'd children in strict
# mode and bash descriptor idioms. WORKER is proc_worker: it judges placement
# from /proc/self/maps and records its blocks' device offsets, from which this
# script checks that processes alive at the same time never got the same
# bytes. Never judged from the library's own statistics.
# Prints one TAP-like line per case ("ok - NAME" / "not ok - NAME: why") and
# exits 1 when any failed. PROC_STRESS_SECONDS (default 20) sets the stress.
# The single-quoted commands below are meant for the inner shells.
# shellcheck disable=SC2016
set -u
lib=$(realpath -e -- "$1") || { echo "not ok - library $1 not found"; exit 1; }
worker=$(realpath -e -- "$2") || { echo "not ok - worker $2 not found"; exit 1; }
tmp=$(mktemp -d "${MEMPOOL_TEST_TMP:-/tmp}/process_tree.XXXXXX") || exit 1
bg=()  # background processes of ours, killed if the script stops early
cleanup() {
  local p
  for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
export LC_ALL=C
export MEMPOOL_DEVICE="$tmp/window.dev" MEMPOOL_BASE=0x10000000 MEMPOOL_HIGH=0x13FFFFFF  # 64 MiB
export PROC_OUT_DIR="$tmp/out"
mkdir "$PROC_OUT_DIR"
failures=0

ok() { echo "ok - $1"; }
not_ok() {
  echo "not ok - $1: $2"
  failures=$((failures + 1))
}
# In the foreground only: in the background, $! would be the subshell running
# the function, not the program.
pre() { LD_PRELOAD="$lib" "$@"; }
show() { [ -s "$1" ] && head -n 20 "$1" | sed 's/^/  | /' >&2; }

# problems ERRFILE TAG...: why the run is bad (empty when fine): a mempool:
# line or a FAIL on stderr, a worker's result missing or not ok.
problems() {
  local err=$1 t why=
  shift
  grep -q '^mempool:' "$err" && why+="mempool: line on stderr; "
  grep -q '^FAIL' "$err" && why+="FAIL on stderr; "
  for t in "$@"; do
    [ -f "$PROC_OUT_DIR/$t.result" ] || { why+="no result from $t; "; continue; }
    read -r res _ <"$PROC_OUT_DIR/$t.result"
    [ "$res" = ok ] || why+="$t: $res; "
  done
  echo "${why%; }"
}

# judge NAME RC ERRFILE TAG...: one TAP line for a run that must exit 0.
judge() {
  local name=$1 rc=$2 err=$3 why
  shift 3
  why=$(problems "$err" "$@")
  [ "$rc" = 0 ] || why="exit $rc${why:+; $why}"
  if [ -z "$why" ]; then ok "$name"; else not_ok "$name" "$why"; show "$err"; fi
}

# locks_of FILE: the locks on FILE (from /proc/locks), for a failure report.
locks_of() {
  local ino
  ino=$(stat -c %i "$1")
  echo "  locks on $1 (inode $ino):" >&2
  grep ":$ino " /proc/locks | sed 's/^/  | /' >&2
}

# wait_for FILE SECONDS: 0 once FILE exists.
wait_for() {
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    [ -e "$1" ] && return 0
    sleep 0.05
  done
  return 1
}

# ---- wrappers: each must exit 0 without a mempool: line --------------------

case_wrappers() {
  local e="$tmp/wr.err"
  pre timeout 60 "$worker" wr.timeout 200 >/dev/null 2>"$e"
  judge "timeout" $? "$e" wr.timeout
  pre sh -c '"$0" wr.sh 200; exit $?' "$worker" >/dev/null 2>"$e"
  judge "sh -c" $? "$e" wr.sh
  pre bash -c '"$0" wr.bash 200; true' "$worker" >/dev/null 2>"$e"
  judge "bash -c" $? "$e" wr.bash
  # A wrapper script: one command substitution (a fork of bash), then the
  # command, exec'd or run as a child.
  local how
  for how in exec call; do
    { echo '#!/bin/bash'
      echo 'x=$(echo hi)'
      echo '[ "$x" = hi ] || exit 3'
      if [ $how = exec ]; then echo 'exec "$@"'; else echo '"$@"'; fi
    } >"$tmp/wrap_$how"
    chmod +x "$tmp/wrap_$how"
    pre "$tmp/wrap_$how" "$worker" "wr.script_$how" 200 >/dev/null 2>"$e"
    judge "wrapper script ($how)" $? "$e" "wr.script_$how"
  done
  if ! command -v make >/dev/null; then
    ok "make (skipped: no make)"
    return
  fi
  # Two recipes at once: two workers in one window, make's jobserver fds open.
  mkdir "$tmp/mk"
  printf 'all: a b\na:\n\t$(WORKER) wr.make_a 500\nb:\n\t$(WORKER) wr.make_b 500\n.PHONY: all a b\n' \
    >"$tmp/mk/Makefile"
  pre make -s -C "$tmp/mk" -j2 WORKER="$worker" >/dev/null 2>"$e"
  judge "make -j2" $? "$e" wr.make_a wr.make_b
}

# ---- 4 siblings at once --------------------------------------------------

case_siblings() {
  local i pids=() rc=0 why=
  for i in 1 2 3 4; do
    LD_PRELOAD="$lib" "$worker" "sib.$i" 1500 >/dev/null 2>"$tmp/sib.$i.err" &
    pids+=($!)
    bg+=($!)
  done
  for i in 1 2 3 4; do
    wait "${pids[i - 1]}" || { rc=$?; why+="sib.$i exit $rc; "; }
    local p
    p=$(problems "$tmp/sib.$i.err" "sib.$i")
    [ -n "$p" ] && { why+="$p; "; show "$tmp/sib.$i.err"; }
  done
  bg=()
  if [ -z "$why" ]; then ok "4 siblings"; else not_ok "4 siblings" "${why%; }"; fi
}

# ---- prefork server: 3 workers forked by a parent with blocks of its own ----

case_prefork() {
  pre "$worker" fork 1500 --fork 3 >/dev/null 2>"$tmp/fork.err"
  judge "prefork (--fork 3)" $? "$tmp/fork.err" fork fork.w0 fork.w1 fork.w2
}

# ---- daemon: the cycle runs after the parent exited ------------------------

case_daemon() {
  local e="$tmp/daemon.err" rc pid i
  pre "$worker" daemon 500 --daemon >/dev/null 2>"$e"
  rc=$?
  if [ $rc != 0 ]; then not_ok "daemon" "the launching parent exited $rc"; show "$e"; return; fi
  if ! wait_for "$PROC_OUT_DIR/daemon.result" 30; then
    not_ok "daemon" "no result after 30 s"; show "$e"; return
  fi
  # The daemon writes its result just before freeing its inherited blocks
  # and exiting: wait for the exit before reading its stderr.
  read -r _ pid _ <"$PROC_OUT_DIR/daemon.result"
  for ((i = 0; i < 200; i++)); do
    [ -d "/proc/$pid" ] || break
    sleep 0.05
  done
  [ -d "/proc/$pid" ] && { not_ok "daemon" "pid $pid still alive 10 s after its result"; return; }
  judge "daemon" 0 "$e" daemon
}

# ---- no two processes alive at the same time got the same bytes ------------

case_overlap() {
  local out
  if ! command -v python3 >/dev/null; then ok "no shared bytes (skipped: no python3)"; return; fi
  local rc
  out=$(python3 - "$PROC_OUT_DIR" <<'PY'
import glob, os, sys
d = sys.argv[1]
procs = {}   # tag -> (from, to): every recorded block of tag was live in [from, to]
blocks = []  # (start, end, tag)
for r in glob.glob(os.path.join(d, "*.result")):
    tag = os.path.basename(r)[:-len(".result")]
    res, pid, t0, t1 = open(r).read().split()
    if int(t1) == 0 or not os.path.exists(os.path.join(d, tag + ".blocks")):
        continue  # stress workers record nothing
    procs[tag] = (int(t0), int(t1))
    for line in open(os.path.join(d, tag + ".blocks")):
        phys, n, _ = line.split()
        if int(phys, 16):
            blocks.append((int(phys, 16), int(phys, 16) + int(n), tag))
def together(a, b):
    return a == b or (procs[a][0] <= procs[b][1] and procs[b][0] <= procs[a][1])
tags = sorted(procs)
pairs = sum(together(a, b) for i, a in enumerate(tags) for b in tags[i + 1:])
blocks.sort()
active, bad = [], []
for s, e, t in blocks:  # sweep by start: compare with the ranges still open
    active = [x for x in active if x[1] > s]
    bad += ["%s [%#x,%#x) and %s [%#x,%#x)" % (t, s, e, u, s2, e2)
            for s2, e2, u in active if together(t, u)]
    active.append((s, e, t))
print("%d processes, %d blocks, %d concurrent pairs" % (len(procs), len(blocks), pairs))
for b in bad[:10]:
    print("overlap: " + b)
# The siblings and the prefork tree must each have been alive together, or
# the check would prove little.
weak = [g for g in ("sib.", "fork") if not all(together(a, b) for a in tags if a.startswith(g)
                                               for b in tags if b.startswith(g))]
if weak:
    print("not all alive at once: " + ", ".join(weak))
sys.exit(1 if bad or weak or pairs == 0 else 0)
PY
  )
  rc=$?
  if [ $rc = 0 ]; then ok "no shared bytes ($out)"; else not_ok "no shared bytes" "$(echo "$out" | tr '\n' ';')"; fi
}

# ---- SIGKILL gives the window back -----------------------------------------

case_sigkill() {
  local hp i
  # Not through the function pre: $! must be the worker itself.
  LD_PRELOAD="$lib" "$worker" kill.holder 60000 --big 48M >/dev/null 2>"$tmp/holder.err" &
  hp=$!
  bg+=("$hp")
  if ! wait_for "$PROC_OUT_DIR/kill.holder.blocks" 20; then
    not_ok "SIGKILL recovery" "the holder recorded nothing in 20 s"; show "$tmp/holder.err"; return
  fi
  read -r phys _ <"$PROC_OUT_DIR/kill.holder.blocks"
  if [ "$phys" = 0 ]; then
    not_ok "SIGKILL recovery" "the holder's 48 MiB block is not in the window"; show "$tmp/holder.err"; return
  fi
  # The 16 MiB left still serve an ordinary process.
  pre "$worker" kill.during 0 >/dev/null 2>"$tmp/during.err"
  judge "window shared with a 48 MiB holder" $? "$tmp/during.err" kill.during
  kill -9 "$hp"
  wait "$hp" 2>/dev/null
  bg=()
  pre "$worker" kill.after 0 --big 48M >/dev/null 2>"$tmp/after.err"
  judge "SIGKILL recovery (48 MiB again after kill -9)" $? "$tmp/after.err" kill.after
  [ -z "$(problems "$tmp/after.err" kill.after)" ] || locks_of "$MEMPOOL_DEVICE"
}

# ---- stress: 8 processes on an 8 MiB window of 64 KiB chunks -----------------

case_stress() {
  local secs=${PROC_STRESS_SECONDS:-20} i pids=() why='' rc
  for i in 1 2 3 4 5 6 7 8; do
    MEMPOOL_DEVICE="$tmp/stress.dev" MEMPOOL_HIGH=0x107FFFFF MEMPOOL_CHUNK=64K \
      LD_PRELOAD="$lib" "$worker" "stress.$i" 0 --stress "$secs" >/dev/null 2>"$tmp/stress.$i.err" &
    pids+=($!)
    bg+=($!)
  done
  local inside=0
  for i in 1 2 3 4 5 6 7 8; do
    wait "${pids[i - 1]}"
    rc=$?
    [ $rc = 0 ] || why+="stress.$i exit $rc; "
    local p
    p=$(problems "$tmp/stress.$i.err" "stress.$i")
    [ -n "$p" ] && why+="$p; "
    if [ $rc != 0 ] || [ -n "$p" ]; then show "$tmp/stress.$i.err"; fi
    # "stress TAG: N operations, IN of SAMPLED sampled blocks in the window"
    local n
    n=$(sed -n 's/^stress .*operations, \([0-9]*\) of .*/\1/p' "$tmp/stress.$i.err")
    inside=$((inside + ${n:-0}))
  done
  [ "$inside" -gt 0 ] || why+="no sampled block was in the window; "
  bg=()
  if [ -z "$why" ]; then
    ok "stress (8 processes, ${secs} s, $inside sampled blocks in the window)"
  else
    not_ok "stress" "${why%; }"
  fi
}

# ---- exec'd children in strict mode --------------------------------------------

case_strict() {
  local out rc want="strict.sub: all checks passed"
  out=$(MEMPOOL_STRICT=1 pre bash -c 'x=$("$0" strict.sub 100); echo "$x"' "$worker" 2>"$tmp/strict.err")
  rc=$?
  local why
  why=$(problems "$tmp/strict.err" strict.sub)
  [ "$rc" = 0 ] || why="exit $rc${why:+; $why}"
  [ "$out" = "$want" ] || why+="${why:+; }output [$out], want [$want]"
  if [ -z "$why" ]; then ok "strict: command substitution of an exec'd child"; else
    not_ok "strict: command substitution of an exec'd child" "$why"; show "$tmp/strict.err"; fi
}

# ---- bash descriptor-3 idioms: same output with and without the preload --------

case_fd3() {
  echo "first line" >"$tmp/somefile"
  local -a names=("fd 3 saves stdout" "fd 3 read in a subshell")
  local -a idioms=('exec 3>&1; err=$( { ls /nonexistent 2>&1 1>&3; } ); echo "[$err]"'
                   'exec 3<"$0"; ( read l <&3; echo "$l" )')
  local i plain with
  for i in 0 1; do
    plain=$(bash -c "${idioms[i]}" "$tmp/somefile" 2>&1; echo "rc=$?")
    with=$(pre bash -c "${idioms[i]}" "$tmp/somefile" 2>&1; echo "rc=$?")
    if [ "$plain" = "$with" ]; then ok "${names[i]}"; else
      not_ok "${names[i]}" "with the preload [$(echo "$with" | tr '\n' ' ')], without [$(echo "$plain" | tr '\n' ' ')]"
    fi
  done
}

start=$SECONDS
# PROC_CASES: a subset, for debugging (the overlap check needs the ones before it).
for c in ${PROC_CASES:-wrappers siblings prefork daemon overlap sigkill stress strict fd3}; do
  "case_$c"
done
echo "# $((SECONDS - start)) s" >&2
[ $failures = 0 ]
