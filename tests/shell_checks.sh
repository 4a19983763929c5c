# shell_checks.sh - sourced by the shell tests: fail/expect/has over $tmp.
# The sourcing script sets tmp (a scratch directory) before using them.
# shellcheck shell=bash disable=SC2034,SC2154
failed=0

fail() {
  echo "FAIL: $*" >&2
  failed=1
}
# expect RC DESC CMD...: runs CMD (stdout/stderr to $tmp/out, $tmp/err).
expect() {
  local want=$1 desc=$2
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" != "$want" ]; then
    fail "$desc: exit $rc, want $want"
    sed 's/^/  | /' "$tmp/out" "$tmp/err" >&2
  fi
}
has() {  # has FILE REGEX DESC
  grep -q -- "$2" "$1" || { fail "$3: no '$2' in $1:"; sed 's/^/  | /' "$1" >&2; }
}
