#!/bin/bash
# format_check.sh SRCDIR - the C sources follow .clang-format (clang-format
# --dry-run prints nothing). Skipped (77) when clang-format is missing.
set -u
cd "$1" || exit 1
command -v clang-format >/dev/null || { echo "clang-format not installed: skipped"; exit 77; }
bad=0
for f in src/*.[ch] preload/*.c tests/*.[ch] tests/*.cc bench/*.[ch]; do
  if [ -n "$(clang-format --dry-run "$f" 2>&1)" ]; then
    echo "not formatted: $f (clang-format -i $f)"
    bad=1
  fi
done
[ $bad = 0 ] && echo "all sources formatted"
exit $bad
