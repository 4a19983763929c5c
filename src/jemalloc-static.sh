#!/bin/sh
# jemalloc-static.sh AR NM OBJCOPY LIBJEMALLOC_PIC.A OUT.a
#
# The fallback allocator, linked into the library instead of loaded with it
# (issue 11, process start): Debian's libjemalloc_pic.a with
#   - every name it defines prefixed mpje_ (malloc, free, mallocx, ..., and
#     its je_* internals), so that it replaces nothing of the program's and
#     nothing of ours;
#   - its constructor (jemalloc.pic.o's .init_array: malloc_init at load)
#     removed: jemalloc initializes itself at its first call (fallback.c
#     makes that call under a lock of its own, see there);
#   - its pthread_atfork call renamed to mpje_hook_atfork (fallback.c): its
#     fork handlers run from the interposer's, in the order of forkorder.h;
#   - its C++ operators (jemalloc_cpp.pic.o, which needs libstdc++) left out;
#   - what only its heap profiling calls (MALLOC_CONF prof: log, exp, round
#     from libm, _Unwind_Backtrace and _Unwind_GetIP from libgcc_s) made weak
#     references: those libraries are not loaded for it (fallback.c refuses
#     prof when the process has not loaded them).
# libjemalloc.so.2 and what it needs (libstdc++, libm, libgcc_s) are then not
# loaded at all, and jemalloc's start-up is paid only by a process that uses it.
set -eu
ar=$1 nm=$2 objcopy=$3 archive=$4
case $5 in /*) out=$5 ;; *) out=$PWD/$5 ;; esac
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mpje.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
"$ar" x "$archive"
rm -f jemalloc_cpp.pic.o
# Every global name the archive defines, and the hook.
"$nm" -g --defined-only ./*.o | awk 'NF == 3 && $2 != "U" { print $3 " mpje_" $3 }' | sort -u >syms
echo "pthread_atfork mpje_hook_atfork" >>syms
for s in log exp round _Unwind_Backtrace _Unwind_GetIP; do echo "$s"; done >weak
for o in ./*.o; do "$objcopy" --redefine-syms=syms --weaken-symbols=weak "$o"; done
"$objcopy" --remove-section=.init_array --remove-section=.rela.init_array jemalloc.pic.o
grep -q . syms
rm -f "$out"
"$ar" rcs "$out" ./*.o
