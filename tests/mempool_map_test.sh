#!/bin/bash
# mempool_map_test.sh MEMPOOL_MAP - scripts/mempool-map on synthetic region
# maps (format v2, 'region BASE SIZE DEVICE', unless said otherwise): a valid
# one with used blocks, free ranges and spans (exit 0, a valid PNG of the
# requested size, the default output name, summary figures equal to the ones
# computed here with awk), the same map in format v1 ('region DEVICE BASE
# SIZE', with its header and with none: still read, the same figures), one of
# 200000 tiny alternating ranges (pixels mixing used and free get a shade
# between the two colours), one of a shared window with "away" ranges (chunks
# this process does not hold: counted as neither used nor free, drawn grey,
# listed as "not held"), device names with spaces and with \xNN escapes (a
# newline, a backslash, UTF-8, a byte that is not UTF-8: decoded, shown in
# the summary, a non-printable one quoted with escapes, never breaking a
# line), broken ones (a gap, an overlap, a short tiling, a bad state, a bad
# away state, a gap where an away range was, a range before the region line,
# malformed v2 region lines, a bad escape, an unknown format version: exit 1
# and a message naming the line), and Pillow missing (exit 2, one line naming
# the Debian package).
set -u
tool=$1
tmp=$(mktemp -d "${MEMPOOL_TEST_TMP:-${TMPDIR:-/tmp}}/mempool_map.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# shellcheck source=tests/shell_checks.sh
. "$(dirname "${BASH_SOURCE[0]}")/shell_checks.sh"
# field LABEL: the first word after "LABEL:" in the summary ($tmp/out).
field() {
  sed -n "s/^$1: *\\([^ ]*\\).*/\\1/p" "$tmp/out"
}
check_eq() {  # check_eq DESC GOT WANT
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

# A PNG checker independent of the tool: signature, chunk CRCs, IHDR (8-bit
# RGB), IDAT inflating to exactly H rows of 1+3W bytes, every row's filter
# one of PNG's five. Prints "W H". Given a check, it also undoes the filters
# and looks at the pixels: "mixed": the most common colour of the strips'
# pixels lies strictly between the free and the used colour; "away": the
# most common colour of the lower half's strips is the away colour;
# "noaway": no pixel anywhere has the away colour (light grey, red and mid
# grey in scripts/mempool-map; keep them in sync).
cat >"$tmp/pngcheck.py" <<'EOF'
import struct, sys, zlib
from collections import Counter
from itertools import accumulate
FREE, USED, AWAY = (217, 217, 217), (200, 40, 30), (160, 160, 160)
path = sys.argv[1]
check = sys.argv[2] if len(sys.argv) > 2 else None
data = open(path, "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(f"{path}: no PNG signature")
pos, chunks = 8, []
while pos < len(data):
    n, tag = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
    if zlib.crc32(tag + body) & 0xFFFFFFFF != crc:
        sys.exit(f"{path}: bad CRC in {tag!r}")
    chunks.append((tag, body))
    pos += 12 + n
if chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
    sys.exit(f"{path}: chunks {[t for t, _ in chunks]}")
w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
if (depth, ctype, interlace) != (8, 2, 0):
    sys.exit(f"{path}: depth {depth} colour type {ctype} interlace {interlace}, want 8-bit RGB")
raw = zlib.decompress(b"".join(b for t, b in chunks if t == b"IDAT"))
stride = 3 * w
if len(raw) != h * (stride + 1):
    sys.exit(f"{path}: {len(raw)} bytes of image data for {w}x{h}")
bad = [y for y in range(h) if raw[y * (stride + 1)] > 4]
if bad:
    sys.exit(f"{path}: filter {raw[bad[0] * (stride + 1)]} in row {bad[0]}")
print(w, h)
if check is None:
    sys.exit(0)

M7 = int.from_bytes(b"\x7f" * stride, "big")
M8 = int.from_bytes(b"\x80" * stride, "big")
def add(x, y):
    """Bytewise (x + y) mod 256 of two rows as one big number: the low 7 bits
    of each byte are added (no carry leaves the byte), the top bit xor'ed."""
    a, b = int.from_bytes(x, "big"), int.from_bytes(y, "big")
    return (((a & M7) + (b & M7)) ^ ((a ^ b) & M8)).to_bytes(stride, "big")
rows, prev = [], bytes(stride)
for y in range(h):
    f, line = raw[y * (stride + 1)], raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)]
    if f == 1:                              # Sub: a running sum per channel
        out = bytearray(stride)
        for c in range(3):
            out[c::3] = bytes(v & 255 for v in accumulate(line[c::3]))
        line = bytes(out)
    elif f == 2:                            # Up
        line = add(line, prev)
    elif f in (3, 4):                       # Average, Paeth: byte by byte
        cur, up = bytearray(3) + line, bytes(3) + prev
        for i in range(3, stride + 3):
            a, b, c = cur[i - 3], up[i], up[i - 3]
            if f == 3:
                cur[i] = (cur[i] + (a + b) // 2) & 255
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - c - c)
                cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        line = bytes(cur[3:])
    rows.append(line)
    prev = line
def pixels(line, x0=0, x1=w):
    seg = line[3 * x0:3 * x1]
    return zip(seg[0::3], seg[1::3], seg[2::3])
def strip_colour():
    """The most common colour of the lower half (rows of strips and their labels)."""
    count = Counter()
    for line in rows[h // 2:]:
        count.update(pixels(line, w // 3, w - 20))
    count.pop((255, 255, 255), None)
    return max(count, key=count.get)
if check == "mixed":
    top = strip_colour()
    between = all(min(f, u) <= t <= max(f, u) for t, f, u in zip(top, FREE, USED))
    if top in (FREE, USED) or not between:
        sys.exit(f"{path}: most common strip colour {top} is not a free/used mix")
elif check == "away":
    top = strip_colour()
    if top != AWAY:
        sys.exit(f"{path}: most common colour of the lower strips is {top}, not the away colour {AWAY}")
elif check == "noaway":
    n = sum(sum(1 for px in pixels(line) if px == AWAY) for line in rows)
    if n:
        sys.exit(f"{path}: {n} pixels of the away colour {AWAY} in a map without away ranges")
else:
    sys.exit(f"pngcheck: unknown check {check}")
EOF
# The checker's Python: Debian's (a version manager's shim on PATH is slow).
py=/usr/bin/python3
[ -x "$py" ] || py=python3
pngcheck() { "$py" "$tmp/pngcheck.py" "$@"; }

# ---- a valid map ---------------------------------------------------------------
# 64 MiB at 0x20000000: four spans, then 300 used blocks of varied sizes with
# free ranges between most of them, then a free tail (the largest free range).
awk 'BEGIN {
  size = 64 * 1048576
  print "# mempool map v2"
  print "# a comment line, and a blank one:"
  print ""
  printf "region 0x20000000 %d /dev/mem\n", size
  off = 0
  split("16 32 16 64", cls, " ")
  for (i = 1; i <= 4; i++) { printf "range 0x%x 65536 span:%d\n", off, cls[i]; off += 65536 }
  for (i = 1; i <= 300; i++) {
    u = 16 * (1 + (i * 7919) % 6000)
    printf "range 0x%x %d used\n", off, u; off += u
    if (i % 5 != 0) { f = 16 * (1 + (i * 104729) % 3000); printf "range 0x%x %d free\n", off, f; off += f }
  }
  printf "range 0x%x %d free\n", off, size - off
}' >"$tmp/valid.map"

# The expected figures, straight from the file.
read -r want_ranges want_used want_free want_largest want_frag < <(awk '
  $1 == "range" { n++; if ($4 == "free") { free += $3; if ($3 > big) big = $3 } else used += $3 }
  END { printf "%d %d %d %d %.2f%%\n", n, used, free, big, (free ? 100 * (1 - big / free) : 0) }' "$tmp/valid.map")

expect 0 "valid map" "$tool" "$tmp/valid.map" --width 900
check_eq "ranges" "$(field ranges)" "$want_ranges"
check_eq "used bytes" "$(field 'used bytes')" "$want_used"
check_eq "free bytes" "$(field 'free bytes')" "$want_free"
check_eq "largest free" "$(field 'largest free')" "$want_largest"
check_eq "fragmentation" "$(field fragmentation)" "$want_frag"
# no away ranges: nothing not held, all of the region held
check_eq "not held" "$(field 'not held')" 0
check_eq "held bytes" "$(field 'held bytes')" $((64 * 1048576))
has "$tmp/out" "^region: */dev/mem base 0x20000000 size 67108864 " "region line"
has "$tmp/out" "span classes: *16:2, 32:1, 64:1" "span classes"
case $want_frag in 0.00%|100.00%) fail "synthetic map has trivial fragmentation $want_frag" ;; esac
# default output: the map's name with .png for its extension
if [ -s "$tmp/valid.png" ]; then
  dims=$(pngcheck "$tmp/valid.png" noaway 2>"$tmp/err") || { fail "valid.png:"; sed 's/^/  | /' "$tmp/err" >&2; }
  read -r w h <<<"$dims"
  check_eq "PNG width" "$w" 900
  has "$tmp/out" "^png: .*valid.png (900x$h)" "summary names the PNG"
  [ "${h:-0}" -ge 200 ] || fail "PNG height $h"
  if command -v file >/dev/null; then
    file "$tmp/valid.png" | grep -q "PNG image data, 900 x $h, 8-bit/color RGB" ||
      fail "file(1) says: $(file "$tmp/valid.png")"
  fi
else
  fail "no $tmp/valid.png"
fi
# -o, --width and --height give exactly that picture
expect 0 "-o --width --height" "$tool" "$tmp/valid.map" -o "$tmp/sized.png" --width 640 --height 480
check_eq "-o 640x480" "$(pngcheck "$tmp/sized.png" 2>&1)" "640 480"
expect 0 "single strip" "$tool" "$tmp/valid.map" -o "$tmp/strip.png" --rows 1
pngcheck "$tmp/strip.png" >/dev/null || fail "strip.png is not a valid PNG"

# ---- format v1: still read (with its header, and with none at all) ----------
sed -e '1s/v2$/v1/' -e 's|^region 0x20000000 \([0-9]*\) /dev/mem$|region /dev/mem 0x20000000 \1|' \
  "$tmp/valid.map" >"$tmp/valid1.map"
grep -q '^region /dev/mem 0x20000000 [0-9]*$' "$tmp/valid1.map" || fail "no v1 region line in valid1.map"
sed 1d "$tmp/valid1.map" >"$tmp/noheader.map"
for v1 in valid1 noheader; do
  expect 0 "v1 map $v1" "$tool" "$tmp/$v1.map" -o "$tmp/$v1.png" --width 900
  check_eq "$v1: ranges" "$(field ranges)" "$want_ranges"
  check_eq "$v1: used bytes" "$(field 'used bytes')" "$want_used"
  check_eq "$v1: free bytes" "$(field 'free bytes')" "$want_free"
  check_eq "$v1: fragmentation" "$(field fragmentation)" "$want_frag"
  has "$tmp/out" "^region: */dev/mem base 0x20000000 size 67108864 " "$v1: region line"
  pngcheck "$tmp/$v1.png" >/dev/null || fail "$v1.png is not a valid PNG"
done

# ---- many tiny ranges: per-pixel aggregation, mixed shades ------------------
awk 'BEGIN {
  print "# mempool map v2"
  print "region 0x0 6400000 anon"
  for (i = 0; i < 200000; i++) printf "range 0x%x 32 %s\n", i * 32, (i % 2 ? "free" : "used")
}' >"$tmp/many.map"
expect 0 "200000 ranges" "$tool" "$tmp/many.map" -o "$tmp/many.png"
check_eq "many: ranges" "$(field ranges)" 200000
check_eq "many: used bytes" "$(field 'used bytes')" 3200000
check_eq "many: largest free" "$(field 'largest free')" 32
check_eq "many: fragmentation" "$(field fragmentation)" "100.00%"
pngcheck "$tmp/many.png" mixed >/dev/null 2>"$tmp/err" || { fail "many.png:"; sed 's/^/  | /' "$tmp/err" >&2; }

# ---- a shared window: ranges this process does not hold ("away") -----------
# 8 MiB in chunks of 1 MiB: chunks 0, 2 and 5 held (spans, used blocks, free
# ranges), 1, 3 and 4 away (3 and 4 as two adjacent away ranges), 6-7 one
# away range. The away ranges are bigger than any free range: they must not
# count as free, nor as the largest free range, nor in the fragmentation.
awk 'BEGIN {
  M = 1048576
  print "# mempool map v2"
  print "region 0x40000000 8388608 /dev/shm/shared"
  printf "range 0x0 65536 span:32\n"
  printf "range 0x10000 %d used\n", 196608
  printf "range 0x40000 %d free\n", 262144
  printf "range 0x80000 %d used\n", 131072
  printf "range 0xa0000 %d free\n", 393216
  printf "range 0x%x %d away\n", 1 * M, M
  printf "range 0x%x %d used\n", 2 * M, 524288
  printf "range 0x%x %d free\n", 2 * M + 524288, 524288
  printf "range 0x%x %d away\n", 3 * M, M
  printf "range 0x%x %d away\n", 4 * M, M
  printf "range 0x%x %d free\n", 5 * M, 131072
  printf "range 0x%x %d used\n", 5 * M + 131072, 917504
  printf "range 0x%x %d away\n", 6 * M, 2 * M
}' >"$tmp/away.map"
read -r a_ranges a_used a_free a_away a_largest a_frag < <(awk '
  $1 == "range" { n++
    if ($4 == "free") { free += $3; if ($3 > big) big = $3 }
    else if ($4 == "away") away += $3
    else used += $3 }
  END { printf "%d %d %d %d %d %.2f%%\n", n, used, free, away, big, (free ? 100 * (1 - big / free) : 0) }' "$tmp/away.map")
# the figures, by hand: a slip in the awk above must not hide one in the tool
check_eq "away: expected used" "$a_used" $((65536 + 196608 + 131072 + 524288 + 917504))
check_eq "away: expected free" "$a_free" $((262144 + 393216 + 524288 + 131072))
check_eq "away: expected not held" "$a_away" $((5 * 1048576))
expect 0 "away map" "$tool" "$tmp/away.map" -o "$tmp/away.png" --width 900 --rows 8
check_eq "away: ranges" "$(field ranges)" "$a_ranges"
has "$tmp/out" "^ranges: .*free 4, not held 4)" "away: ranges by kind"
check_eq "away: used bytes" "$(field 'used bytes')" "$a_used"
check_eq "away: free bytes" "$(field 'free bytes')" "$a_free"
check_eq "away: not held" "$(field 'not held')" "$a_away"
check_eq "away: held bytes" "$(field 'held bytes')" $((8388608 - a_away))
check_eq "away: largest free" "$(field 'largest free')" "$a_largest"
check_eq "away: fragmentation" "$(field fragmentation)" "$a_frag"
has "$tmp/out" "^largest free: .* at offset 0x280000$" "away: the largest free range is a free one"
case $a_frag in 0.00%|100.00%) fail "away map has trivial fragmentation $a_frag" ;; esac
pngcheck "$tmp/away.png" away >/dev/null 2>"$tmp/err" || { fail "away.png:"; sed 's/^/  | /' "$tmp/err" >&2; }
# all of it away: nothing used or free, no fragmentation (a v1 map)
printf '# mempool map v1\nregion anon 0x0 4194304\nrange 0x0 1048576 away\nrange 0x100000 3145728 away\n' >"$tmp/allaway.map"
expect 0 "all away" "$tool" "$tmp/allaway.map" -o "$tmp/allaway.png" --rows 2
check_eq "all away: used bytes" "$(field 'used bytes')" 0
check_eq "all away: free bytes" "$(field 'free bytes')" 0
check_eq "all away: not held" "$(field 'not held')" 4194304
check_eq "all away: held bytes" "$(field 'held bytes')" 0
check_eq "all away: fragmentation" "$(field fragmentation)" "0.00%"
pngcheck "$tmp/allaway.png" away >/dev/null 2>"$tmp/err" || { fail "allaway.png:"; sed 's/^/  | /' "$tmp/err" >&2; }

# ---- device names in v2: the rest of the line, \xNN escapes decoded --------
# devmap FILE DEVICE_FIELD: a small valid v2 map with that device field.
devmap() {
  printf '# mempool map v2\nregion 0x10000000 1048576 %s\nrange 0x0 65536 used\nrange 0x10000 983040 free\n' \
    "$2" >"$1"
}
# devname DESC DEVICE_FIELD SHOWN: the map is read, the summary's region line
# shows the name as SHOWN (a fixed string), and the summary keeps its lines.
devname() {
  devmap "$tmp/dev.map" "$2"
  expect 0 "$1" "$tool" "$tmp/dev.map" -o "$tmp/dev.png" --width 700
  grep -qxF -- "region:        $3 base 0x10000000 size 1048576 (1 MiB)" "$tmp/out" ||
    { fail "$1: the region line does not show '$3':"; sed 's/^/  | /' "$tmp/out" >&2; }
  check_eq "$1: summary lines" "$(wc -l <"$tmp/out")" 10
  check_eq "$1: used bytes" "$(field 'used bytes')" 65536
  pngcheck "$tmp/dev.png" >/dev/null || fail "$1: not a valid PNG"
}
devname "device with a space" '/tmp/my dir/dev' '/tmp/my dir/dev'
devname "device with two spaces" '/tmp/a  b c/dev' '/tmp/a  b c/dev'
devname "device with a trailing space" '/tmp/dev ' "'/tmp/dev '"
# a newline and a backslash, escaped: decoded, shown quoted with escapes
devname "escaped newline and backslash" '/tmp/new\x0aline\x5cback' "'/tmp/new\\nline\\\\back'"
# a backslash alone is printable: shown as it is
devname "escaped backslash" '/tmp/back\x5cslash' '/tmp/back\slash'
# UTF-8 (é as the library writes it: its bytes escaped), upper-case hex
# digits, an ESC and a byte that is not UTF-8
devname "escaped UTF-8" '/tmp/caf\xc3\xa9' '/tmp/café'
devname "upper-case escape" '/tmp/caf\xC3\xA9' '/tmp/café'
devname "escaped ESC and a non-UTF-8 byte" '/tmp/\x1b[31m\xff' "'/tmp/\\x1b[31m\\xff'"

# ---- broken maps: exit 1, the line named, no picture --------------------------
# broken MAPFILE LINE REGEX DESC
broken() {
  rm -f "$tmp/broken.png"
  expect 1 "$4" "$tool" "$1" -o "$tmp/broken.png"
  has "$tmp/err" "$(basename "$1"):$2: .*$3" "$4"
  [ -e "$tmp/broken.png" ] && fail "$4: a PNG was written"
}
# A gap: the used range of line 20 dropped; line 20 is now the range after it.
sed '20d' "$tmp/valid.map" >"$tmp/gap.map"
grep -q '^range .* used$' <(sed -n 20p "$tmp/valid.map") || fail "line 20 of valid.map is not a used range"
broken "$tmp/gap.map" 20 "gap of [0-9]* bytes" "gap"
has "$tmp/err" "previous range (line 19)" "gap names the previous range"
# An overlap: line 12's offset moved back by 16 bytes.
awk 'NR == 12 { n = 0; h = substr($2, 3); for (i = 1; i <= length(h); i++) n = n * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1; $2 = sprintf("0x%x", n - 16) } { print }' "$tmp/valid.map" >"$tmp/overlap.map"
broken "$tmp/overlap.map" 12 "overlap of 16 bytes" "overlap"
# Short: the last range (the free tail) dropped, the ranges end early.
last=$(wc -l <"$tmp/valid.map")
sed '$d' "$tmp/valid.map" >"$tmp/short.map"
broken "$tmp/short.map" $((last - 1)) "not covered" "short tiling"
# Beyond the end: the tail one byte longer.
awk -v L="$last" 'NR == L { $3 = $3 + 1 } { print }' "$tmp/valid.map" >"$tmp/long.map"
broken "$tmp/long.map" "$last" "beyond the region" "range beyond the region"
# A state that is not free, used or span:N.
sed '9s/used$/busy/' "$tmp/valid.map" >"$tmp/state.map"
broken "$tmp/state.map" 9 "malformed range line" "bad state"
# Away takes no argument, and is spelt in lower case.
sed '8s/away$/away:4096/' "$tmp/away.map" >"$tmp/awayarg.map"
grep -q '^range .* away$' <(sed -n 8p "$tmp/away.map") || fail "line 8 of away.map is not an away range"
broken "$tmp/awayarg.map" 8 "malformed range line" "away with an argument"
sed '8s/away$/Away/' "$tmp/away.map" >"$tmp/awaycase.map"
broken "$tmp/awaycase.map" 8 "malformed range line" "away in capitals"
sed '8s/away$/awayfoo/' "$tmp/away.map" >"$tmp/awayjunk.map"
broken "$tmp/awayjunk.map" 8 "malformed range line" "away with trailing junk"
# Away ranges tile like the others: dropping one leaves a gap.
sed '8d' "$tmp/away.map" >"$tmp/awaygap.map"
broken "$tmp/awaygap.map" 8 "gap of 1048576 bytes" "gap where an away range was"
# A range before the region line.
printf '# mempool map v2\nrange 0x0 4096 used\nregion 0x0 4096 anon\n' >"$tmp/order.map"
broken "$tmp/order.map" 2 "before the 'region' line" "range before region"
# Malformed v2 region lines: the v1 layout under a v2 header, no device, an
# empty one, a letter in the size, a backslash that starts no \xNN escape.
printf '# mempool map v2\n# comment\nregion /dev/mem 0x0 4096\nrange 0x0 4096 used\n' >"$tmp/v2old.map"
broken "$tmp/v2old.map" 3 "malformed region line; expected 'region BASE_HEX SIZE_BYTES DEVICE'" \
  "v1 region line in a v2 map"
has "$tmp/err" "the v1 layout, but the header says v2" "v1 region line in a v2 map: the hint"
printf '# mempool map v2\nregion 0x0 4096\nrange 0x0 4096 used\n' >"$tmp/v2nodev.map"
broken "$tmp/v2nodev.map" 2 "malformed region line" "v2 region line without a device"
printf '# mempool map v2\nregion 0x0 4096 \nrange 0x0 4096 used\n' >"$tmp/v2emptydev.map"
broken "$tmp/v2emptydev.map" 2 "malformed region line" "v2 region line with an empty device"
printf '# mempool map v2\n\nregion 0x0 40k96 /dev/mem\nrange 0x0 4096 used\n' >"$tmp/v2size.map"
broken "$tmp/v2size.map" 3 "malformed region line" "v2 region line with a bad size"
devmap "$tmp/v2esc.map" '/tmp/a\x4g'
broken "$tmp/v2esc.map" 2 "must start a \\\\xNN escape" "v2 device with a bad escape"
devmap "$tmp/v2bs.map" '/tmp/a\b'
broken "$tmp/v2bs.map" 2 "must start a \\\\xNN escape" "v2 device with a bare backslash"
# A v2 region line without the v2 header is read as v1, and is malformed there.
printf 'region 0x0 4096 anon\nrange 0x0 4096 used\n' >"$tmp/noheader2.map"
broken "$tmp/noheader2.map" 1 "expected 'region DEVICE BASE_HEX SIZE_BYTES'.*starts with '# mempool map v2'" \
  "v2 region line without the header"
# A format this script does not know.
printf '# mempool map v3\nregion 0x0 4096 anon\nrange 0x0 4096 used\n' >"$tmp/v3.map"
broken "$tmp/v3.map" 1 "map format v3; this script reads v1, v2" "format v3"
expect 1 "missing file" "$tool" "$tmp/nonexistent.map"
has "$tmp/err" "nonexistent.map" "missing file named"

# ---- without Pillow: one line naming the Debian package, exit 2 -------------
mkdir -p "$tmp/nopil/PIL"
echo 'raise ImportError("No module named PIL (hidden by the test)")' >"$tmp/nopil/PIL/__init__.py"
rm -f "$tmp/nopil.png"
expect 2 "no Pillow" env PYTHONPATH="$tmp/nopil" "$tool" "$tmp/valid.map" -o "$tmp/nopil.png"
has "$tmp/err" "^mempool-map: .*Debian package python3-pil" "no Pillow: the package named"
check_eq "no Pillow: lines on stderr" "$(wc -l <"$tmp/err")" 1
[ -e "$tmp/nopil.png" ] && fail "no Pillow: a PNG was written"

[ "$failed" = 0 ] && echo "mempool_map: all checks passed"
exit "$failed"
