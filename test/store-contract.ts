// The HistoryStore contract, written once and run against every backend
// (test/stores.test.ts). Not a .test.ts file: it runs only through its callers.
import { randomUUID } from 'node:crypto'
import type { Test } from 'tap'
import type { StoredNotification, User } from '../src/schemas.js'
import { UNREAD_COUNT_CAP, type Draft, type HistoryStore, type Retention } from '../src/stores/history-store.js'

export type StoreFactory = (retention?: Partial<Retention>) => Promise<HistoryStore>

const ALL = ['system', 'dashboard', 'admin', 'health', 'maintenance', 'security', 'user']
const alice: User = { id: 'alice', role: 'user' }
const bob: User = { id: 'bob', role: 'user' }
const root: User = { id: 'root', role: 'admin' }
const DAY = 24 * 3600 * 1000

export function draft (over: Partial<Draft> = {}): Draft {
  return {
    id: randomUUID(),
    category: 'dashboard',
    type: 'info',
    priority: 'normal',
    title: 'title',
    message: '',
    createdAt: new Date().toISOString(),
    source: 'app',
    ...over
  }
}

/** Runs the shared contract against `factory`, which returns an initialised store (closed here in teardown). */
export function historyStoreContract (t: Test, name: string, factory: StoreFactory): void {
  const open = async (t: Test, retention?: Partial<Retention>): Promise<HistoryStore> => {
    const store = await factory(retention)
    t.teardown(() => store.close())
    return store
  }
  const query = (store: HistoryStore, over: Partial<Parameters<HistoryStore['query']>[0]> = {}) =>
    store.query({ user: alice, categories: ALL, order: 'asc', limit: 100, now: Date.now(), ...over })
  const seqs = (rows: Array<{ seq: number }>) => rows.map(r => r.seq)
  const appendN = async (store: HistoryStore, n: number, over: Partial<Draft> = {}): Promise<StoredNotification[]> => {
    const out: StoredNotification[] = []
    for (let i = 0; i < n; i++) out.push((await store.append(draft({ title: `n${i + 1}`, ...over }))).notification)
    return out
  }

  t.test(`${name}: epoch is a non-empty string`, async t => {
    const store = await open(t)
    t.type(store.epoch, 'string')
    t.ok(store.epoch.length > 0)
  })

  t.test(`${name}: an empty store`, async t => {
    const store = await open(t)
    t.equal(await store.lastSeq(), 0)
    t.equal(await store.prunedThrough(), 0)
    t.same(await query(store), [])
    t.equal(await store.unreadCount(alice, ALL, Date.now()), 0)
    await t.resolves(store.ping())
  })

  t.test(`${name}: seq is strictly increasing from 1 and lastSeq follows`, async t => {
    const store = await open(t)
    const stored = await appendN(store, 5)
    t.same(seqs(stored), [1, 2, 3, 4, 5])
    t.equal(await store.lastSeq(), 5)
    const first = stored[0]!
    t.equal(first.title, 'n1')
    t.equal(first.category, 'dashboard')
    const rows = await query(store)
    t.same(seqs(rows), [1, 2, 3, 4, 5])
    t.same(rows.map(r => r.title), ['n1', 'n2', 'n3', 'n4', 'n5'])
  })

  t.test(`${name}: stored notifications round-trip every field, and the audience never reaches a reader`, async t => {
    const store = await open(t)
    const d = draft({
      type: 'warning',
      priority: 'high',
      message: 'body',
      data: { n: 1, nested: { list: [1, 2] } },
      action: { url: 'https://example.com', label: 'Open' },
      expiresAt: new Date(Date.now() + DAY).toISOString(),
      collapseKey: 'k',
      source: 'api',
      audience: { users: ['alice'], roles: ['admin'] }
    })
    const { notification, duplicate } = await store.append(d)
    t.equal(duplicate, false)
    t.same(notification, { ...d, seq: 1 }, 'append returns the draft with its seq, audience included')
    const [row] = await query(store)
    const { audience: _audience, ...pub } = d
    t.same(row, { ...pub, seq: 1, read: false })
    t.notOk(row && 'audience' in row, 'no audience in query results')
  })

  t.test(`${name}: a repeated idempotency key returns the first notification and stores nothing`, async t => {
    const store = await open(t)
    const first = await store.append(draft({ title: 'first' }), 'key-1')
    t.equal(first.duplicate, false)
    const again = await store.append(draft({ title: 'second' }), 'key-1')
    t.equal(again.duplicate, true)
    t.same(again.notification, first.notification, 'the first notification, not the second draft')
    t.equal(await store.lastSeq(), 1, 'no seq consumed')
    t.same((await query(store)).map(r => r.title), ['first'])
    const other = await store.append(draft({ title: 'other' }), 'key-2')
    t.equal(other.duplicate, false)
    t.equal(other.notification.seq, 2)
    const nokey = await store.append(draft({ title: 'no key' }))
    t.equal(nokey.notification.seq, 3, 'without a key nothing is deduplicated')
  })

  t.test(`${name}: appendMany stores in order`, async t => {
    const store = await open(t)
    await store.append(draft({ title: 'before' }))
    const results = await store.appendMany([
      { draft: draft({ title: 'a' }) },
      { draft: draft({ title: 'b' }), idempotencyKey: 'kb' },
      { draft: draft({ title: 'c' }) }
    ])
    t.same(results.map(r => [r.notification.title, r.notification.seq, r.duplicate]), [['a', 2, false], ['b', 3, false], ['c', 4, false]])
    t.same((await query(store)).map(r => r.title), ['before', 'a', 'b', 'c'])
    const again = await store.appendMany([{ draft: draft({ title: 'b2' }), idempotencyKey: 'kb' }, { draft: draft({ title: 'd' }) }])
    t.same(again.map(r => [r.notification.title, r.notification.seq, r.duplicate]), [['b', 3, true], ['d', 5, false]])
    const inBatch = await store.appendMany([{ draft: draft({ title: 'e' }), idempotencyKey: 'ke' }, { draft: draft({ title: 'e2' }), idempotencyKey: 'ke' }])
    t.same(inBatch.map(r => [r.notification.title, r.duplicate]), [['e', false], ['e', true]], 'a key repeated inside one batch is a duplicate of the earlier item')
    t.equal(await store.lastSeq(), 6)
  })

  t.test(`${name}: appendMany is all or nothing when an item fails`, async t => {
    const store = await open(t)
    await store.append(draft({ title: 'kept' }))
    // A draft that cannot be read stands for any failure in the middle of a batch.
    const broken = draft({ title: 'broken' })
    Object.defineProperty(broken, 'title', { enumerable: true, get () { throw new Error('unreadable draft') } })
    await t.rejects(store.appendMany([
      { draft: draft({ title: 'a', collapseKey: 'ck' }), idempotencyKey: 'ka' },
      { draft: broken },
      { draft: draft({ title: 'c' }) }
    ]), /unreadable draft/)
    t.same((await query(store)).map(r => r.title), ['kept'], 'nothing of the batch is stored')
    t.equal(await store.lastSeq(), 1, 'no seq consumed by the failed batch')
    const retry = await store.append(draft({ title: 'a again' }), 'ka')
    t.equal(retry.duplicate, false, 'the idempotency key of the failed batch was not kept')
    t.equal(retry.notification.seq, 2)
    const collapsed = await store.append(draft({ title: 'ck' , collapseKey: 'ck' }))
    t.same((await query(store)).map(r => r.title), ['kept', 'a again', 'ck'])
    t.equal(collapsed.notification.seq, 3)
  })

  t.test(`${name}: a newer notification with the same collapseKey replaces the older in history`, async t => {
    const store = await open(t)
    await store.append(draft({ title: 'p10', collapseKey: 'op:1' }))
    await store.append(draft({ title: 'other' }))
    await store.append(draft({ title: 'q', collapseKey: 'op:2' }))
    const last = await store.append(draft({ title: 'p50', collapseKey: 'op:1' }))
    t.equal(last.notification.seq, 4, 'the replacement gets a new seq')
    const rows = await query(store)
    t.same(rows.map(r => [r.seq, r.title]), [[2, 'other'], [3, 'q'], [4, 'p50']])
    await store.append(draft({ title: 'p100', collapseKey: 'op:1' }))
    t.same((await query(store, { order: 'desc' })).map(r => r.title), ['p100', 'q', 'other'])
    t.equal(await store.lastSeq(), 5)
  })

  t.test(`${name}: query asc/desc with after, before and limit`, async t => {
    const store = await open(t)
    await appendN(store, 10)
    t.same(seqs(await query(store)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    t.same(seqs(await query(store, { order: 'desc' })), [10, 9, 8, 7, 6, 5, 4, 3, 2, 1])
    t.same(seqs(await query(store, { after: 7 })), [8, 9, 10], 'after is exclusive')
    t.same(seqs(await query(store, { after: 2, limit: 3 })), [3, 4, 5], 'asc + limit takes the oldest first')
    t.same(seqs(await query(store, { order: 'desc', before: 5 })), [4, 3, 2, 1], 'before is exclusive')
    t.same(seqs(await query(store, { order: 'desc', limit: 3 })), [10, 9, 8], 'desc + limit takes the newest')
    t.same(seqs(await query(store, { order: 'desc', before: 8, limit: 2 })), [7, 6])
    t.same(seqs(await query(store, { after: 3, before: 6 })), [4, 5])
    t.same(seqs(await query(store, { order: 'desc', after: 3, before: 6 })), [5, 4])
    t.same(await query(store, { after: 10 }), [])
    t.same(await query(store, { order: 'desc', before: 1 }), [])
  })

  t.test(`${name}: entitlement: categories`, async t => {
    const store = await open(t)
    await store.append(draft({ category: 'system', title: 's' }))
    await store.append(draft({ category: 'dashboard', title: 'd' }))
    await store.append(draft({ category: 'admin', title: 'a' }))
    t.same((await query(store, { categories: ['system', 'dashboard'] })).map(r => r.title), ['s', 'd'])
    t.same((await query(store, { categories: ['admin'], user: root })).map(r => r.title), ['a'])
    t.same(await query(store, { categories: [] }), [], 'no categories, nothing')
    t.equal(await store.unreadCount(alice, ['system', 'dashboard'], Date.now()), 2)
    t.equal(await store.unreadCount(alice, ['security'], Date.now()), 0)
  })

  t.test(`${name}: entitlement: audience users and roles`, async t => {
    const store = await open(t)
    await store.append(draft({ title: 'everyone' }))
    await store.append(draft({ title: 'alice only', audience: { users: ['alice'] } }))
    await store.append(draft({ title: 'bob only', audience: { users: ['bob'] } }))
    await store.append(draft({ title: 'admins', audience: { roles: ['admin'] } }))
    await store.append(draft({ title: 'bob or users', audience: { users: ['bob'], roles: ['user'] } }))
    await store.append(draft({ title: 'empty lists', audience: { users: [], roles: [] } }))
    const titles = async (user: User) => (await query(store, { user })).map(r => r.title)
    t.same(await titles(alice), ['everyone', 'alice only', 'bob or users', 'empty lists'])
    t.same(await titles(bob), ['everyone', 'bob only', 'bob or users', 'empty lists'])
    t.same(await titles(root), ['everyone', 'admins', 'empty lists'])
    t.same(await titles({ id: 'carol', role: 'viewer' }), ['everyone', 'empty lists'])
    t.equal(await store.unreadCount(alice, ALL, Date.now()), 4)
    t.equal(await store.unreadCount(root, ALL, Date.now()), 3)
  })

  t.test(`${name}: entitlement: expired notifications are left out`, async t => {
    const store = await open(t)
    const now = Date.now()
    await store.append(draft({ title: 'lasting' }))
    await store.append(draft({ title: 'short', expiresAt: new Date(now + 60_000).toISOString() }))
    t.same((await query(store, { now })).map(r => r.title), ['lasting', 'short'])
    t.same((await query(store, { now: now + 60_000 })).map(r => r.title), ['lasting'], 'expired exactly at expiresAt')
    t.same((await query(store, { now: now + 120_000, order: 'desc' })).map(r => r.title), ['lasting'])
    t.equal(await store.unreadCount(alice, ALL, now), 2)
    t.equal(await store.unreadCount(alice, ALL, now + 120_000), 1)
  })

  t.test(`${name}: read flags, markRead by id, unreadOnly, unreadCount`, async t => {
    const store = await open(t)
    const ns = await appendN(store, 4)
    t.same((await query(store)).map(r => r.read), [false, false, false, false])
    await store.markRead('alice', [ns[1]!.id, ns[3]!.id, 'unknown-id'])
    t.same((await query(store)).map(r => r.read), [false, true, false, true])
    t.same(seqs(await query(store, { unreadOnly: true })), [1, 3])
    t.same(seqs(await query(store, { unreadOnly: true, order: 'desc', limit: 1 })), [3])
    t.equal(await store.unreadCount(alice, ALL, Date.now()), 2)
    t.same((await query(store, { user: bob })).map(r => r.read), [false, false, false, false], 'read state is per user')
    t.equal(await store.unreadCount(bob, ALL, Date.now()), 4)
    await store.markRead('alice', [ns[1]!.id])
    t.equal(await store.unreadCount(alice, ALL, Date.now()), 2, 'marking twice changes nothing')
  })

  t.test(`${name}: markAllRead marks everything up to a seq and keeps ids marked above it read`, async t => {
    const store = await open(t)
    const ns = await appendN(store, 6)
    await store.markRead('alice', [ns[4]!.id])
    await store.markAllRead('alice', 3)
    t.same((await query(store)).map(r => r.read), [true, true, true, false, true, false], 'ids marked above the cut stay read')
    t.equal(await store.unreadCount(alice, ALL, Date.now()), 2)
    t.same(seqs(await query(store, { unreadOnly: true })), [4, 6])
    await store.markAllRead('alice', 2)
    t.equal(await store.unreadCount(alice, ALL, Date.now()), 2, 'a lower cut never makes anything unread again')
    await store.append(draft({ title: 'later' }))
    t.equal(await store.unreadCount(alice, ALL, Date.now()), 3, 'a newer notification is unread')
    await store.markAllRead('alice', await store.lastSeq())
    t.equal(await store.unreadCount(alice, ALL, Date.now()), 0)
    t.equal(await store.unreadCount(bob, ALL, Date.now()), 7, 'other users are untouched')
  })

  t.test(`${name}: retention by count advances prunedThrough`, async t => {
    const store = await open(t, { maxCount: 3 })
    await appendN(store, 5)
    await store.prune(Date.now())
    t.same(seqs(await query(store)), [3, 4, 5], 'only the newest maxCount are kept')
    t.equal(await store.prunedThrough(), 2)
    t.equal(await store.lastSeq(), 5, 'lastSeq is not affected by pruning')
    await appendN(store, 2)
    await store.prune(Date.now())
    t.same(seqs(await query(store)), [5, 6, 7])
    t.equal(await store.prunedThrough(), 4)
  })

  t.test(`${name}: retention by count counts rows, not seqs, when collapses left gaps`, async t => {
    const store = await open(t, { maxCount: 3 })
    await store.append(draft({ title: 'a' }))
    await store.append(draft({ title: 'k1', collapseKey: 'k' }))
    await store.append(draft({ title: 'b' }))
    await store.append(draft({ title: 'k2', collapseKey: 'k' })) // replaces seq 2
    await store.append(draft({ title: 'c' }))
    await store.prune(Date.now())
    t.same((await query(store)).map(r => r.title), ['b', 'k2', 'c'], 'the newest three rows stay, across the gap at seq 2')
    t.equal(await store.prunedThrough(), 1)
  })

  t.test(`${name}: retention by count applies on every append, without a prune() call`, async t => {
    const store = await open(t, { maxCount: 3 })
    await appendN(store, 5)
    t.same(seqs(await query(store)), [3, 4, 5], 'never more than maxCount rows after an append')
    t.equal(await store.prunedThrough(), 2)
    await store.appendMany([{ draft: draft() }, { draft: draft() }])
    t.same(seqs(await query(store)), [5, 6, 7], 'a batch too')
    t.equal(await store.prunedThrough(), 4)
  })

  t.test(`${name}: retention by age applies on prune() (the timer) and advances prunedThrough`, async t => {
    const store = await open(t, { maxAgeMs: 60_000 })
    await appendN(store, 3)
    await store.prune(Date.now())
    t.equal(await store.prunedThrough(), 0, 'nothing is old yet')
    t.same(seqs(await query(store)), [1, 2, 3])
    await store.prune(Date.now() + 120_000)
    t.same(await query(store, { now: Date.now() + 120_000 }), [])
    t.equal(await store.prunedThrough(), 3)
    t.equal(await store.lastSeq(), 3)
    await store.prune(Date.now() + 120_000)
    t.equal(await store.prunedThrough(), 3, 'pruning again with nothing old changes nothing')
  })

  t.test(`${name}: retention by age also applies on append`, async t => {
    const store = await open(t, { maxAgeMs: 60_000 })
    const old = new Date(Date.now() - 3_600_000).toISOString()
    await store.append(draft({ title: 'old1', createdAt: old }))
    await store.append(draft({ title: 'old2', createdAt: old }))
    await store.append(draft({ title: 'new' }))
    t.same((await query(store)).map(r => r.title), ['new'], 'no prune() call needed')
    t.equal(await store.prunedThrough(), 2)
    t.equal(await store.lastSeq(), 3)
  })

  t.test(`${name}: resume after pruning: what is left after the cursor is returned, and prunedThrough says the cursor is incomplete`, async t => {
    // The rule (docs/protocol.md): replay what is left, then complete:false. The manager decides
    // complete from prunedThrough; the store must keep answering from the cursor.
    const store = await open(t, { maxCount: 3 })
    await appendN(store, 6)
    const since = 1
    t.ok(await store.prunedThrough() > since, 'the cursor is below what retention removed')
    t.same(seqs(await query(store, { after: since })), [4, 5, 6], 'what is left, oldest first')
    t.same(seqs(await query(store, { after: 4 })), [5, 6], 'a cursor still covered')
    t.ok(await store.prunedThrough() <= 4)
  })

  t.test(`${name}: unreadCount is exact below UNREAD_COUNT_CAP and the cap at or above it`, async t => {
    t.equal(UNREAD_COUNT_CAP, 1000)
    const store = await open(t)
    const batch = Array.from({ length: UNREAD_COUNT_CAP + 5 }, (_, i) => ({ draft: draft({ title: `n${i + 1}` }) }))
    const stored = (await store.appendMany(batch)).map(r => r.notification)
    const now = Date.now()
    t.equal(await store.unreadCount(alice, ALL, now), UNREAD_COUNT_CAP, 'above the cap: the cap')
    await store.markAllRead('alice', 5)
    t.equal(await store.unreadCount(alice, ALL, now), UNREAD_COUNT_CAP, 'exactly the cap: the cap')
    await store.markAllRead('alice', 6)
    t.equal(await store.unreadCount(alice, ALL, now), UNREAD_COUNT_CAP - 1, 'below the cap: exact')
    await store.markRead('alice', [stored[500]!.id, stored[1000]!.id])
    t.equal(await store.unreadCount(alice, ALL, now), UNREAD_COUNT_CAP - 3)
    t.equal(await store.unreadCount(bob, ALL, now), UNREAD_COUNT_CAP, 'another user is still at the cap')
    t.equal(await store.unreadCount(bob, ['system'], now), 0, 'the cap counts only entitled rows')
    const unread = await query(store, { unreadOnly: true, limit: 2000 })
    t.equal(unread.length, UNREAD_COUNT_CAP - 3, 'queries are not capped')
  })

  t.test(`${name}: a targeted notification in a category the role may not see stays hidden`, async t => {
    const store = await open(t)
    await store.append(draft({ title: 'admin for alice', category: 'admin', audience: { users: ['alice'] } }))
    await store.append(draft({ title: 'admin for users', category: 'admin', audience: { roles: ['user'] } }))
    await store.append(draft({ title: 'dashboard for alice', category: 'dashboard', audience: { users: ['alice'] } }))
    await store.append(draft({ title: 'admin broadcast', category: 'admin' }))
    const visible = ['dashboard', 'system']
    const now = Date.now()
    t.same((await query(store, { categories: visible })).map(r => r.title), ['dashboard for alice'])
    t.same((await query(store, { categories: visible, order: 'desc', unreadOnly: true })).map(r => r.title), ['dashboard for alice'])
    t.equal(await store.unreadCount(alice, visible, now), 1)
    t.same((await query(store, { categories: ['admin'] })).map(r => r.title), ['admin for alice', 'admin for users', 'admin broadcast'],
      'the same rows with the category allowed')
    t.equal(await store.unreadCount(alice, ['admin'], now), 3)
  })

  t.test(`${name}: a row naming both the user and its role is returned and counted once`, async t => {
    const store = await open(t)
    await store.append(draft({ title: 'before' }))
    const both = (await store.append(draft({ title: 'both', audience: { users: ['alice', 'alice'], roles: ['user', 'admin'] } }))).notification
    await store.append(draft({ title: 'after' }))
    const now = Date.now()
    t.same((await query(store)).map(r => r.title), ['before', 'both', 'after'])
    t.same((await query(store, { order: 'desc' })).map(r => r.title), ['after', 'both', 'before'])
    t.same((await query(store, { order: 'desc', limit: 2 })).map(r => r.title), ['after', 'both'], 'limit counts it once')
    t.same((await query(store, { after: 1, limit: 1 })).map(r => r.title), ['both'])
    t.equal(await store.unreadCount(alice, ALL, now), 3)
    t.same((await query(store, { user: root })).map(r => r.title), ['before', 'both', 'after'], 'by role only')
    t.same((await query(store, { user: bob })).map(r => r.title), ['before', 'both', 'after'], 'another user of the role, by role')
    t.same((await query(store, { user: { id: 'carol', role: 'viewer' } })).map(r => r.title), ['before', 'after'])
    await store.markRead('alice', [both.id])
    t.equal(await store.unreadCount(alice, ALL, now), 2)
    t.same((await query(store, { unreadOnly: true })).map(r => r.title), ['before', 'after'])
  })

  t.test(`${name}: targeted rows removed by collapse, retention or expiry are gone for every reader`, async t => {
    const store = await open(t, { maxCount: 3, maxAgeMs: 60_000 })
    const now = Date.now()
    await store.append(draft({ title: 'old', createdAt: new Date(now - 3_600_000).toISOString(), audience: { users: ['alice'] } }))
    await store.append(draft({ title: 'p1', collapseKey: 'op', audience: { users: ['alice'], roles: ['user'] } }))
    await store.append(draft({ title: 'p2', collapseKey: 'op', audience: { roles: ['admin'] } }))
    await store.append(draft({ title: 'short', expiresAt: new Date(now + 1000).toISOString(), audience: { roles: ['user'] } }))
    t.same((await query(store)).map(r => r.title), ['short'], 'old went by age on append, collapsed p1 is gone for alice')
    t.same((await query(store, { user: root })).map(r => r.title), ['p2'])
    const later = now + 2000
    await store.prune(later)
    t.same(await query(store, { now: later }), [], 'retention and expiry')
    t.equal(await store.unreadCount(alice, ALL, later), 0)
    t.same((await query(store, { user: root, now: later })).map(r => r.title), ['p2'])
    t.equal(await store.unreadCount(root, ALL, later), 1)
  })

  t.test(`${name}: muted categories are kept per user and replaced as a whole`, async t => {
    const store = await open(t)
    t.same(await store.getMuted('alice'), [], 'none by default')
    await store.setMuted('alice', ['maintenance', 'dashboard', 'maintenance'])
    t.same((await store.getMuted('alice')).sort(), ['dashboard', 'maintenance'], 'stored once each')
    t.same(await store.getMuted('bob'), [], 'another user is untouched')
    await store.setMuted('alice', ['system'])
    t.same(await store.getMuted('alice'), ['system'], 'a new list replaces the old one')
    await store.setMuted('alice', [])
    t.same(await store.getMuted('alice'), [], 'an empty list unmutes everything')
  })

  t.test(`${name}: muted categories of many users come back from one call, users without any left out`, async t => {
    const store = await open(t)
    t.same([...await store.getMutedMany([])], [], 'no users, no answer')
    await store.setMuted('alice', ['maintenance'])
    await store.setMuted('bob', ['dashboard', 'system'])
    const many = await store.getMutedMany(['alice', 'bob', 'carol'])
    t.same(many.get('alice'), ['maintenance'])
    t.same([...many.get('bob')!].sort(), ['dashboard', 'system'])
    t.notOk(many.has('carol'), 'a user who muted nothing is absent')
    const ids = Array.from({ length: 1000 }, (_, i) => `u${i}`)
    await store.setMuted('u999', ['user'])
    const big = await store.getMutedMany(ids)
    t.same([...big.keys()], ['u999'], 'a thousand ids in one call')
  })

  t.test(`${name}: idempotency and collapse keys are looked up without storing anything`, async t => {
    const store = await open(t)
    t.equal(await store.idOfIdempotencyKey('k1'), null, 'unknown key')
    t.equal(await store.idOfCollapseKey('op'), null, 'unknown collapse key')
    const first = (await store.append(draft({ title: 'a', collapseKey: 'op' }), 'k1')).notification
    await store.append(draft({ title: 'filler' }))
    t.equal(await store.idOfIdempotencyKey('k1'), first.id)
    t.equal(await store.idOfCollapseKey('op'), first.id)
    const second = (await store.append(draft({ title: 'b', collapseKey: 'op' }))).notification
    t.equal(await store.idOfCollapseKey('op'), second.id, 'the current holder of the key, after a collapse')
    t.equal(await store.idOfIdempotencyKey('k1'), first.id, 'the idempotency key still names the first')
    t.equal(await store.lastSeq(), 3, 'lookups stored nothing')
    t.equal((await query(store)).length, 2)
  })

  t.test(`${name}: a token revocation holds its cut until it lapses, never lowers, and is pruned after`, async t => {
    const store = await open(t)
    const now = Date.now()
    t.equal(await store.revokedThrough('alice', now), 0, 'nothing revoked by default')
    await store.revokeTokens('alice', 1000, now + 60_000)
    t.equal(await store.revokedThrough('alice', now), 1000)
    t.equal(await store.revokedThrough('bob', now), 0, 'another user is untouched')
    await store.revokeTokens('alice', 500, now + 30_000)
    t.equal(await store.revokedThrough('alice', now), 1000, 'a lower cut does not lower it')
    await store.revokeTokens('alice', 2000, now + 10_000)
    t.equal(await store.revokedThrough('alice', now), 2000, 'a higher cut raises it')
    t.equal(await store.revokedThrough('alice', now + 60_000), 0, 'lapsed once no covered token can be valid')
    await store.prune(now + 60_000)
    t.equal(await store.revokedThrough('alice', now), 0, 'prune forgot the lapsed revocation')
  })
}
