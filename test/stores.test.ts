import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import t from 'tap'
import { MemoryStore } from '../src/stores/memory-store.js'
import { SqliteStore } from '../src/stores/sqlite-store.js'
import { createStore } from '../src/stores/index.js'
import type { User } from '../src/schemas.js'
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

t.test('createStore picks a backend from its spec', async t => {
  const memory = new MemoryStore()
  t.equal(createStore(memory), memory, 'an instance is used as is')
  t.type(createStore('memory'), MemoryStore)
  t.type(createStore(`sqlite:${tempFile()}`), SqliteStore)
  t.throws(() => createStore('sqlite:'), TypeError)
  t.throws(() => createStore('redis://localhost:6379'), TypeError)
  t.throws(() => createStore('postgres://x'), TypeError)
})
