#!/bin/bash
# dma_test.sh LIB EXE PRELOAD_RUN - mempool_default and the DMA calls under
# the preload (preload_dma.c): a file region and anon through
# preload_run.sh, no preload at all, and a u-dma-buf stand-in: a stand-in
# sysfs (MEMPOOL_SYSFS_ROOT) for a device node of /dev/zero's number (a
# character device of our own, mapped whole from offset 0: MEMPOOL_SHARE=0;
# mknod needs root, skipped otherwise), no MEMPOOL_BASE/HIGH.
set -u
lib=$1 exe=$2 run=$3
rc=0
"$run" "$lib" "$exe" dma_file file || rc=1
"$run" "$lib" "$exe" dma_anon anon || rc=1
"$exe" none || rc=1
tmp=$(mktemp -d "${MEMPOOL_TEST_TMP:-/tmp}/dma.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
if mknod "$tmp/udmabuf0" c 1 5 2>/dev/null; then
  d="$tmp/sys/dev/char/1:5"
  mkdir -p "$d"
  echo 0x0000000078000000 >"$d/phys_addr"
  echo 16777216 >"$d/size"
  echo 0 >"$d/dma_coherent"
  for f in sync_offset sync_size sync_direction sync_for_cpu sync_for_device; do : >"$d/$f"; done
  env MEMPOOL_DEVICE="$tmp/udmabuf0" MEMPOOL_SYSFS_ROOT="$tmp/sys" MEMPOOL_SHARE=0 UDMABUF_PHYS=0x78000000 \
    UDMABUF_SIZE=16777216 LD_PRELOAD="$lib" "$exe" udmabuf 2>"$tmp/err" || rc=1
  cat "$tmp/err" >&2
  if grep -q '^mempool:' "$tmp/err"; then echo "dma udmabuf: unexpected mempool: line(s)" >&2; rc=1; fi
  [ "$(cat "$d/sync_for_cpu")" = 1 ] || { echo "dma udmabuf: sync_for_cpu was not written" >&2; rc=1; }
else
  echo "dma_test: mknod not permitted: the u-dma-buf case is skipped" >&2
fi
exit $rc
