import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import t from 'tap'
import { MemoryStore } from '../src/stores/memory-store.js'
import { SqliteStore } from '../src/stores/sqlite-store.js'
import { createStore, RedisStore } from '../src/stores/index.js'
import type { User } from '../src/schemas.js'
import { UNREAD_COUNT_CAP } from '../src/stores/history-store.js'
import { draft, historyStoreContract } from './store-contract.js'

const dir = mkdtempSync(join(tmpdir(), 'unified-notifications-stores-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const tempFile = () => join(dir, `history-${++files}.db`)

historyStoreContract(t, 'MemoryStore', async (retention) => {
  const store = new MemoryStore(retention)
  await store.init()
  return store
})

historyStoreContract(t, 'SqliteStore', async (retention) => {
  const store = new SqliteStore(tempFile(), retention)
  await store.init()
  return store
})

const alice: User = { id: 'alice', role: 'user' }
const ALL = ['system', 'dashboard', 'admin', 'health', 'maintenance', 'security', 'user']
const titles = async (store: SqliteStore) =>
  (await store.query({ user: alice, categories: ALL, order: 'asc', limit: 100, now: Date.now() })).map(r => [r.seq, r.title, r.read])

t.test('MemoryStore: every instance is a new log with a new epoch', async t => {
  const a = new MemoryStore()
  const b = new MemoryStore()
  t.not(a.epoch, b.epoch)
})

t.test('SqliteStore: rows, read state and epoch survive close and reopen', async t => {
  const file = tempFile()
  const first = new SqliteStore(file)
  await first.init()
  const epoch = first.epoch
  const a = await first.append(draft({ title: 'a' }), 'key-a')
  await first.append(draft({ title: 'b', audience: { users: ['alice'] } }))
  await first.append(draft({ title: 'c' }))
  await first.markRead('alice', [a.notification.id])
  await first.markAllRead('bob', 2)
  await first.close()

  const second = new SqliteStore(file)
  t.teardown(() => second.close())
  await second.init()
  t.equal(second.epoch, epoch, 'same file, same epoch')
  t.equal(await second.lastSeq(), 3)
  t.same(await titles(second), [[1, 'a', true], [2, 'b', false], [3, 'c', false]])
  t.equal(await second.unreadCount({ id: 'bob', role: 'user' }, ALL, Date.now()), 1, "bob's markAllRead survived")
  const dup = await second.append(draft({ title: 'a again' }), 'key-a')
  t.equal(dup.duplicate, true, 'idempotency keys survive')
  t.equal(dup.notification.id, a.notification.id)
  const d = await second.append(draft({ title: 'd' }))
  t.equal(d.notification.seq, 4, 'seq keeps growing')
})

t.test('SqliteStore: a new file is a new epoch', async t => {
  const a = new SqliteStore(tempFile())
  const b = new SqliteStore(tempFile())
  t.teardown(async () => { await a.close(); await b.close() })
  await a.init()
  await b.init()
  t.not(a.epoch, b.epoch)
})

t.test('SqliteStore: seq is never reused when the newest row was deleted by a collapse', async t => {
  const file = tempFile()
  const first = new SqliteStore(file)
  await first.init()
  await first.append(draft({ title: 'other' }))
  await first.append(draft({ title: 'p1', collapseKey: 'op' }))
  // The newest row (seq 2) is deleted by the collapse in the same transaction that inserts its replacement.
  const p2 = await first.append(draft({ title: 'p2', collapseKey: 'op' }))
  t.equal(p2.notification.seq, 3, 'not 2 again')
  t.same(await titles(first), [[1, 'other', false], [3, 'p2', false]])
  await first.close()

  const second = new SqliteStore(file)
  await second.init()
  t.equal(await second.lastSeq(), 3)
  const p3 = await second.append(draft({ title: 'p3', collapseKey: 'op' }))
  t.equal(p3.notification.seq, 4, 'after a restart, seq continues from the highest ever assigned')
  t.same(await titles(second), [[1, 'other', false], [4, 'p3', false]])
  await second.close()

  // The newest row deleted outright (expired), then a restart: still no reuse.
  const third = new SqliteStore(file)
  await third.init()
  await third.append(draft({ title: 'gone', expiresAt: new Date(Date.now() - 1000).toISOString() }))
  await third.prune(Date.now())
  t.same(await titles(third), [[1, 'other', false], [4, 'p3', false]], 'the expired row is deleted')
  await third.close()
  const fourth = new SqliteStore(file)
  t.teardown(() => fourth.close())
  await fourth.init()
  t.equal(await fourth.lastSeq(), 5)
  t.equal((await fourth.append(draft({ title: 'next' }))).notification.seq, 6)
})

t.test('SqliteStore: prunedThrough survives a restart', async t => {
  const file = tempFile()
  const first = new SqliteStore(file, { maxCount: 2 })
  await first.init()
  for (let i = 0; i < 5; i++) await first.append(draft())
  await first.prune(Date.now())
  t.equal(await first.prunedThrough(), 3)
  await first.close()
  const second = new SqliteStore(file, { maxCount: 2 })
  t.teardown(() => second.close())
  await second.init()
  t.equal(await second.prunedThrough(), 3)
})

t.test('SqliteStore: the database is in WAL journal mode', async t => {
  const file = tempFile()
  const store = new SqliteStore(file)
  await store.init()
  await store.append(draft())
  const db = new Database(file, { readonly: true })
  t.teardown(async () => { db.close(); await store.close() })
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal')
})

t.test('SqliteStore: used before init or after close, it throws instead of answering', async t => {
  const store = new SqliteStore(tempFile())
  await store.init()
  await store.close()
  await t.rejects(store.append(draft()))
})

t.test('SqliteStore: creates the directory of its file', async t => {
  const file = join(dir, 'nested', 'deeper', 'h.db')
  const store = new SqliteStore(file)
  t.teardown(() => store.close())
  await store.init()
  t.equal((await store.append(draft())).notification.seq, 1)
})

t.test('SqliteStore: audience rows follow their notification through collapse, retention and expiry', async t => {
  const file = tempFile()
  const store = new SqliteStore(file, { maxCount: 4, maxAgeMs: 60_000 })
  await store.init()
  const db = new Database(file, { readonly: true })
  t.teardown(async () => { db.close(); await store.close() })
  // Audience entries wherever they are kept: the audience table, or the row itself for one user alone (schema 4).
  const audience = () => db.prepare(`SELECT kind, value, seq FROM notification_audience
    UNION ALL SELECT 0, aud_user, seq FROM notifications WHERE aud_user IS NOT NULL ORDER BY 3, 1, 2`).all()
  const now = Date.now()
  await store.append(draft({ title: 'old', createdAt: new Date(now - 3_600_000).toISOString(), audience: { users: ['alice'] } }))
  await store.append(draft({ title: 'p1', collapseKey: 'op', audience: { users: ['alice', 'bob'], roles: ['user'] } }))
  await store.append(draft({ title: 'everyone' }))
  await store.append(draft({ title: 'short', expiresAt: new Date(now + 1000).toISOString(), audience: { roles: ['admin'] } }))
  t.same(audience(), [
    { kind: 0, value: 'alice', seq: 2 }, { kind: 0, value: 'bob', seq: 2 }, { kind: 1, value: 'user', seq: 2 },
    { kind: 1, value: 'admin', seq: 4 }
  ], 'one row per named user and role; none for a broadcast; old (seq 1) went by age on the next append')
  await store.append(draft({ title: 'p2', collapseKey: 'op', audience: { users: ['carol'] } }))
  t.same(audience().map(r => (r as { seq: number }).seq), [4, 5], 'the collapsed row took its audience with it')
  await store.prune(now + 2000)
  t.same(audience(), [{ kind: 0, value: 'carol', seq: 5 }], 'expiry')
  for (let i = 0; i < 4; i++) await store.append(draft({ audience: { roles: ['user'] } }))
  await store.prune(now + 2000)
  t.same(audience().map(r => (r as { seq: number }).seq), [6, 7, 8, 9], 'retention by count')
})

// The schema before the audience table (schema 1), as a fixture: a file it wrote must open with its audiences intact.
const SCHEMA_1 = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notifications (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  id           TEXT NOT NULL UNIQUE,
  category     TEXT NOT NULL,
  created_ms   INTEGER NOT NULL,
  expires_ms   INTEGER,
  collapse_key TEXT,
  aud_users    TEXT,
  aud_roles    TEXT,
  body         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_category_seq ON notifications (category, seq);
CREATE UNIQUE INDEX IF NOT EXISTS notifications_collapse_key ON notifications (collapse_key) WHERE collapse_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, notification TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS read_marks (user_id TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (user_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS read_upto (user_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
`

t.test('SqliteStore: a file written by the previous schema is backfilled once and keeps its entitlements', async t => {
  const file = tempFile()
  const old = new Database(file)
  old.pragma('journal_mode = WAL')
  old.exec(SCHEMA_1)
  old.prepare("INSERT INTO meta (key, value) VALUES ('epoch', 'old-epoch')").run()
  const insert = old.prepare(`INSERT INTO notifications (id, category, created_ms, expires_ms, collapse_key, aud_users, aud_roles, body)
    VALUES (@id, @category, @created_ms, @expires_ms, @collapse_key, @aud_users, @aud_roles, @body)`)
  const rows: Array<[string, string, string | null, string | null]> = [
    ['everyone', 'dashboard', null, null],
    ['alice only', 'dashboard', '["alice"]', null],
    ['bob only', 'dashboard', '["bob"]', null],
    ['admins', 'dashboard', null, '["admin"]'],
    ['bob or users', 'dashboard', '["bob"]', '["user"]'],
    ['alice, admin category', 'admin', '["alice"]', null],
    ['alice and users', 'system', '["alice"]', '["user"]']
  ]
  const created = Date.now()
  for (const [title, category, users, roles] of rows) {
    const d = draft({ title, category })
    insert.run({ id: d.id, category, created_ms: created, expires_ms: null, collapse_key: null, aud_users: users, aud_roles: roles, body: JSON.stringify(d) })
  }
  old.prepare('INSERT INTO read_upto (user_id, seq) VALUES (?, ?)').run('bob', 3)
  old.close()

  const store = new SqliteStore(file)
  await store.init()
  t.equal(store.epoch, 'old-epoch', 'the same log')
  const visible = ['system', 'dashboard', 'health', 'maintenance', 'user']
  const list = async (user: User, over: { unreadOnly?: boolean, order?: 'asc' | 'desc' } = {}) =>
    (await store.query({ user, categories: visible, order: 'asc', limit: 100, now: Date.now(), ...over })).map(r => [r.seq, r.title, r.read])
  t.same(await list(alice), [[1, 'everyone', false], [2, 'alice only', false], [5, 'bob or users', false], [7, 'alice and users', false]])
  const bob: User = { id: 'bob', role: 'user' }
  t.same(await list(bob), [[1, 'everyone', true], [3, 'bob only', true], [5, 'bob or users', false], [7, 'alice and users', false]])
  t.same(await list(bob, { unreadOnly: true, order: 'desc' }), [[7, 'alice and users', false], [5, 'bob or users', false]])
  t.same(await list({ id: 'root', role: 'admin' }), [[1, 'everyone', false], [4, 'admins', false]])
  t.equal(await store.unreadCount(alice, visible, Date.now()), 4)
  t.equal(await store.unreadCount(bob, visible, Date.now()), 2)
  t.equal(await store.unreadCount(alice, [...visible, 'admin'], Date.now()), 5)
  const added = await store.append(draft({ title: 'new for alice', audience: { users: ['alice'] } }))
  t.equal(added.notification.seq, 8, 'seq continues')
  await store.close()

  const db = new Database(file)
  t.teardown(() => db.close())
  t.equal(db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get(), '4')
  t.equal(db.prepare("SELECT COUNT(*) FROM sqlite_master WHERE name = 'notifications_category_seq'").pluck().get(), 0, 'the index no query uses is gone')
  t.equal(db.prepare('SELECT COUNT(*) FROM notification_audience').pluck().get(), 8, '8 backfilled; the new one, for alice alone, is kept in its row')
  t.equal(db.prepare('SELECT aud_user FROM notifications WHERE seq = 8').pluck().get(), 'alice')
  // Reopening does not backfill again: rows removed by hand stay removed.
  db.prepare('DELETE FROM notification_audience WHERE seq = 2').run()
  const again = new SqliteStore(file)
  t.teardown(() => again.close())
  await again.init()
  t.equal(db.prepare('SELECT COUNT(*) FROM notification_audience').pluck().get(), 7, 'the backfill ran once')
  t.equal(await again.unreadCount(alice, visible, Date.now()), 4, "'alice only' is gone with its audience row, 'new for alice' came")
})

// Schema 3's audience triggers, as a fixture: they put every audience, one user included, in notification_audience.
const SCHEMA_3_TRIGGERS = `
DROP TRIGGER notifications_audience_insert; DROP TRIGGER notifications_audience_delete;
CREATE TRIGGER notifications_audience_insert AFTER INSERT ON notifications
  WHEN NEW.aud_users IS NOT NULL OR NEW.aud_roles IS NOT NULL
BEGIN
  INSERT OR IGNORE INTO notification_audience (kind, value, seq) SELECT 0, value, NEW.seq FROM json_each(NEW.aud_users);
  INSERT OR IGNORE INTO notification_audience (kind, value, seq) SELECT 1, value, NEW.seq FROM json_each(NEW.aud_roles);
END;
CREATE TRIGGER notifications_audience_delete AFTER DELETE ON notifications
BEGIN
  DELETE FROM notification_audience WHERE seq = OLD.seq;
END;
`

t.test('SqliteStore: a schema 3 file gets the one-user column, keeps its audiences, and rows of an older writer still get theirs', async t => {
  const file = tempFile()
  const fresh = new SqliteStore(file)
  await fresh.init()
  await fresh.close()
  // Turn the fresh file back into schema 3: no column, no index, the old triggers.
  const old = new Database(file)
  old.exec('DROP INDEX notifications_user;' + SCHEMA_3_TRIGGERS + 'ALTER TABLE notifications DROP COLUMN aud_user;')
  old.prepare("UPDATE meta SET value = '3' WHERE key = 'schema_version'").run()
  const insert = old.prepare(`INSERT INTO notifications (id, category, created_ms, expires_ms, collapse_key, aud_users, aud_roles, body)
    VALUES (?, 'dashboard', ?, NULL, ?, ?, NULL, ?)`)
  const oldRow = (title: string, users: string, collapseKey: string | null = null) => {
    const d = draft({ title, category: 'dashboard' })
    insert.run(d.id, Date.now(), collapseKey, users, JSON.stringify(d))
  }
  oldRow('alice only, schema 3', '["alice"]', 'k')
  oldRow('bob only, schema 3', '["bob"]')
  old.close()

  const store = new SqliteStore(file)
  t.teardown(() => store.close())
  await store.init()
  const db = new Database(file)
  t.teardown(() => db.close())
  t.equal(db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get(), '4')
  await store.append(draft({ title: 'alice only, schema 4', category: 'dashboard', audience: { users: ['alice'] } }))
  t.same(db.prepare('SELECT kind, value, seq FROM notification_audience ORDER BY seq').all(),
    [{ kind: 0, value: 'alice', seq: 1 }, { kind: 0, value: 'bob', seq: 2 }], 'the new one is in its row, not in the audience table')
  t.same((await titles(store)).map(r => r[1]), ['alice only, schema 3', 'alice only, schema 4'])
  t.equal(await store.unreadCount(alice, ALL, Date.now()), 2)

  // A server of schema 3 on the same file writes no aud_user: the replaced trigger still indexes its audience.
  const older = db.prepare(`INSERT INTO notifications (id, category, created_ms, aud_users, body) VALUES (?, 'dashboard', ?, '["alice"]', ?)`)
  const d = draft({ title: 'alice only, older writer', category: 'dashboard' })
  older.run(d.id, Date.now(), JSON.stringify(d))
  t.same((await titles(store)).map(r => r[1]), ['alice only, schema 3', 'alice only, schema 4', 'alice only, older writer'])
  // A collapse removes the schema 3 row and its audience row, and keeps the new one in the row.
  await store.append(draft({ title: 'alice collapsed', category: 'dashboard', collapseKey: 'k', audience: { users: ['alice'] } }))
  t.same((await titles(store)).map(r => r[1]), ['alice only, schema 4', 'alice only, older writer', 'alice collapsed'])
  t.same(db.prepare('SELECT seq FROM notification_audience WHERE value = \'alice\'').pluck().all(), [4])
})

t.test('SqliteStore answers every query like MemoryStore on a mixed history', async t => {
  const memory = new MemoryStore()
  const sqlite = new SqliteStore(tempFile())
  await sqlite.init()
  t.teardown(() => sqlite.close())
  const categories = ['system', 'dashboard', 'admin', 'security']
  const users = ['alice', 'bob', 'carol', 'root']
  const roles = ['user', 'admin', 'viewer']
  let x = 12345
  const rand = (n: number) => { x = (x * 1103515245 + 12345) % 2147483648; return x % n }
  const pick = <T>(list: readonly T[]) => list[rand(list.length)]!
  const now = Date.now()
  const items = Array.from({ length: 400 }, (_, i) => {
    // 4: one user alone, kept in the row itself (schema 4).
    const aud = rand(5)
    return {
      draft: draft({
        title: `n${i}`,
        category: pick(categories),
        ...(rand(10) === 0 ? { expiresAt: new Date(now + (rand(2) === 0 ? -1000 : 3_600_000)).toISOString() } : {}),
        ...(rand(8) === 0 ? { collapseKey: `k${rand(20)}` } : {}),
        ...(aud === 0
          ? {}
          : aud === 4
            ? { audience: { users: [pick(users)] } }
            : { audience: { ...(aud !== 2 ? { users: [pick(users), pick(users)] } : {}), ...(aud !== 1 ? { roles: [pick(roles)] } : {}) } })
      })
    }
  })
  for (const store of [memory, sqlite]) {
    await store.appendMany(items)
    await store.markAllRead('bob', 150)
    await store.markRead('bob', items.filter((_, i) => i % 7 === 0).map(i => i.draft.id))
    await store.markRead('alice', items.filter((_, i) => i % 3 === 0).map(i => i.draft.id))
  }
  const people: User[] = [{ id: 'alice', role: 'user' }, { id: 'bob', role: 'user' }, { id: 'carol', role: 'viewer' }, { id: 'root', role: 'admin' }]
  const sets = [categories, ['system', 'dashboard'], ['admin'], []]
  let compared = 0
  let rows = 0
  for (const user of people) {
    for (const cats of sets) {
      t.equal(await sqlite.unreadCount(user, cats, now), await memory.unreadCount(user, cats, now), `unread ${user.id} ${cats.join(',')}`)
      for (const order of ['asc', 'desc'] as const) {
        for (const unreadOnly of [false, true]) {
          for (const [after, before, limit] of [[undefined, undefined, 1000], [undefined, undefined, 7], [100, undefined, 13], [undefined, 300, 9], [50, 250, 1000], [390, undefined, 5]] as const) {
            const q = { user, categories: cats, order, unreadOnly, limit, now, ...(after !== undefined ? { after } : {}), ...(before !== undefined ? { before } : {}) }
            const a = await sqlite.query(q)
            const b = await memory.query(q)
            rows += a.length
            if (JSON.stringify(a) !== JSON.stringify(b)) t.same(a, b, JSON.stringify({ ...q, user: user.id }))
            compared++
          }
        }
      }
    }
  }
  t.equal(compared, 4 * 4 * 2 * 2 * 6, `${compared} queries compared`)
  t.ok(rows > 500, `${rows} rows compared`)
  t.ok(UNREAD_COUNT_CAP > 400, 'the counts above were exact')
})

t.test('createStore picks a backend from its spec', async t => {
  const memory = new MemoryStore()
  t.equal(await createStore(memory), memory, 'an instance is used as is')
  t.type(await createStore('memory'), MemoryStore)
  t.type(await createStore(`sqlite:${tempFile()}`), SqliteStore)
  t.type(await createStore('redis://localhost:6379/2', { redisPrefix: 'x:' }), RedisStore, 'not connected until init()')
  t.type(await createStore('rediss://localhost:6380'), RedisStore)
  await t.rejects(createStore('sqlite:'), TypeError)
  await t.rejects(createStore('postgres://x'), TypeError)
})

t.test('SqliteStore group commit: concurrent appends get seqs in call order, and a failing one fails alone', async t => {
  const store = new SqliteStore(tempFile())
  await store.init()
  t.teardown(() => store.close())
  const taken = await store.append(draft({ title: 'first' }))
  // All issued in one turn of the event loop: written in one transaction.
  const pending = [
    store.append(draft({ title: 'b' })),
    store.append(draft({ id: taken.notification.id, title: 'duplicate id' })),
    store.appendMany([{ draft: draft({ title: 'c1' }) }, { draft: draft({ title: 'c2' }) }]),
    store.append(draft({ title: 'd' }))
  ]
  const settled = await Promise.allSettled(pending)
  t.same(settled.map(s => s.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled'])
  const seqs = [
    (settled[0] as PromiseFulfilledResult<{ notification: { seq: number } }>).value.notification.seq,
    ...(settled[2] as PromiseFulfilledResult<Array<{ notification: { seq: number } }>>).value.map(r => r.notification.seq),
    (settled[3] as PromiseFulfilledResult<{ notification: { seq: number } }>).value.notification.seq
  ]
  t.same(seqs, [...seqs].sort((a, b) => a - b), 'seqs increase in call order')
  t.same((await titles(store)).map(r => r[1]), ['first', 'b', 'c1', 'c2', 'd'], 'everything but the failing append is stored')
})

t.test('SqliteStore: an append still queued when the store closes is written before the file closes', async t => {
  const file = tempFile()
  const store = new SqliteStore(file)
  await store.init()
  const queued = store.append(draft({ title: 'queued' }))
  await store.close()
  t.equal((await queued).notification.title, 'queued')
  const reopened = new SqliteStore(file)
  await reopened.init()
  t.teardown(() => reopened.close())
  t.same((await titles(reopened)).map(r => r[1]), ['queued'])
})

t.test('SqliteStore: muted categories and token revocations survive a restart', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'un-settings-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'n.db')
  const first = new SqliteStore(file)
  await first.init()
  const until = Date.now() + 3_600_000
  await first.setMuted('alice', ['maintenance'])
  await first.revokeTokens('alice', 1234, until)
  await first.close()
  const second = new SqliteStore(file)
  await second.init()
  t.teardown(() => second.close())
  t.same(await second.getMuted('alice'), ['maintenance'])
  t.equal(await second.revokedThrough('alice', Date.now()), 1234)
})
