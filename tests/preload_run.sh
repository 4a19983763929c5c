#!/bin/bash
# preload_run.sh LIB EXE NAME - runs one preload test program under
# LD_PRELOAD=LIB with a fresh regular file standing in for /dev/mem, with the
# region geometry the test needs, and checks that the library printed no
# "mempool:" line (no configuration problem, no trap).
set -u
lib=$1 exe=$2 name=$3
shift 3  # the rest goes to the program
# A directory of this run's own: test runs in other build trees may run at once.
tmp=$(mktemp -d "${MEMPOOL_TEST_TMP:-/tmp}/$name.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
dev="$tmp/$name.dev"
base=0x10000000
extra=()
case "$name" in
  preload_placement_high) base=0x100000000 high=0x103FFFFFF ;;  # 64 MiB at 4 GiB: a 64-bit offset on 32-bit targets
  preload_spill)   high=0x1000FFFF ;;   # 64 KiB: spills to jemalloc at once
  preload_threads) high=0x103FFFFF ;;   # 4 MiB: spills under load
  preload_policy_strict) high=0x103FFFFF extra=(MEMPOOL_STRICT=1) ;;
  preload_policy_route)  high=0x103FFFFF extra=(MEMPOOL_MIN_SIZE=1K MEMPOOL_MAX_SIZE=64K) ;;
  preload_policy_guard)  high=0x103FFFFF extra=(MEMPOOL_CHECK=1) ;;
  preload_policy_guard_cached) high=0x13FFFFFF extra=(MEMPOOL_CHECK=1) ;; # 64 MiB: thread caches on
  preload_policy_guard_medium) high=0x1FFFFFFF extra=(MEMPOOL_CHECK=1) ;; # 256 MiB: the medium classes too
  preload_policy_route_cached) high=0x13FFFFFF extra=(MEMPOOL_MIN_SIZE=1K MEMPOOL_MAX_SIZE=64K) ;;
  preload_policy_oom)    high=0x103FFFFF ;;
  preload_reclaim_medium) high=0x1FFFFFFF ;; # 256 MiB: the medium classes
  preload_lazy_*)  high=0x13FFFFFF extra=(MEMPOOL_MAX_SIZE=1K) ;; # above 1 KiB: jemalloc
  extras_anon)     dev=anon high=0x13FFFFFF ;; # 64 MiB of anonymous memory
  dma_anon)        dev=anon high=0x13FFFFFF ;;
  *_medium) high=0x1FFFFFFF extra=(MEMPOOL_CHUNK=256K) ;; # 256 MiB: the medium classes, spans across chunks
  *)               high=0x13FFFFFF ;;   # 64 MiB
esac
err="$tmp/$name.stderr"
# A cross build runs the program under qemu user emulation
# (MEMPOOL_TEST_WRAPPER, tests/meson.build), which takes the target's
# LD_PRELOAD through QEMU_SET_ENV: the host's loader must not see it.
preload=(LD_PRELOAD="$lib")
if [ -n "${MEMPOOL_TEST_WRAPPER:-}" ]; then
  read -r -a wrapper <<<"$MEMPOOL_TEST_WRAPPER"
  preload=(QEMU_SET_ENV="LD_PRELOAD=$lib" "${wrapper[@]}")
fi
env MEMPOOL_DEVICE="$dev" MEMPOOL_BASE=$base MEMPOOL_HIGH=$high "${extra[@]}" "${preload[@]}" "$exe" "$@" 2>"$err"
rc=$?
cat "$err" >&2
if grep -q '^mempool:' "$err"; then
  echo "$name: unexpected mempool: line(s) on stderr" >&2
  rc=1
fi
exit $rc
