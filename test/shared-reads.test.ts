// The replay pages that connecting clients share (src/shared-reads.ts) must
// answer exactly what the store's own query answers, and forget what they hold
// at every write to the log; the unread counts beside them are the store's.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { LocalBroker } from '../src/brokers/local-broker.js'
import { NotificationManager } from '../src/manager.js'
import type { User } from '../src/schemas.js'
import { SharedReads } from '../src/shared-reads.js'
import { SqliteStore } from '../src/stores/sqlite-store.js'

const dir = mkdtempSync(join(tmpdir(), 'unified-notifications-shared-reads-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

const logger = pino({ level: 'silent' })
const alice: User = { id: 'alice', role: 'user' }
const bob: User = { id: 'bob', role: 'user' }
const vic: User = { id: 'vic', role: 'viewer' }
const CATEGORIES = ['system', 'dashboard', 'maintenance', 'user']

async function setup (t: Test) {
  const store = new SqliteStore(join(dir, `history-${++files}.db`))
  const manager = new NotificationManager({ store, broker: new LocalBroker(), logger })
  await manager.start()
  t.teardown(() => manager.close())
  return { manager, store }
}

/** What a replay writes, read back: seq, title and read flag of each frame. */
const replayed = async (manager: NotificationManager, user: User, after: number, limit = 100) =>
  (await manager.replayPage(user, CATEGORIES, after, limit)).map(i => {
    const n = JSON.parse(i.frame.text).notification
    t.equal(n.seq, i.seq)
    return [n.seq, n.title, n.read]
  })

/** The store's own answer, without the shared reads. */
const queried = async (store: SqliteStore, user: User, after: number, limit = 100) =>
  (await store.query({ user, categories: CATEGORIES, after, order: 'asc', limit, now: Date.now() })).map(n => [n.seq, n.title, n.read])

t.test('a client resuming after an append gets it: the shared page is read again after every write', async t => {
  const { manager } = await setup(t)
  await manager.publish({ category: 'system', title: 'a' })
  t.same(await replayed(manager, alice, 0), [[1, 'a', false]])
  t.same(await replayed(manager, bob, 0), [[1, 'a', false]], 'a second reader, from the shared page')
  await manager.publish({ category: 'system', title: 'b' })
  t.same(await replayed(manager, alice, 0), [[1, 'a', false], [2, 'b', false]])
  t.same(await replayed(manager, bob, 1), [[2, 'b', false]])
  t.equal(await manager.unread(bob, []), 2)
  await manager.publish({ category: 'dashboard', title: 'c' })
  t.equal(await manager.unread(bob, []), 3, 'the count too')
})

t.test('shared pages and counts answer what the store answers, for every kind of reader', async t => {
  const { manager, store } = await setup(t)
  await manager.publish({ category: 'system', title: 'everyone' })
  await manager.publish({ category: 'system', title: 'to alice', audience: { users: ['alice'] } })
  await manager.publish({ category: 'maintenance', title: 'to viewers', audience: { roles: ['viewer'] } })
  await manager.publish({ category: 'dashboard', title: 'to users', audience: { roles: ['user'] } })
  await manager.publish({ category: 'admin', title: 'admins only' })
  await manager.publish({ category: 'dashboard', title: 'to alice and users', audience: { users: ['alice'], roles: ['user'] } })
  await manager.publish({ category: 'user', title: 'later' })
  // bob read everything up to 3 (no marks), vic marked one read (marks: the ordinary query answers).
  await manager.markRead(bob, { all: true })
  await manager.publish({ category: 'system', title: 'after bob read' })
  const [first] = await store.query({ user: vic, categories: ['system'], order: 'asc', limit: 1, now: Date.now() })
  await manager.markRead(vic, { ids: [first!.id] })
  for (const user of [alice, bob, vic]) {
    for (const after of [0, 2, 5, 8]) {
      t.same(await replayed(manager, user, after), await queried(store, user, after), `${user.id} after ${after}`)
      t.same(await replayed(manager, user, after, 2), await queried(store, user, after, 2), `${user.id} after ${after}, a page of 2`)
    }
    const categories = manager.policy.visibleTo(user.role)
    t.equal(await manager.unread(user, []), await store.unreadCount(user, categories, Date.now()), `${user.id}: unread count`)
  }
  t.same((await replayed(manager, bob, 0)).map(r => r[2]), [true, true, true, true, false], "bob's read flags from his read position")
})

t.test('a shared page stops listing a row once it expires, with no write in between', async t => {
  const { manager, store } = await setup(t)
  const expiresAt = new Date(Date.now() + 60_000).toISOString()
  await manager.publish({ category: 'system', title: 'lasting' })
  await manager.publish({ category: 'system', title: 'expiring', expiresAt })
  const shared = new SharedReads(store.split)
  const now = Date.now()
  const later = Date.parse(expiresAt) + 1
  t.equal((await shared.page(alice, CATEGORIES, 0, 10, now))!.length, 2)
  t.equal((await shared.page(alice, CATEGORIES, 0, 10, later))!.length, 1, 'no write in between: the expiry alone')
})

t.test('a reader with read marks takes the ordinary query', async t => {
  const { manager, store } = await setup(t)
  const { notification } = await manager.publish({ category: 'system', title: 'a' })
  await manager.publish({ category: 'system', title: 'b' })
  await manager.markRead(alice, { ids: [notification.id] })
  const shared = new SharedReads(store.split)
  t.equal(await shared.page(alice, CATEGORIES, 0, 10, Date.now()), undefined)
  t.same(await replayed(manager, alice, 0), [[1, 'a', true], [2, 'b', false]])
  t.equal(await manager.unread(alice, []), 1)
})
