// Histories for the --history scenario (bench/history.mjs): SQLite files already
// holding N notifications. The schema (tables, triggers, indexes) is the built
// SqliteStore's own (dist/), created by its init(); the rows are then generated
// inside SQLite by one INSERT … SELECT per size (about 20 µs a row with its
// indexes and audience entries; appending through the store costs 5× that). One
// file grows through the sizes in ascending order and is copied at each.
import { copyFileSync, existsSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL, fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** The user with a large inbox: every 100th notification is addressed to them alone (10,000 of 1,000,000). */
export const HEAVY_USER = 'heavy'
/** Ordinary users are u0…u9999; a per-user notification names one of them. */
export const USERS = 10_000
/** Retention the server is started with: above the largest size, so nothing generated is pruned at start. */
export const RETENTION_MAX_COUNT = 5_000_000
const WEEK_MS = 7 * 24 * 3600 * 1000

// The mix, by k (the row's index): every 100th to the heavy user; of the rest, by k % 20,
// 15 broadcasts over four categories, 3 to one ordinary user, 1 to role user, 1 to role admin.
// Created over the last 7 days, oldest first (inside the 30-day age retention); ids are
// UUIDv7 of that time, as the server makes them; the body is what the store keeps.
const INSERT = `
WITH RECURSIVE ks(k) AS (SELECT CAST(@from AS INTEGER) UNION ALL SELECT k + 1 FROM ks WHERE k + 1 < @to),
r AS (SELECT k, CAST(@start + k * @step AS INTEGER) AS ms, k % 20 AS m FROM ks),
d AS (SELECT k, ms,
  printf('%08x-%04x-7%03x-%04x-%012x', ms >> 16, ms & 65535, abs(random()) % 4096, 32768 + abs(random()) % 16384, abs(random()) % 281474976710656) AS id,
  CASE WHEN k % 100 = 0 THEN 'user'
       WHEN m < 15 THEN json_extract('["system","dashboard","maintenance","health"]', '$[' || (k % 4) || ']')
       WHEN m < 18 THEN 'user' WHEN m < 19 THEN 'dashboard' ELSE 'admin' END AS category,
  CASE WHEN k % 100 = 0 THEN json_array('${HEAVY_USER}')
       WHEN m >= 15 AND m < 18 THEN json_array('u' || ((k * 7919) % ${USERS})) END AS aud_users,
  CASE WHEN k % 100 <> 0 AND m = 18 THEN '["user"]' WHEN k % 100 <> 0 AND m = 19 THEN '["admin"]' END AS aud_roles
  FROM r)
INSERT INTO notifications (id, category, created_ms, expires_ms, collapse_key, aud_users, aud_roles, body)
SELECT id, category, ms, NULL, NULL, aud_users, aud_roles,
  json_object('id', id, 'category', category, 'type', 'info', 'priority', 'normal', 'title', 'history ' || k,
    'message', 'generated for the history benchmark', 'data', json_object('k', k, 'pad', @pad),
    'createdAt', strftime('%Y-%m-%dT%H:%M:%fZ', ms / 1000.0, 'unixepoch'), 'source', 'bench')
FROM d`

/**
 * Writes history-<size>.db into `dir` for each size (0: no rows) and returns { size → path };
 * files already there (a kept --data dir) are reused. The largest size fixes the time step,
 * so every size's rows lie within the same 7 days.
 */
export async function generateHistories (dir, sizes, log = () => {}) {
  const wanted = [...new Set(sizes)].sort((a, b) => a - b)
  const existing = Object.fromEntries(wanted.map(size => [size, join(dir, `history-${size}.db`)]))
  if (Object.values(existing).every(p => existsSync(p))) {
    log(`histories reused from ${dir}`)
    return existing
  }
  const { SqliteStore } = await import(pathToFileURL(join(ROOT, 'dist/src/stores/sqlite-store.js')).href)
  const largest = wanted[wanted.length - 1] || 1
  const work = join(dir, 'growing.db')
  const schema = new SqliteStore(work, { maxCount: RETENTION_MAX_COUNT })
  await schema.init()
  await schema.close()
  const db = new Database(work)
  // A throwaway file: no fsync, a large cache while it is written.
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = OFF')
  db.pragma('cache_size = -262144')
  const insert = db.prepare(INSERT)
  const paths = {}
  let written = 0
  const startMs = Date.now() - WEEK_MS
  for (const size of wanted) {
    const t0 = Date.now()
    if (size > written) {
      db.transaction(() => insert.run({ from: written, to: size, start: startMs, step: WEEK_MS / largest, pad: 'x'.repeat(120) }))()
      written = size
    }
    db.pragma('wal_checkpoint(TRUNCATE)')
    paths[size] = existing[size]
    copyFileSync(work, paths[size])
    log(`history of ${size.toLocaleString('en')} notifications: ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  }
  db.close()
  rmSync(work, { force: true })
  return paths
}
