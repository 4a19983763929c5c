#!/bin/bash
# launcher_test.sh LAUNCHER BUILDDIR - the mempool-run launcher from the build
# tree (options, errors, environment passed, statistics printed), then
# `meson install --destdir` (library, headers, pkg-config file, launcher) and
# a program built against the installed files through pkg-config.
set -u
run=$1 build=$2
tmp=$(mktemp -d "${MEMPOOL_TEST_TMP:-/tmp}/launcher.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
lib="$build/preload/libmempool.so"

# shellcheck source=tests/shell_checks.sh
. "$(dirname "${BASH_SOURCE[0]}")/shell_checks.sh"

# ---- options and errors ------------------------------------------------------
expect 0 "--help" "$run" --help
has "$tmp/out" "^usage: mempool-run \[OPTIONS\] \[--\] COMMAND" "--help"
expect 2 "unknown option" "$run" --bogus /bin/true
has "$tmp/err" "unknown option '--bogus'" "unknown option"
expect 2 "no command" "$run" --stats
has "$tmp/err" "no command given" "no command"
expect 2 "missing value" "$run" --device
has "$tmp/err" "needs a value" "missing value"
expect 2 "bad number" "$run" --base 0x12G -- /bin/true
has "$tmp/err" "not a hex" "bad number"
expect 2 "missing library" "$run" --lib "$tmp/nope.so" /bin/true
has "$tmp/err" "not found" "missing library"

# ---- statistics from the preloaded library -------------------------------------
dev="$tmp/launcher.dev"
# (ls allocates: /bin/true under the preload allocates nothing and claims no chunk)
expect 0 "--stats run" "$run" --device "$dev" --base 0x10000000 --high 0x10FFFFFF --stats -- /bin/ls -d /
has "$tmp/err" "^mempool: statistics for pid" "--stats run"
has "$tmp/err" "^mempool:   region .*launcher.dev offset 0x10000000, 16777216 bytes" "--stats run"
if grep '^mempool:' "$tmp/err" | grep -qv '^mempool: \( \|statistics\)'; then
  fail "--stats run: unexpected mempool: line"; cat "$tmp/err" >&2
fi
size=$(stat -c %s "$dev")  # grows with the chunks claimed: past BASE, never past HIGH+1
[ "$size" -gt $((0x10000000)) ] && [ "$size" -le $((0x11000000)) ] || fail "device file size $size: not within the window"
expect 0 "--stats-file run" "$run" --device="$dev" --base=0x10000000 --high=0x1000FFFF \
  --stats-file="$tmp/stats.txt" /bin/true
has "$tmp/stats.txt" "^mempool: statistics for pid" "--stats-file"
[ -s "$tmp/err" ] && fail "--stats-file: stderr not empty: $(cat "$tmp/err")"

# ---- the environment the command gets ------------------------------------------
# shellcheck disable=SC2016  # expanded by the command's shell
show='printf "%s\n" "$MEMPOOL_DEVICE" "$MEMPOOL_BASE" "$MEMPOOL_HIGH" "${MEMPOOL_STATS-unset}" "$LD_PRELOAD" "$1"'
abs_lib=$(cd "$(dirname "$lib")" && pwd)/libmempool.so
LD_PRELOAD=libm.so.6 expect 0 "env" "$run" --device "$dev" --base 0x20000000 --high 0x2000FFFF \
  -- /bin/sh -c "$show" sh "two words"
printf '%s\n' "$dev" 0x20000000 0x2000FFFF unset "$abs_lib:libm.so.6" "two words" >"$tmp/want"
diff "$tmp/want" "$tmp/out" >&2 || fail "env: environment or arguments not passed as expected"

# Away from the library: MEMPOOL_LIB, or --lib (relative paths made absolute).
mkdir "$tmp/bin" && cp "$run" "$tmp/bin/mempool-run"
MEMPOOL_LIB="$lib" expect 0 "MEMPOOL_LIB" "$tmp/bin/mempool-run" --device "$dev" --stats /bin/true
has "$tmp/err" "^mempool: statistics for pid" "MEMPOOL_LIB"
cd "$build" || exit 1
# shellcheck disable=SC2016
expect 0 "--lib relative" "$tmp/bin/mempool-run" --lib preload/libmempool.so -- /bin/sh -c 'echo "$LD_PRELOAD"'
cd - >/dev/null || exit 1
[ "$(cat "$tmp/out")" = "$abs_lib" ] || fail "--lib relative: LD_PRELOAD='$(cat "$tmp/out")'"

# ---- meson install --destdir -----------------------------------------------------
dest="$tmp/dest"
if ! meson install -C "$build" --destdir "$dest" --no-rebuild >"$tmp/install.log" 2>&1; then
  fail "meson install"; cat "$tmp/install.log" >&2
  exit 1
fi
find_one() { find "$dest" -name "$1" "${@:2}" | head -n 1; }
so=$(find_one 'libmempool.so.0.*' -type f)
pc=$(find_one mempool.pc)
inst_run=$(find_one mempool-run -type f -perm -u+x)
for f in libmempool.so libmempool.so.0 libmempool_api.so libmempool_api.so.0 mempool.h mem_allocator_c.h; do
  [ -n "$(find_one "$f")" ] || fail "install: no $f under $dest"
done
[ -n "$so" ] || fail "install: no libmempool.so.0.* under $dest"
[ -n "$pc" ] || fail "install: no mempool.pc under $dest"
[ -n "$inst_run" ] || fail "install: no executable mempool-run under $dest"
[ $failed = 0 ] || exit 1
# The installed launcher names the installed library (which lives under
# $dest here), and runs with it.
inst_lib=$(sed -n "s/^installed_lib='\(.*\)'$/\1/p" "$inst_run")
[ -e "$dest$inst_lib" ] || fail "installed launcher names $inst_lib, not installed"
expect 0 "installed launcher" "$inst_run" --lib "$dest$inst_lib" --device "$dev" --stats /bin/true
has "$tmp/err" "^mempool: statistics for pid" "installed launcher"
has "$pc" "^Name: mempool" "pkg-config file"

# A user's program, built from the installed headers and library via pkg-config.
cc=${CC:-cc}
if command -v "$cc" >/dev/null && command -v pkg-config >/dev/null; then
  PKG_CONFIG_PATH=$(dirname "$pc")
  export PKG_CONFIG_SYSROOT_DIR="$dest" PKG_CONFIG_PATH
  flags=$(pkg-config --cflags --libs mempool) || fail "pkg-config --cflags --libs mempool"
  cat >"$tmp/user.c" <<'EOF'
#include <errno.h>
#include <mem_allocator_c.h>
#include <mempool.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  char err[256];
  struct mempool_params prm = {.device = "anon", .base = 0, .high = (1 << 20) - 1};
  mempool_t *m = mempool_create(&prm, err, sizeof err);
  if (!m) { fprintf(stderr, "create: %s\n", err); return 1; }
  char *p = mempool_calloc(m, 10, 10);
  if (!p || !mempool_owns(m, p) || p[99]) return 2;
  mempool_free(m, p);
  struct mempool_stats s;
  if (mempool_get_stats(m, &s) || s.bytes_in_use || s.allocations != 1) return 3;
  mempool_destroy(m);
  MemAllocDelegate d;
  if (init_mem_delegate(&d, 0x100000, 0x1FFFFF)) return 4;
  void *q = mem_delegate_calloc(&d, 4, 4);
  if (!q) return 5;
  mem_delegate_free(&d, q);
  destroy_mem_delegate(&d);
  puts("user program ok");
  return 0;
}
EOF
  # shellcheck disable=SC2086
  if "$cc" -std=c11 -Wall -Werror -o "$tmp/user" "$tmp/user.c" $flags 2>"$tmp/cc.err"; then
    libdir=$(dirname "$so")
    LD_LIBRARY_PATH="$libdir" MEMPOOL_DEVICE="$tmp/user.dev" MEMPOOL_BASE=0x200000 MEMPOOL_HIGH=0x2FFFFF \
      expect 0 "user program" "$tmp/user"
    has "$tmp/out" "user program ok" "user program"
  else
    fail "user program does not build with: $flags"; cat "$tmp/cc.err" >&2
  fi
else
  echo "no C compiler or pkg-config: user program not built" >&2
fi

[ $failed = 0 ] && echo "launcher and install: ok"
exit $failed
