-- In-memory sqlite3 workload for scripts/bench: ~200k rows inserted, indexed,
-- selected, updated and deleted.  Prints a few aggregates (checked across
-- allocators by the runner).  sqlite3 uses the system malloc by default.
PRAGMA cache_size = -65536;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, name TEXT, payload BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
INSERT INTO t(k, name, payload)
  SELECT (x * 7919) % 10007, printf('name-%08d-%s', x, substr('abcdefghijklmnopqrstuvwxyz', 1 + x % 26)),
         zeroblob(16 + (x * 31) % 480)
  FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_name ON t(name);
SELECT 'count', count(*), sum(length(payload)) FROM t;
SELECT 'groups', count(*), max(n) FROM (SELECT k, count(*) AS n FROM t GROUP BY k);
SELECT 'join', count(*) FROM t AS a JOIN t AS b ON a.k = b.k AND b.id = a.id + 10007;
SELECT 'like', count(*) FROM t WHERE name LIKE 'name-0001%';
SELECT 'order', sum(id) FROM (SELECT id FROM t ORDER BY name DESC LIMIT 50000);
UPDATE t SET payload = zeroblob(length(payload) * 2), name = name || '-updated' WHERE k % 3 = 0;
SELECT 'updated', count(*), sum(length(payload)) FROM t WHERE name LIKE '%-updated';
DELETE FROM t WHERE k % 5 = 0;
SELECT 'left', count(*) FROM t;
CREATE TABLE u AS SELECT k, group_concat(name) AS names FROM t GROUP BY k;
SELECT 'concat', count(*), sum(length(names)) FROM u;
