// The SQLite store keeps the broadcast arm and each role's arm of the history
// queries between writes (src/stores/sqlite-store.ts, SharedArm). These tests
// check that what it answers from them is what it would read from the file:
// after its own appends and retention, after another connection's writes, once
// a kept notification expires, and against the memory store on a mixed history
// longer than the unread cap.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { User } from '../src/schemas.js'
import { UNREAD_COUNT_CAP, type Draft, type HistoryQuery, type HistoryStore, type ReplayRequest } from '../src/stores/history-store.js'
import { MemoryStore } from '../src/stores/memory-store.js'
import { SqliteStore } from '../src/stores/sqlite-store.js'
import { draft } from './store-contract.js'

const dir = mkdtempSync(join(tmpdir(), 'unified-notifications-shared-arms-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const tempFile = () => join(dir, `history-${++files}.db`)

const alice: User = { id: 'alice', role: 'user' }
const bob: User = { id: 'bob', role: 'user' }
const root: User = { id: 'root', role: 'admin' }
const CATEGORIES = ['system', 'dashboard', 'user']

async function open (t: Test, file = tempFile(), maxCount?: number): Promise<SqliteStore> {
  const store = new SqliteStore(file, maxCount === undefined ? {} : { maxCount })
  await store.init()
  t.teardown(() => store.close())
  return store
}

const page = (store: HistoryStore, user: User, over: Partial<HistoryQuery> = {}) =>
  store.query({ user, categories: CATEGORIES, order: 'desc', limit: 10, now: Date.now(), ...over }).then(rows => rows.map(r => r.seq))

t.test('SqliteStore: a count, a page and a replay right after an append include it', async t => {
  const store = await open(t)
  await store.appendMany([{ draft: draft({ category: 'system' }) }, { draft: draft({ category: 'user', audience: { roles: ['user'] } }) }])
  // Counted once: the shared arms are now kept, and the page below is listed from them.
  t.equal(await store.unreadCount(alice, CATEGORIES, Date.now()), 2)
  t.same(await page(store, alice), [2, 1])
  const broadcast = await store.append(draft({ category: 'dashboard' }))
  const toRole = await store.append(draft({ category: 'user', audience: { roles: ['user'] } }))
  t.equal(await store.unreadCount(alice, CATEGORIES, Date.now()), 4, 'both new rows are counted')
  t.same(await page(store, alice), [4, 3, 2, 1], 'both new rows are listed')
  t.same(await page(store, alice, { order: 'asc', after: 2 }), [broadcast.notification.seq, toRole.notification.seq], 'and replayed')
})

t.test('SqliteStore: rows removed by retention leave the kept arms', async t => {
  const store = await open(t, tempFile(), 3)
  await store.appendMany([1, 2, 3].map(() => ({ draft: draft({ category: 'system' }) })))
  t.same(await page(store, alice), [3, 2, 1], 'a page alone reads its arms from the file')
  t.equal(await store.unreadCount(alice, CATEGORIES, Date.now()), 3)
  // The fourth append prunes seq 1 in its own transaction.
  await store.append(draft({ category: 'system' }))
  t.equal(await store.unreadCount(alice, CATEGORIES, Date.now()), 3)
  t.same(await page(store, alice), [4, 3, 2])
  await store.prune(Date.now() + 31 * 24 * 3600 * 1000)
  t.same(await page(store, alice), [], 'pruned by age')
})

t.test('SqliteStore: a kept notification stops counting once it expires, without any write', async t => {
  const store = await open(t)
  const now = Date.now()
  await store.append(draft({ category: 'system', expiresAt: new Date(now + 60_000).toISOString() }))
  await store.append(draft({ category: 'user', audience: { roles: ['user'] }, expiresAt: new Date(now + 120_000).toISOString() }))
  t.equal(await store.unreadCount(alice, CATEGORIES, now), 2)
  t.same(await page(store, alice, { now }), [2, 1])
  t.equal(await store.unreadCount(alice, CATEGORIES, now + 90_000), 1, 'the broadcast expired')
  t.same(await page(store, alice, { now: now + 90_000 }), [2])
  t.equal(await store.unreadCount(alice, CATEGORIES, now + 150_000), 0, 'the role notification expired')
  t.same(await page(store, alice, { now: now + 150_000 }), [])
  // An earlier time than the one the arms were read at is read again, not answered from them.
  t.equal(await store.unreadCount(alice, CATEGORIES, now), 2)
})

t.test("SqliteStore: another connection's write to the same file is seen at the next read", async t => {
  const file = tempFile()
  const reader = await open(t, file)
  const writer = await open(t, file)
  await writer.append(draft({ category: 'system' }))
  t.equal(await reader.unreadCount(alice, CATEGORIES, Date.now()), 1)
  t.same(await page(reader, alice), [1])
  await writer.append(draft({ category: 'user', audience: { roles: ['user'] } }))
  t.equal(await reader.unreadCount(alice, CATEGORIES, Date.now()), 2)
  t.same(await page(reader, alice), [2, 1])
})

t.test('SqliteStore answers as the memory store does on a mixed history longer than the unread cap', async t => {
  const sqlite = await open(t)
  const memory = new MemoryStore()
  await memory.init()
  t.teardown(() => memory.close())
  const now = Date.now()
  const kinds: Array<(k: number) => Partial<Draft>> = [
    k => ({ category: ['system', 'dashboard', 'admin', 'health'][k % 4]! }),
    () => ({ category: 'user', audience: { users: ['alice'] } }),
    () => ({ category: 'dashboard', audience: { roles: ['user'] } }),
    // Both the user and its role: listed and counted once.
    () => ({ category: 'user', audience: { users: ['alice'], roles: ['user'] } }),
    () => ({ category: 'admin', audience: { roles: ['admin'] } }),
    () => ({ category: 'system', audience: { users: ['bob'] } }),
    k => ({ category: 'system', expiresAt: new Date(now + (k % 2 === 0 ? -1000 : 3_600_000)).toISOString() })
  ]
  // Broadcasts first, then every kind, then mostly the role's (some also naming alice), then every kind again:
  // root reaches the cap on broadcasts alone, dave (read up to 1,400) on broadcasts and his role's,
  // alice (read up to 2,000) stays under it, bob's read marks take the uncached statements.
  const drafts: Draft[] = []
  for (let k = 0; k < 2600; k++) {
    const kind = k < 1300 ? 0 : k >= 1500 && k < 2450 ? [2, 2, 2, 3][k % 4]! : k % kinds.length
    drafts.push(draft({ ...kinds[kind]!(k), createdAt: new Date(now - 1000).toISOString() }))
  }
  for (const store of [sqlite, memory] as HistoryStore[]) {
    for (let i = 0; i < drafts.length; i += 500) await store.appendMany(drafts.slice(i, i + 500).map(d => ({ draft: d })))
    // Read state: bob read everything up to 2,100 and a few after; root has no read state.
    await store.markAllRead('bob', 2100)
    await store.markRead('bob', [drafts[2200]!.id, drafts[2400]!.id])
    await store.markAllRead('alice', 2000)
    await store.markAllRead('dave', 1400)
  }
  const same = async (what: string, call: (s: HistoryStore) => Promise<unknown>) => {
    t.same(await call(sqlite), await call(memory), what)
  }
  const dave: User = { id: 'dave', role: 'user' }
  for (const user of [alice, bob, root, dave]) {
    for (const categories of [CATEGORIES, ['system', 'dashboard', 'admin', 'health', 'user']]) {
      const q = (over: Partial<HistoryQuery>) => (s: HistoryStore) =>
        s.query({ user, categories, order: 'desc', limit: 51, now, ...over }).then(rows => rows.map(r => [r.seq, r.read]))
      await same(`${user.id}: unread count`, s => s.unreadCount(user, categories, now))
      await same(`${user.id}: newest page`, q({}))
      await same(`${user.id}: page before 2,000`, q({ before: 2000 }))
      await same(`${user.id}: page deep in history`, q({ before: 300 }))
      await same(`${user.id}: unread page`, q({ unreadOnly: true }))
      await same(`${user.id}: replay of the last 20`, q({ order: 'asc', after: 2580, limit: 100 }))
      await same(`${user.id}: replay from far back`, q({ order: 'asc', after: 100, limit: 100 }))
      await same(`${user.id}: replay between`, q({ order: 'asc', after: 2300, before: 2350, limit: 100 }))
      t.same(await sqlite.connectState(user, categories, now), await separateReads(sqlite, user, categories, now), `${user.id}: connect state`)
      for (const after of [100, 2300, 2580]) {
        const replay = { categories: categories.slice(1), after, limit: 100 }
        t.same(await sqlite.connectState(user, categories, now, replay), await separateReads(sqlite, user, categories, now, replay), `${user.id}: connect state with a replay after ${after}`)
      }
    }
  }
  t.equal(await sqlite.unreadCount(root, ['system', 'dashboard', 'admin', 'health', 'user'], now), UNREAD_COUNT_CAP, 'broadcasts alone reach the cap')
  t.equal(await sqlite.unreadCount(dave, CATEGORIES, now), UNREAD_COUNT_CAP, 'broadcasts and the role reach the cap')
  const alices = await sqlite.unreadCount(alice, CATEGORIES, now)
  t.ok(alices > 100 && alices < UNREAD_COUNT_CAP, `alice's count (${alices}) is below the cap`)
})

/** What connectState() answers in one statement, read one method at a time. */
async function separateReads (store: SqliteStore, user: User, categories: readonly string[], now: number, replay?: ReplayRequest) {
  const reader = await store.split.reader(user.id)
  return {
    lastSeq: await store.lastSeq(),
    prunedThrough: await store.prunedThrough(),
    muted: await store.getMuted(user.id),
    revokedThrough: await store.revokedThrough(user.id, now),
    unread: await store.unreadCount(user, categories, now),
    reader,
    writes: store.split.writes,
    // A reader with marks takes the ordinary query: no page is read along for it.
    ...(replay !== undefined && !reader.marks
      ? { audience: await store.split.audiencePage(user, replay.categories, replay.after, replay.limit, now, reader.upto) }
      : {})
  }
}

t.test('SqliteStore: connectState and handshakeState answer what the separate reads answer (muted, revoked, pruned, read marks)', async t => {
  const store = await open(t, tempFile(), 5)
  const now = Date.now()
  const before = await store.connectState(alice, CATEGORIES, now)
  t.same(before, { lastSeq: 0, prunedThrough: 0, muted: [], revokedThrough: 0, unread: 0, reader: { upto: 0, marks: false }, writes: store.split.writes }, 'an empty history')
  const stored = await store.appendMany([
    { draft: draft({ category: 'system' }) },
    { draft: draft({ category: 'user', audience: { users: ['alice'] } }) },
    { draft: draft({ category: 'user', audience: { users: ['alice', 'bob'] } }) },
    { draft: draft({ category: 'user', audience: { users: ['alice'], roles: ['user'] } }) },
    { draft: draft({ category: 'dashboard', audience: { roles: ['user'] } }) },
    { draft: draft({ category: 'system' }) },
    { draft: draft({ category: 'user', audience: { users: ['alice'] } }) }
  ])
  await store.setMuted('alice', ['dashboard'])
  await store.revokeTokens('alice', 1234, now + 60_000)
  await store.markAllRead('bob', 3)
  await store.markRead('bob', [stored[5]!.notification.id])
  for (const user of [alice, bob, root]) {
    for (const categories of [CATEGORIES, ['system'], []]) {
      t.same(await store.connectState(user, categories, now), await separateReads(store, user, categories, now), `${user.id}, ${categories.join(',') || 'no categories'}`)
      const replay = { categories: ['user', 'dashboard'], after: 3, limit: 2 }
      t.same(await store.connectState(user, categories, now, replay), await separateReads(store, user, categories, now, replay), `${user.id}, ${categories.join(',') || 'no categories'}, with a replay`)
    }
    t.same(await store.handshakeState(user.id, now), { muted: await store.getMuted(user.id), revokedThrough: await store.revokedThrough(user.id, now) }, `${user.id}: handshake state`)
  }
  const state = await store.connectState(alice, CATEGORIES, now)
  t.equal(state.prunedThrough, 2, 'retention (5 rows kept) pruned through seq 2')
  t.same(state.muted, ['dashboard'])
  t.equal(state.revokedThrough, 1234)
  t.equal(state.unread, 5, "alice's rows 3 to 7")
  t.same((await store.connectState(bob, CATEGORIES, now)).reader, { upto: 3, marks: true }, 'bob has a read mark above his read_upto')
})

t.test('SqliteStore: counts stay right for more category sets than the cache keeps', async t => {
  const store = await open(t)
  const all = ['system', 'dashboard', 'admin', 'health', 'maintenance', 'security', 'user']
  await store.appendMany(all.map(category => ({ draft: draft({ category }) })))
  await store.append(draft({ category: 'user', audience: { roles: ['user'] } }))
  // Every non-empty subset of the seven categories, for two roles: 127 broadcast keys and 254 role keys.
  let wrong = 0
  for (let mask = 1; mask < 128; mask++) {
    const categories = all.filter((_, i) => (mask & (1 << i)) !== 0)
    const expected = categories.length + (categories.includes('user') ? 1 : 0)
    if (await store.unreadCount(alice, categories, Date.now()) !== expected) wrong++
    if (await store.unreadCount(root, categories, Date.now()) !== categories.length) wrong++
  }
  t.equal(wrong, 0)
  t.equal(await store.unreadCount(alice, all, Date.now()), 8)
})

t.test("SqliteStore: a connect whose read position is below the shared arms' cap skips its own rows, and reads them when another connection's write made the cache stale", async t => {
  const file = tempFile()
  const store = await open(t, file)
  const broadcasts = UNREAD_COUNT_CAP + 10
  const items: Array<{ draft: Draft }> = []
  for (let i = 0; i < broadcasts; i++) items.push({ draft: draft({ category: 'system' }) })
  for (const id of ['alice', 'dave']) for (let i = 0; i < 20; i++) items.push({ draft: draft({ category: 'user', audience: { users: [id] } }) })
  await store.appendMany(items)
  const now = Date.now()
  const dave: User = { id: 'dave', role: 'user' }
  t.equal((await store.connectState(alice, CATEGORIES, now)).unread, UNREAD_COUNT_CAP, 'the first connect fills the cache')
  t.equal((await store.connectState(alice, CATEGORIES, now)).unread, UNREAD_COUNT_CAP, 'the next one answers from the floor')
  await store.markAllRead('dave', broadcasts)
  t.equal((await store.connectState(dave, CATEGORIES, now)).unread, 20, 'above the floor: its own rows are walked')
  // Another connection appends and its retention keeps 30 rows: the cache alice's floor comes from is stale.
  const other = await open(t, file, 30)
  await other.appendMany([{ draft: draft({ category: 'system' }) }])
  const state = await store.connectState(alice, CATEGORIES, now)
  t.equal(state.unread, 10, "alice's 9 kept rows and the new broadcast, read after all")
  t.equal(state.unread, await store.unreadCount(alice, CATEGORIES, now), 'as the unread count answers')
})
