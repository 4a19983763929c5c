"""Allocation-heavy python workload for scripts/bench (run with PYTHONMALLOC=malloc).

Builds and drops many dicts, lists, strings and bytes of mixed sizes, round-trips
JSON, sorts, and grows a few large strings and lists.  Prints a checksum so that
a broken allocator shows up as a different result (the runner compares it across
allocators).  Argument: scale (default 1.0).
"""
import json
import random
import sys

scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
rnd = random.Random(12345)
check = 0

# 1. records: many small dicts with short strings, kept alive in a window
window = []
for i in range(int(80_000 * scale)):
    rec = {"id": i, "name": "user%d" % rnd.randrange(1_000_000),
           "tags": [str(rnd.randrange(100)) for _ in range(rnd.randrange(1, 6))],
           "blob": "x" * rnd.randrange(0, 600)}
    window.append(rec)
    if len(window) > 20_000:
        old = window.pop(rnd.randrange(len(window)))
        check += len(old["blob"]) + len(old["tags"])
check += sum(len(r["name"]) for r in window)
del window

# 2. JSON round trips of medium documents
for i in range(int(80 * scale)):
    doc = [{"k%d" % j: [rnd.random() for _ in range(rnd.randrange(1, 20))],
            "s": "y" * rnd.randrange(1, 3000)} for j in range(100)]
    text = json.dumps(doc)
    back = json.loads(text)
    check += len(text) + len(back)

# 3. sorting and string building
words = ["".join(chr(97 + rnd.randrange(26)) for _ in range(rnd.randrange(3, 12)))
         for _ in range(int(50_000 * scale))]
words.sort()
check += len(words[0]) + len(words[-1])
parts = []
for w in words:
    parts.append(w.upper())
big = ",".join(parts)
check += len(big)
del words, parts, big

# 4. bytes of mixed sizes up to 256 KiB, with a live set
live = {}
for i in range(int(15_000 * scale)):
    n = int(2 ** rnd.uniform(4, 18))
    live[rnd.randrange(4000)] = bytes([i & 0xFF]) * n
check += sum(len(b) for b in live.values())
del live

print("RESULT checksum=%d" % check)
