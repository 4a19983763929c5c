#!/bin/bash
# fullfs_test.sh LIB - a region file on a full file system and a file-size
# limit below the region's end: the program runs, no signal (SIGBUS,
# SIGXFSZ). A full file system means "no chunk": requests spill to jemalloc
# silently; RLIMIT_FSIZE is one line. The small tmpfs needs root (mount);
# without it that case is skipped with an "ok" line saying so.
set -u
lib=$1
tmp=$(mktemp -d "${MEMPOOL_TEST_TMP:-/tmp}/fullfs.XXXXXX") || exit 1
mnt=$tmp/mnt
cleanup() { umount "$mnt" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
failed=0
ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; failed=1; }
# 16 MiB through malloc in 64 KiB blocks, each written: every byte touched.
prog=(/usr/bin/python3 -c 'b = [bytearray(b"x" * 65536) for _ in range(256)]; print(sum(len(x) for x in b))')

mkdir -p "$mnt"
if mount -t tmpfs -o size=256k none "$mnt" 2>/dev/null; then
  out=$(MEMPOOL_DEVICE="$mnt/dev" MEMPOOL_BASE=0x10000000 MEMPOOL_HIGH=0x10FFFFFF MEMPOOL_CHUNK=64K \
        LD_PRELOAD="$lib" "${prog[@]}" 2>"$tmp/err")
  rc=$?
  if [ $rc = 0 ] && [ "$out" = 16777216 ] && ! grep -q '^mempool:' "$tmp/err"; then
    ok "full tmpfs: the program runs, spilling, without a line ($(du -k "$mnt/dev" | cut -f1) KiB of the window got blocks)"
  else
    notok "full tmpfs: exit $rc, output '$out', stderr: $(head -c 300 "$tmp/err")"
  fi
else
  ok "full tmpfs: skipped (cannot mount a tmpfs here)"
fi

out=$(ulimit -f 1024; MEMPOOL_DEVICE="$tmp/fsize.dev" MEMPOOL_BASE=0x10000000 MEMPOOL_HIGH=0x10FFFFFF \
      LD_PRELOAD="$lib" "${prog[@]}" 2>"$tmp/err")
rc=$?
lines=$(grep -c '^mempool:' "$tmp/err")
if [ $rc = 0 ] && [ "$out" = 16777216 ] && [ "$lines" = 1 ] && grep -q '^mempool: RLIMIT_FSIZE .* is below the region.s end' "$tmp/err"; then
  ok "ulimit -f below the region's end: one line, the program runs on jemalloc"
else
  notok "ulimit -f: exit $rc, output '$out', $lines line(s): $(head -c 300 "$tmp/err")"
fi
exit $failed
