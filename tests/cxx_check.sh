#!/bin/bash
# cxx_check.sh LIB CXX_PROG - the C++ program (tests/cxx_prog.cc: operator
# new/delete with the over-aligned variants, exceptions, shared_ptr, threads
# freeing each other's objects) under the preload on a file region prints
# what it prints without it, exits 0, and the region served its requests
# (the statistics report's pool allocations). Runs on the cross targets too
# (suite emulated), through MEMPOOL_TEST_WRAPPER as preload_run.sh does.
set -u
lib=$1 exe=$2
here=$(dirname "$0")
tmp=$(mktemp -d "${MEMPOOL_TEST_TMP:-/tmp}/cxx_check.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
read -r -a wrapper <<<"${MEMPOOL_TEST_WRAPPER:-}"
fail() { echo "cxx_check: $*" >&2; exit 1; }
"${wrapper[@]}" "$exe" >"$tmp/plain.out" || fail "the program alone failed"
MEMPOOL_STATS="$tmp/stats" "$here/preload_run.sh" "$lib" "$exe" cxx_check >"$tmp/pool.out" || fail "under the preload it failed"
cmp -s "$tmp/plain.out" "$tmp/pool.out" || fail "its output differs under the preload"
allocs=$(awk '/^mempool:   pool allocations / { print $4; exit }' "$tmp/stats" 2>/dev/null)
[[ ${allocs:-0} =~ ^[0-9,]+$ && ${allocs//,/} -gt 0 ]] || fail "the region served none of its requests (stats: ${allocs:-none})"
echo "cxx_check: same output, ${allocs} pool allocations"
