#!/bin/bash
# cross_cache.sh SRCDIR - cacheline_test.c built with src/cacheline.c for the
# other architectures and run under qemu user emulation: aarch64 (the dc
# instructions must run) and 32-bit ARM (no user cache maintenance: the
# calls must say so). An architecture whose cross compiler or qemu is
# missing is skipped; 77 when none could run.
set -u
src=$1
tmp=$(mktemp -d "${MEMPOOL_TEST_TMP:-/tmp}/cross_cache.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
ran=0 rc=0
for spec in "aarch64-linux-gnu-gcc qemu-aarch64 aarch64" "arm-linux-gnueabihf-gcc qemu-arm arm expect-unsupported"; do
  set -- $spec
  cc=$1 qemu=$2 arch=$3 expect=${4:-}
  if ! command -v "$cc" >/dev/null || ! command -v "$qemu" >/dev/null; then
    echo "cross_cache: $arch skipped (no $cc or $qemu)"
    continue
  fi
  if ! "$cc" -std=gnu11 -O2 -Wall -Wextra -Werror -static -I"$src/src" -o "$tmp/t-$arch" \
      "$src/tests/cacheline_test.c" "$src/src/cacheline.c" 2>"$tmp/cc.err"; then
    cat "$tmp/cc.err"
    echo "cross_cache: $arch: build failed"
    rc=1
    continue
  fi
  printf '%s: ' "$arch"
  "$qemu" "$tmp/t-$arch" $expect || rc=1
  ran=$((ran + 1))
done
[ $ran -eq 0 ] && [ $rc -eq 0 ] && exit 77
exit $rc
