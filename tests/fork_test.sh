#!/bin/bash
# fork_test.sh LIB FORKSTRESS - fork against the library's locks (issue 15):
# forkstress's stdio and signal modes (glibc bugs 19431 and 24161), each
# without the preload (the test itself is right on glibc alone), then under
# it on an anonymous region and on a file region. A hang is a failure
# (timeout), so is a failed fork child.
set -u
lib=$1 prog=$2
tmp=$(mktemp -d "${MEMPOOL_TEST_TMP:-/tmp}/fork.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/shell_checks.sh
. "$(dirname "${BASH_SOURCE[0]}")/shell_checks.sh"
for mode in stdio signal; do
  expect 0 "$mode without the preload" timeout 60 "$prog" "$mode" 3
  for dev in anon "$tmp/dev"; do
    rm -f "$tmp/dev"
    expect 0 "$mode on ${dev##*/}" timeout 60 env MEMPOOL_DEVICE="$dev" MEMPOOL_BASE=0 MEMPOOL_HIGH=0x3FFFFFF \
      LD_PRELOAD="$lib" "$prog" "$mode" 3
    grep -q '^mempool:' "$tmp/err" && fail "$mode on ${dev##*/}: $(head -3 "$tmp/err")"
  done
done
[ "$failed" = 0 ] && echo "fork against locks: ok"
exit "$failed"
