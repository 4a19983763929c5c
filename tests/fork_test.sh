#!/bin/bash
# fork_test.sh LIB FORKSTRESS HOSTILE FORKSTRESS_API - fork against the library's locks
# (issue 15): forkstress's stdio, signal and resume modes (glibc bugs 19431
# and 24161; resume: the child returns from the handler into the interrupted
# call) and hostile's pending-cancel cases (fork, malloc_stats), each
# without the preload (the test itself is right on glibc alone), then under
# it on an anonymous region and on a file region. A hang is a failure
# (timeout), so is a failed fork child.
set -u
lib=$1 prog=$2 hostile=$3 api=$4
tmp=$(mktemp -d "${MEMPOOL_TEST_TMP:-/tmp}/fork.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/shell_checks.sh
. "$(dirname "${BASH_SOURCE[0]}")/shell_checks.sh"
for run in "$prog stdio 3" "$prog signal 3" "$prog resume 3" "$prog nested 2" "$hostile cancel-fork" "$hostile cancel-stats"; do
  read -r exe mode secs <<<"$run"
  expect 0 "$mode without the preload" timeout 60 "$exe" "$mode" $secs
  # anon, a file window shared chunk by chunk, the same file exclusive
  for region in anon:1 "$tmp/dev:1" "$tmp/dev:0"; do
    dev=${region%:*} share=${region##*:}
    case $mode in stdio | signal | resume | nested) ;; *) [ "$share" = 1 ] || continue ;; esac
    rm -f "$tmp/dev"
    expect 0 "$mode on ${dev##*/}, share $share" timeout 60 env MEMPOOL_DEVICE="$dev" MEMPOOL_SHARE="$share" \
      MEMPOOL_BASE=0 MEMPOOL_HIGH=0x3FFFFFF LD_PRELOAD="$lib" "$exe" "$mode" $secs
    [ "$mode" = cancel-stats ] || ! grep -q '^mempool:' "$tmp/err" || fail "$mode on ${dev##*/}: $(head -3 "$tmp/err")"
  done
done
# An API pool (its own file) made and destroyed again and again while a
# signal handler forks, without the preload and under it (anon region).
rm -f "$tmp/apidev"
expect 0 "api pools" timeout 60 env FORKSTRESS_DEVICE="$tmp/apidev" "$api" api 3
rm -f "$tmp/apidev"
expect 0 "api pools under the preload" timeout 60 env FORKSTRESS_DEVICE="$tmp/apidev" MEMPOOL_DEVICE=anon \
  MEMPOOL_BASE=0 MEMPOOL_HIGH=0x3FFFFFF LD_PRELOAD="$lib" "$api" api 3
! grep -q '^mempool:' "$tmp/err" || fail "api pools: $(head -3 "$tmp/err")"
[ "$failed" = 0 ] && echo "fork against locks: ok"
exit "$failed"
