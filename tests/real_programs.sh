#!/usr/bin/env bash
# real_programs.sh LIBMEMPOOL_SO CXX_PROG
#
# Runs real programs (python3, sqlite3, git, and CXX_PROG unless it is empty)
# without and with LD_PRELOAD=LIBMEMPOOL_SO and checks that their outputs are
# identical, in two configurations of a region backed by a regular file:
#   a: 256 MiB, big enough for everything (the pool must serve the process)
#   b: 64 KiB, so that pool and jemalloc pointers mix (both must be used)
#   c: 64 MiB with MEMPOOL_CHECK=1 (guard mode over the thread caches: the
#      pool must serve, and no false alarm)
# Stdout, stderr and exit status must match exactly: no "mempool:" line at
# all. Every preloaded run of a configuration, and every child it starts,
# shares ONE device file (processes claim chunks of the window), and gets
# MEMPOOL_STATS=<file>; the statistics block of the top-level process (found
# by its pid) is checked. Python's own regression tests that check a child's
# stderr (test_json, test_gc, test_subprocess, test_threading) are among the
# programs when Debian's libpython3-testsuite is installed.
#
# Prints one TAP-like line per check ("ok - ..." / "not ok - ...") and exits
# non-zero if any check failed. A missing program is a failure, not a skip.
set -u

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 LIBMEMPOOL_SO [CXX_PROG]" >&2
  exit 2
fi
so=$(realpath -e -- "$1") || { echo "not ok - library $1 not found"; exit 1; }
cxx=${2-}
if [[ -n $cxx ]]; then
  cxx=$(realpath -e -- "$cxx") || { echo "not ok - C++ program $2 not found"; exit 1; }
fi

PYTHON=/usr/bin/python3
SQLITE=/usr/bin/sqlite3
GIT=/usr/bin/git
LIMIT=60  # seconds per process

if [[ -n ${MEMPOOL_TEST_TMP-} ]]; then
  mkdir -p -- "$MEMPOOL_TEST_TMP" || exit 1
  tmp=$(mktemp -d "$MEMPOOL_TEST_TMP/real_programs.XXXXXX") || exit 1
else
  tmp=$(mktemp -d) || exit 1
fi
trap 'rm -rf -- "$tmp"' EXIT
trap 'exit 130' INT TERM
mkdir -p "$tmp/home" "$tmp/out" "$tmp/dev"

failed=0
ok() { echo "ok - $*"; }
notok() {
  echo "not ok - $1"
  shift
  local l
  for l in "$@"; do printf '#   %s\n' "$l"; done
  failed=1
}
check() {  # check COND-STATUS NAME [DIAGNOSTIC...]
  local st=$1
  shift
  if [[ $st -eq 0 ]]; then ok "$1"; else notok "$@"; fi
}

# ---- inputs ------------------------------------------------------------------

cat >"$tmp/work.py" <<'EOF'
import hashlib
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass

h = hashlib.sha256()


def out(label, value):
    line = "%s: %s" % (label, value)
    print(line)
    h.update(line.encode())


rnd = random.Random(20240601)

# 1. dicts, lists and strings
records = []
letters = "abcdefghijklmnopqrstuvwxyz"
for i in range(30000):
    name = "".join(rnd.choices(letters, k=rnd.randrange(2, 14)))
    records.append({"id": i, "name": name, "tags": [name[:2], str(i % 17)],
                    "score": round(rnd.random() * 100, 6), "blob": "z" * rnd.randrange(0, 300)})
by_prefix = defaultdict(list)
for r in records:
    by_prefix[r["name"][:2]].append(r["id"])
out("records", len(records))
out("prefixes", len(by_prefix))
out("largest prefix group", max((len(v), k) for k, v in by_prefix.items()))
text = " ".join(r["name"] for r in records)
out("text", (len(text), text.upper()[1000:1040]))
out("distinct words", len(set(text.split(" "))))
grown = ""
for i in range(30000):
    grown += str(i)
out("grown string", (len(grown), grown[-12:]))
lst = []
for i in range(300000):
    lst.append(i * i % 1009)
del lst[::3]
out("list", (len(lst), sum(lst)))
window = {}
for i in range(100000):
    window[i] = bytes([i % 251]) * (i % 700)
    if i >= 5000:
        del window[i - 5000]
out("window", (len(window), sum(len(v) for v in window.values())))

# 2. JSON round trip
doc = {"records": records[:6000],
       "nested": [[{"k": i, "v": list(range(i % 12)), "s": "q" * (i % 50)} for i in range(300)]
                  for _ in range(20)]}
js = json.dumps(doc, sort_keys=True)
back = json.loads(js)
out("json", (len(js), back == doc, hashlib.sha256(js.encode()).hexdigest()[:16]))
js2 = json.dumps(back["nested"][:4], indent=2, sort_keys=True)
out("json indent", (len(js2), json.loads(js2) == doc["nested"][:4]))

# 3. sorting
words = text.split(" ")
out("sorted words", (words == sorted(words), sorted(words)[:3], sorted(words)[-3:]))
by_score = sorted(records, key=lambda r: (-r["score"], r["name"], r["id"]))
out("top scores", [(r["id"], r["score"]) for r in by_score[:5]])
stable = sorted(records, key=lambda r: len(r["name"]))
out("stable", [r["id"] for r in stable[:8]])
nums = [rnd.getrandbits(30) for _ in range(100000)]
nums.sort(reverse=True)
out("nums", (nums[0], nums[-1], nums[50000]))


# 4. classes
class Shape:
    count = 0

    def __init__(self, name):
        self.name = name
        Shape.count += 1

    def area(self):
        raise NotImplementedError

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, self.name)


class Rect(Shape):
    def __init__(self, name, w, h):
        super().__init__(name)
        self.w, self.h = w, h

    def area(self):
        return self.w * self.h


class Circle(Shape):
    __slots__ = ("r",)

    def __init__(self, name, r):
        super().__init__(name)
        self.r = r

    def area(self):
        return 3 * self.r * self.r


@dataclass(frozen=True)
class Point:
    x: int
    y: int

    def __add__(self, o):
        return Point(self.x + o.x, self.y + o.y)


class Node:
    def __init__(self, value, children=()):
        self.value = value
        self.children = list(children)

    def total(self):
        return self.value + sum(c.total() for c in self.children)


shapes = [Rect("r%d" % i, i % 13, i % 7) if i % 2 else Circle("c%d" % i, i % 11) for i in range(30000)]
out("shapes", (Shape.count, sum(s.area() for s in shapes), repr(shapes[12345])))
pts = {Point(i % 300, i // 300): i for i in range(30000)}
acc = Point(0, 0)
for p in list(pts)[:5000]:
    acc = acc + p
out("points", (len(pts), acc))


def build(depth, v):
    if depth == 0:
        return Node(v)
    return Node(v, [build(depth - 1, v * 3 + k) for k in range(4)])


tree = build(6, 1)
out("tree", tree.total() % 1000000007)
errors = 0
for s in shapes[:20000]:
    try:
        if s.area() == 0:
            raise ValueError(repr(s))
    except ValueError:
        errors += 1
out("exceptions", errors)
del shapes, pts, tree

# 5. regular expressions
word_re = re.compile(r"\b([a-z]{3})([a-z]*)\b")
found = word_re.findall(text)
out("findall", (len(found), found[:3]))
subbed = word_re.sub(lambda m: m.group(2).upper() + m.group(1), text)
out("sub", (len(subbed), hashlib.sha256(subbed.encode()).hexdigest()[:16]))
out("split", len(re.split(r"[aeiou]+", text)))
cnt = 0
for i in range(300):
    cnt += len(re.findall("%s[a-z]{%d}" % (chr(97 + i % 26), i % 5), text[:20000]))
out("patterns", cnt)

print("digest", h.hexdigest())
EOF

cat >"$tmp/work.sql" <<'EOF'
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL, payload BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000)
INSERT INTO t(id, grp, name, val, payload)
  SELECT x, x % 97, printf('name-%06d-%s', (x * 7919) % 50021, substr('abcdefghijklmnopqrstuvwxyz', 1 + x % 26)),
         ((x * 31) % 1000) / 8.0, zeroblob(8 + (x * 13) % 300)
  FROM c;
SELECT 'count', count(*), sum(val), sum(length(payload)) FROM t;
SELECT 'group', grp, count(*), sum(val), min(name), max(name) FROM t GROUP BY grp ORDER BY sum(val) DESC, grp LIMIT 8;
SELECT 'order', id, name FROM t ORDER BY name DESC, id LIMIT 5;
CREATE INDEX t_name ON t(name);
CREATE INDEX t_grp_val ON t(grp, val);
SELECT 'range', count(*), min(id), max(id) FROM t WHERE name BETWEEN 'name-010000' AND 'name-020000';
SELECT 'indexed', count(*), avg(val) FROM t WHERE grp = 42 AND val > 60;
SELECT 'join', count(*) FROM t AS a JOIN t AS b ON a.grp = b.grp AND b.id = a.id + 97;
UPDATE t SET name = name || '-updated', payload = zeroblob(length(payload) * 2) WHERE grp % 3 = 0;
DELETE FROM t WHERE grp % 5 = 0;
SELECT 'after', count(*), sum(length(payload)), count(*) FILTER (WHERE name LIKE '%-updated') FROM t;
CREATE TABLE u AS SELECT grp, group_concat(substr(name, 6, 6), ',') AS names FROM (SELECT grp, name FROM t ORDER BY id) GROUP BY grp;
SELECT 'concat', count(*), sum(length(names)), substr(max(names), 1, 20) FROM u;
SELECT 'distinct', count(DISTINCT substr(name, -1)) FROM t;
PRAGMA integrity_check;
EOF

# ---- running -----------------------------------------------------------------

# Clean environment shared by every run, with and without the preload.
base_env=(PATH=/usr/bin:/bin HOME="$tmp/home" LC_ALL=C.UTF-8 TZ=UTC)
run_n=0

# run_cmd OUT_PREFIX CONFIG(plain|a|b) CWD STDIN LABEL [NAME=VALUE...] PROGRAM ARGS...
# Appends stdout/stderr to OUT_PREFIX.{stdout,stderr}, "rc LABEL" lines to
# OUT_PREFIX.rc and, for preloaded runs, "pid LABEL" to OUT_PREFIX.pids.
# The wrapper shell records its pid and execs env, which execs the program:
# the program keeps that pid. Only the program is preloaded.
run_cmd() {
  local prefix=$1 config=$2 cwd=$3 input=$4 label=$5
  shift 5
  local -a pre=(env) check=()
  local high
  case $config in
    a) high=0x1FFFFFFF ;;
    b) high=0x1000FFFF ;;
    c) high=0x13FFFFFF check=(MEMPOOL_CHECK=1) ;;
    *) high= ;;
  esac
  if [[ -n $high ]]; then
    run_n=$((run_n + 1))
    pre=(env LD_PRELOAD="$so" MEMPOOL_DEVICE="$tmp/dev/region.$config" MEMPOOL_BASE=0x10000000
         MEMPOOL_HIGH="$high" MEMPOOL_STATS="$prefix.stats" "${check[@]}")
  fi
  local pidf="$tmp/pid" rc
  rm -f -- "$pidf"
  # shellcheck disable=SC2016  # $$, $0 and $@ are for the inner shell
  (cd -- "$cwd" && exec timeout -k 5 "$LIMIT" env -i "${base_env[@]}" \
     /bin/sh -c 'echo "$$" >"$0" && exec "$@"' "$pidf" "${pre[@]}" "$@") \
    <"$input" >>"$prefix.stdout" 2>>"$prefix.stderr"
  rc=$?
  echo "$rc $label" >>"$prefix.rc"
  if [[ -n $high && -s $pidf ]]; then
    echo "$(<"$pidf") $label" >>"$prefix.pids"
  fi
  return "$rc"
}

# The git session: a repository with three commits, gc, then inspection.
git_env=(GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0
         GIT_AUTHOR_NAME="A U Thor" GIT_AUTHOR_EMAIL=author@example.com
         GIT_COMMITTER_NAME="C O Mitter" GIT_COMMITTER_EMAIL=committer@example.com)
git_session() {  # OUT_PREFIX CONFIG
  local prefix=$1 config=$2 repo="$tmp/repo" i
  rm -rf -- "$repo"
  mkdir -p "$repo"
  g() { run_cmd "$prefix" "$config" "$repo" /dev/null "git $1" "${git_env[@]}" "$GIT" --no-pager "$@"; }
  gd() {  # commit with a fixed date
    local d="@$1 +0000"
    shift
    run_cmd "$prefix" "$config" "$repo" /dev/null "git commit" "${git_env[@]}" \
      GIT_AUTHOR_DATE="$d" GIT_COMMITTER_DATE="$d" "$GIT" commit -q "$@"
  }
  g init -q -b main
  printf 'hello\n' >"$repo/README"
  mkdir -p "$repo/src"
  for ((i = 0; i < 3000; i++)); do echo "line $i $((i * i % 7919))"; done >"$repo/src/data.txt"
  printf 'int main(void) { return 0; }\n' >"$repo/src/main.c"
  g add -A
  gd 1700000000 -m "initial import"
  printf 'hello, world\n' >"$repo/README"
  for ((i = 0; i < 3000; i += 7)); do echo "changed $i"; done >>"$repo/src/data.txt"
  printf 'notes\n' >"$repo/NOTES"
  g add -A
  gd 1700003600 -m "second commit" -m "With a body."
  g mv src/main.c src/prog.c
  g rm -q NOTES
  gd 1700007200 -m "rename and remove"
  g gc -q
  g log --stat
  g rev-parse HEAD
  g cat-file -p HEAD
  g ls-tree -r HEAD
  g diff --stat HEAD~2 HEAD
  g fsck --no-progress
  rm -rf -- "$repo"
}

# run_program NAME CONFIG(plain|a|b): one complete run into $tmp/out/NAME.CONFIG.*
run_program() {
  local name=$1 config=$2
  local prefix="$tmp/out/$name.$config"
  : >"$prefix.stdout"
  : >"$prefix.stderr"
  : >"$prefix.rc"
  case $name in
    python3) run_cmd "$prefix" "$config" "$tmp" /dev/null python3 PYTHONMALLOC=malloc "$PYTHON" -I "$tmp/work.py" ;;
    sqlite3) run_cmd "$prefix" "$config" "$tmp" "$tmp/work.sql" sqlite3 "$SQLITE" -batch -bail -init /dev/null :memory: ;;
    git) git_session "$prefix" "$config" ;;
    cxx) run_cmd "$prefix" "$config" "$tmp" /dev/null cxx "$cxx" ;;
    pytests) run_cmd "$prefix" "$config" "$tmp" /dev/null pytests PYTHONMALLOC=malloc "$PYTHON" -m test -q \
               test_json test_gc test_subprocess test_threading ;;
  esac
}

# stats_of STATS_FILE PID -> "POOL_ALLOCS JEMALLOC_ALLOCS", or "none" when the
# file has no statistics block for PID (or the region was not in use).
stats_of() {
  [[ -f $1 ]] || { echo none; return; }
  awk -v pid="$2" '
    /^mempool: statistics for pid / { cur = ($5 == pid); if (cur) seen = 1 }
    cur && /^mempool:   pool allocations / { pool = $4 }
    cur && /^mempool:   jemalloc / { je = $3 }
    END { if (!seen || pool == "") print "none"; else print pool, (je == "" ? 0 : je) }' "$1"
}

# Test runners print timings: compare what they say, not how long it took.
normalize() { sed -E 's/[0-9]+(\.[0-9]+)? ?(sec|s|ms|min)\b/T/g; s/^0:[0-9:]+ load avg: [0-9. ]+//' "$1"; }

compare_runs() {  # NAME CONFIG
  local name=$1 config=$2
  local p="$tmp/out/$name.plain" q="$tmp/out/$name.$config"
  local label="config $config: $name"
  cmp -s "$p.rc" "$q.rc"
  check $? "$label: exit statuses identical" "without preload: $(tr '\n' ';' <"$p.rc")" \
    "with preload:    $(tr '\n' ';' <"$q.rc")"
  local stream
  for stream in stdout stderr; do
    if cmp -s <(normalize "$p.$stream") <(normalize "$q.$stream"); then
      ok "$label: $stream identical ($(wc -l <"$q.$stream") lines)"
    else
      local -a d
      mapfile -t d < <(diff <(normalize "$p.$stream") <(normalize "$q.$stream") | head -n 12)
      notok "$label: $stream identical" "${d[@]}"
    fi
  done
  # No "mempool:" line at all: children share the window, nothing to say.
  local -a unexpected
  mapfile -t unexpected < <(grep '^mempool:' "$q.stderr" | head -n 5)
  check "${#unexpected[@]}" "$label: no mempool: messages" "${unexpected[@]}"

  # Statistics of the top-level process(es).
  local pid prog arg s pa ja bad=() summary=()
  while read -r pid prog arg; do
    s=$(stats_of "$q.stats" "$pid")
    if [[ $s == none ]]; then
      bad+=("$prog${arg:+ $arg} (pid $pid): no statistics with the region in use")
      continue
    fi
    read -r pa ja <<<"$s"
    summary+=("$prog${arg:+ $arg}: pool $pa, jemalloc $ja")
    if [[ $config != b ]]; then
      ((pa > 0)) || bad+=("$prog${arg:+ $arg} (pid $pid): no pool allocations (pool $pa, jemalloc $ja)")
    elif [[ $name != git || $arg == log ]]; then  # git: the log process must mix
      ((pa > 0 && ja > 0)) || bad+=("$prog${arg:+ $arg} (pid $pid): pool $pa, jemalloc $ja; want both nonzero")
    fi
  done <"$q.pids"
  [[ -s $q.pids ]] || bad+=("no preloaded process recorded")
  local what="used the pool"
  [[ $config == b ]] && what="mixed pool and jemalloc allocations"
  if ((${#bad[@]} == 0)); then
    if [[ $name == git ]]; then
      ok "$label: $what ($(wc -l <"$q.pids") processes)"
    else
      ok "$label: $what (${summary[0]})"
    fi
  else
    notok "$label: $what" "${bad[@]}"
  fi
}

programs=(python3 sqlite3 git)
[[ -n $cxx ]] && programs+=(cxx)
programs+=(pytests)

start=$SECONDS
for name in "${programs[@]}"; do
  case $name in
    python3) exe=$PYTHON ;;
    sqlite3) exe=$SQLITE ;;
    git) exe=$GIT ;;
    cxx) exe=$cxx ;;
    pytests) exe=$PYTHON
             [[ -n $(compgen -G '/usr/lib/python3.*/test/test_json/__init__.py') ]] || exe=/nonexistent/libpython3-testsuite ;;
  esac
  if [[ ! -x $exe ]]; then
    notok "$name: $exe is missing (install the Debian package $name)" \
      "cannot test $name under the preload without it"
    continue
  fi
  run_program "$name" plain
  p="$tmp/out/$name.plain"
  if grep -qv '^0 ' "$p.rc" || [[ ! -s $p.stdout ]]; then
    mapfile -t d < <(tr '\n' ';' <"$p.rc"; echo; head -n 5 "$p.stderr")
    notok "$name: runs without the preload (exit 0, output not empty)" "${d[@]}"
    continue
  fi
  ok "$name: runs without the preload"
  configs=(a b c)
  [[ $name == pytests ]] && configs=(a)  # 40 s a run: the shared big window only
  for config in "${configs[@]}"; do
    run_program "$name" "$config"
    compare_runs "$name" "$config"
  done
done
echo "# $((SECONDS - start)) s"
exit "$failed"
