import t, { type Test } from 'tap'
import { pino } from 'pino'
import type { Broker, BrokerHandler, BrokerMessage } from '../src/brokers/broker.js'
import { LocalBroker } from '../src/brokers/local-broker.js'
import { BadRequestError, ForbiddenError, UnknownCategoryError } from '../src/errors.js'
import { NotificationManager } from '../src/manager.js'
import { RolePolicy } from '../src/policy.js'
import type { SharedFrame } from '../src/protocol.js'
import type { Connection } from '../src/registry.js'
import type { StoredNotification, User } from '../src/schemas.js'
import type { AppendResult, Draft, Retention } from '../src/stores/history-store.js'
import { MemoryStore } from '../src/stores/memory-store.js'

const logger = pino({ level: 'silent' })
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const alice: User = { id: 'alice', role: 'user' }
const bob: User = { id: 'bob', role: 'user' }
const viewer: User = { id: 'vic', role: 'viewer' }
const root: User = { id: 'root', role: 'admin' }

async function setup (t: Test, opts: { store?: MemoryStore, broker?: Broker, retention?: Partial<Retention>, maxConnectionsPerUser?: number } = {}) {
  const store = opts.store ?? new MemoryStore(opts.retention)
  const manager = new NotificationManager({
    store,
    broker: opts.broker ?? new LocalBroker(),
    logger,
    ...(opts.maxConnectionsPerUser !== undefined ? { limits: { maxConnectionsPerUser: opts.maxConnectionsPerUser } } : {})
  })
  await manager.start()
  t.teardown(() => manager.close())
  return { manager, store }
}

/** The local broker hands messages over on the next turn of the event loop, as a networked one would. */
const brokerTurn = () => new Promise<void>(resolve => setImmediate(resolve))

let counter = 0
interface FakeConnection extends Connection {
  frames: Array<{ seq: number, frame: string }>
  legacyFrames: string[]
  /** Frames outside the notification stream (unread). */
  otherFrames: string[]
  /** The frame objects as delivered: one object shared by every recipient. */
  sharedFrames: SharedFrame[]
  /** Muted lists applied by control messages, in order. */
  mutedApplied: string[][]
  closes: Array<{ code: number, reason: string }>
}
function fake (user: User, subscriptions: string[], legacy = false): FakeConnection {
  const frames: Array<{ seq: number, frame: string }> = []
  const legacyFrames: string[] = []
  const otherFrames: string[] = []
  const sharedFrames: SharedFrame[] = []
  return {
    id: `conn-${++counter}`,
    user,
    subscriptions: new Set(subscriptions),
    legacy,
    frames,
    legacyFrames,
    otherFrames,
    sharedFrames,
    deliver (seq, frame) {
      sharedFrames.push(frame)
      frames.push({ seq, frame: frame.text })
    },
    deliverLegacy (frame) { legacyFrames.push(frame.text) },
    mutedApplied: [],
    closes: [],
    applyMuted (muted) { this.mutedApplied.push([...muted]) },
    close (code, reason) { this.closes.push({ code, reason }) },
    deliverFrame (frame) { otherFrames.push(frame.text) }
  }
}

/** tap's throws() does not match by class; this asserts instanceof. */
async function failsWith (t: Test, fn: () => unknown, Class: new (...args: never[]) => Error, message?: RegExp) {
  try {
    await fn()
    t.fail(`expected ${Class.name}`)
  } catch (err) {
    t.type(err, Class, `throws ${Class.name}`)
    if (message) t.match((err as Error).message, message)
  }
}

/** Asserts a 400 Fastify error (built with @fastify/error) with the given code. */
async function rejects400 (t: Test, p: Promise<unknown>, code: string, message?: RegExp) {
  try {
    await p
    t.fail(`expected ${code}`)
  } catch (err) {
    const e = err as { name: string, statusCode: number, code: string, message: string }
    t.type(err, Error)
    t.equal(e.name, 'FastifyError')
    t.equal(e.statusCode, 400)
    t.equal(e.code, code)
    if (message) t.match(e.message, message)
  }
}

t.test('publish fills in the defaults', async t => {
  const { manager } = await setup(t)
  const before = Date.now()
  const { notification: n, duplicate } = await manager.publish({ category: 'system', title: 'hello' })
  t.equal(duplicate, false)
  t.equal(n.type, 'info')
  t.equal(n.priority, 'normal')
  t.equal(n.message, '')
  t.equal(n.source, 'app')
  t.match(n.id, UUID)
  t.equal(n.seq, 1)
  t.equal(new Date(n.createdAt).toISOString(), n.createdAt, 'createdAt is ISO 8601')
  t.ok(Date.parse(n.createdAt) >= before - 1 && Date.parse(n.createdAt) <= Date.now() + 1, 'createdAt is now')
  t.notOk('audience' in n, 'no audience when none was given')
  t.notOk('data' in n)
  t.notOk('expiresAt' in n)
  const other = await manager.publish({ category: 'system', title: 'again' }, { source: 'api' })
  t.not(other.notification.id, n.id, 'ids are unique')
  t.equal(other.notification.source, 'api')
  t.equal(other.notification.seq, 2)
})

t.test('publish keeps what was given', async t => {
  const { manager } = await setup(t)
  const expiresAt = new Date(Date.now() + 3_600_000).toISOString()
  const { notification: n } = await manager.publish({
    category: 'maintenance',
    type: 'progress',
    priority: 'high',
    title: 'Backup',
    message: 'running',
    data: { progress: 40 },
    action: { url: '/ops', label: 'Open' },
    expiresAt,
    collapseKey: 'maintenance:1',
    audience: { users: ['alice'], roles: ['admin'] }
  })
  t.match(n, {
    category: 'maintenance', type: 'progress', priority: 'high', title: 'Backup', message: 'running',
    data: { progress: 40 }, action: { url: '/ops', label: 'Open' }, expiresAt, collapseKey: 'maintenance:1',
    audience: { users: ['alice'], roles: ['admin'] }
  })
  const empty = await manager.publish({ category: 'system', title: 'x', audience: { users: [], roles: [] } })
  t.notOk('audience' in empty.notification, 'an audience of empty lists is stored as none')
})

t.test('validation errors are Fastify errors with statusCode 400', async t => {
  const { manager } = await setup(t)
  await rejects400(t, manager.publish({ category: 'billing', title: 'x' }), 'UN_UNKNOWN_CATEGORY', /billing/)
  await rejects400(t, manager.publish({ category: 'system', title: 'x'.repeat(201) }), 'UN_INVALID_NOTIFICATION', /title/)
  await rejects400(t, manager.publish({ category: 'system', title: '' }), 'UN_INVALID_NOTIFICATION')
  await rejects400(t, manager.publish({ category: 'system', title: 'x', data: { blob: 'x'.repeat(16 * 1024) } }), 'UN_DATA_TOO_LARGE')
  await rejects400(t, manager.publish({ category: 'system', title: 'x', expiresAt: new Date(Date.now() - 1000).toISOString() }), 'UN_INVALID_NOTIFICATION', /past/)
  await rejects400(t, manager.publish({ category: 'system', title: 'x', expiresAt: 'tomorrow' }), 'UN_INVALID_NOTIFICATION')
  await rejects400(t, manager.publish({ category: 'system', title: 'x', audience: { roles: ['root'] } }), 'UN_INVALID_NOTIFICATION', /root/)
  await rejects400(t, manager.publish({ category: 'system', title: 'x', colour: 'red' } as never), 'UN_INVALID_NOTIFICATION')
  await rejects400(t, manager.publish({ category: 'system', title: 123 } as never), 'UN_INVALID_NOTIFICATION')
  await rejects400(t, manager.publish({ category: 'system', title: 'x', type: 'fatal' } as never), 'UN_INVALID_NOTIFICATION')
  await rejects400(t, manager.publish({ category: 'system', title: 'x', audience: { users: ['a'], groups: ['g'] } } as never), 'UN_INVALID_NOTIFICATION')
  t.equal(await manager.store.lastSeq(), 0, 'nothing was stored')
  t.equal(manager.stats().published, 0)
})

t.test('the limits themselves are accepted', async t => {
  const { manager } = await setup(t)
  await t.resolves(manager.publish({ category: 'system', title: 'x'.repeat(200) }))
  // {"blob":"…"} is 11 bytes of wrapping.
  await t.resolves(manager.publish({ category: 'system', title: 'x', data: { blob: 'x'.repeat(16 * 1024 - 11) } }))
  await t.resolves(manager.publish({ category: 'system', title: 'x', message: 'm'.repeat(2000) }))
})

t.test('publish before start, or after stopAccepting, is refused with 503', async t => {
  const manager = new NotificationManager({ store: new MemoryStore(), broker: new LocalBroker(), logger })
  t.equal(manager.accepting, false)
  await t.rejects(manager.publish({ category: 'system', title: 'x' }), { statusCode: 503, code: 'UN_UNAVAILABLE' })
  await manager.start()
  t.equal(manager.accepting, true)
  await t.resolves(manager.publish({ category: 'system', title: 'x' }))
  manager.stopAccepting()
  await t.rejects(manager.publishMany([{ category: 'system', title: 'x' }]), { statusCode: 503, code: 'UN_UNAVAILABLE' })
  await manager.close()
})

t.test('a repeated idempotency key returns the first notification and delivers nothing', async t => {
  const { manager } = await setup(t)
  const conn = fake(alice, ['system'])
  manager.registry.add(conn)
  const first = await manager.publish({ category: 'system', title: 'first', idempotencyKey: 'k1' })
  const second = await manager.publish({ category: 'system', title: 'second', idempotencyKey: 'k1' })
  t.equal(first.duplicate, false)
  t.equal(second.duplicate, true)
  t.equal(second.notification.id, first.notification.id)
  t.equal(second.notification.title, 'first')
  await brokerTurn()
  t.equal(conn.frames.length, 1, 'delivered once')
  t.equal(await manager.store.lastSeq(), 1)
  t.match(manager.stats(), { published: 1, duplicates: 1, delivered: 1 })
})

t.test('publishMany publishes in order, and none when one item is invalid', async t => {
  const { manager } = await setup(t)
  const conn = fake(alice, ['system', 'dashboard'])
  manager.registry.add(conn)
  await t.rejects(manager.publishMany([
    { category: 'system', title: 'ok' },
    { category: 'billing', title: 'bad' },
    { category: 'dashboard', title: 'ok too' }
  ]), { statusCode: 400, message: /notifications\[1\]/ })
  t.equal(await manager.store.lastSeq(), 0, 'nothing stored')
  t.same((await manager.history(alice)).notifications, [])
  t.same(conn.frames, [], 'nothing delivered')
  t.equal(manager.stats().published, 0)

  const outcomes = await manager.publishMany([
    { category: 'system', title: 'a' },
    { category: 'dashboard', title: 'b', idempotencyKey: 'kb' },
    { category: 'system', title: 'c' }
  ], { source: 'api' })
  t.same(outcomes.map(o => [o.notification.title, o.notification.seq, o.duplicate, o.notification.source]), [
    ['a', 1, false, 'api'], ['b', 2, false, 'api'], ['c', 3, false, 'api']
  ])
  await brokerTurn()
  t.same(conn.frames.map(f => f.seq), [1, 2, 3], 'delivered in order')
  const again = await manager.publishMany([{ category: 'dashboard', title: 'b2', idempotencyKey: 'kb' }])
  t.equal(again[0]!.duplicate, true)
  await brokerTurn()
  t.equal(conn.frames.length, 3)
})

t.test('deliver() serialises once and every recipient gets the identical frame without the audience', async t => {
  const { manager } = await setup(t)
  const conns = [fake(alice, ['dashboard']), fake(alice, ['dashboard']), fake(bob, ['dashboard']), fake(root, ['dashboard', 'admin'])]
  const outsider = fake({ id: 'carol', role: 'user' }, ['dashboard'])
  const unsubscribed = fake(bob, ['system'])
  for (const c of [...conns, outsider, unsubscribed]) manager.registry.add(c)
  const n: StoredNotification = {
    id: 'n-1', seq: 9, category: 'dashboard', type: 'info', priority: 'normal', title: 'secret audience',
    message: '', createdAt: new Date().toISOString(), source: 'app',
    audience: { users: ['alice', 'bob'], roles: ['admin'] }
  }
  const stringify = JSON.stringify
  let serialised = 0
  JSON.stringify = function (this: unknown, ...args: Parameters<typeof JSON.stringify>) {
    const v = args[0] as { id?: unknown } | undefined
    if (v !== null && typeof v === 'object' && v.id === 'n-1') serialised++
    return stringify.apply(this, args)
  } as typeof JSON.stringify
  try {
    manager.deliver({ notification: n })
  } finally {
    JSON.stringify = stringify
  }
  t.equal(serialised, 1, 'the notification is serialised once for all recipients')
  const received = conns.map(c => c.frames)
  for (const frames of received) t.equal(frames.length, 1)
  const frame = received[0]![0]!.frame
  for (const frames of received) {
    t.equal(frames[0]!.frame, frame, 'the identical string')
    t.equal(frames[0]!.seq, 9)
  }
  const shared = conns[0]!.sharedFrames[0]
  for (const c of conns) t.equal(c.sharedFrames[0], shared, 'the same frame object, so a transport can frame it once')
  t.same(outsider.frames, [], 'not in the audience')
  t.same(unsubscribed.frames, [], 'not subscribed to the category')
  const parsed = JSON.parse(frame)
  t.equal(parsed.type, 'notification')
  t.notOk('audience' in parsed.notification, 'the audience never reaches a client')
  t.notOk(frame.includes('alice'), 'no user id of the audience in the frame')
  t.same(parsed.notification, {
    id: 'n-1', seq: 9, category: 'dashboard', type: 'info', priority: 'normal', title: 'secret audience',
    message: '', createdAt: n.createdAt, source: 'app', read: false
  })
  t.equal(manager.stats().delivered, 4)
})

t.test('deliver() through publish reaches the entitled connections only', async t => {
  const { manager } = await setup(t)
  const a = fake(alice, ['dashboard'])
  const b = fake(bob, ['dashboard'])
  const v = fake(viewer, ['system'])
  for (const c of [a, b, v]) manager.registry.add(c)
  await manager.publish({ category: 'dashboard', title: 'for alice', audience: { users: ['alice'] } })
  await manager.publish({ category: 'dashboard', title: 'for users', audience: { roles: ['user'] } })
  await manager.publish({ category: 'system', title: 'all' })
  await brokerTurn()
  t.same(a.frames.map(f => JSON.parse(f.frame).notification.title), ['for alice', 'for users'])
  t.same(b.frames.map(f => JSON.parse(f.frame).notification.title), ['for users'])
  t.same(v.frames.map(f => JSON.parse(f.frame).notification.title), ['all'])
})

t.test('legacy frames go only to legacy connections among the recipients', async t => {
  const { manager } = await setup(t)
  const modern = fake(alice, ['dashboard'])
  const old = fake(bob, ['dashboard'], true)
  const oldOutsider = fake({ id: 'carol', role: 'user' }, ['dashboard'], true)
  for (const c of [modern, old, oldOutsider]) manager.registry.add(c)
  await manager.publish(
    { category: 'dashboard', title: 'x', audience: { users: ['alice', 'bob'] } },
    { legacy: { event: 'user_notification', data: { user_id: 'bob', message: 'x' } } }
  )
  await brokerTurn()
  t.same(modern.legacyFrames, [])
  t.same(old.legacyFrames.map(f => JSON.parse(f)), [{ type: 'legacy', event: 'user_notification', data: { user_id: 'bob', message: 'x' } }])
  t.same(oldOutsider.legacyFrames, [], 'not entitled, no legacy frame either')
  t.equal(old.frames.length, 1, 'the notification frame as well')
})

t.test('expired notifications are not delivered', async t => {
  const { manager } = await setup(t)
  const conn = fake(alice, ['system'])
  manager.registry.add(conn)
  manager.deliver({
    notification: {
      id: 'old', seq: 1, category: 'system', type: 'info', priority: 'normal', title: 'late', message: '',
      createdAt: new Date(Date.now() - 10_000).toISOString(), expiresAt: new Date(Date.now() - 1).toISOString(), source: 'app'
    }
  })
  t.same(conn.frames, [])
  t.equal(manager.stats().delivered, 0)
})

t.test('history returns only what the user is entitled to, newest first', async t => {
  const { manager } = await setup(t)
  await manager.publish({ category: 'system', title: 'everyone' })
  await manager.publish({ category: 'dashboard', title: 'for bob', audience: { users: ['bob'] } })
  await manager.publish({ category: 'dashboard', title: 'for alice', audience: { users: ['alice'] } })
  await manager.publish({ category: 'admin', title: 'admins' })
  await manager.publish({ category: 'dashboard', title: 'dash' })
  const titles = async (user: User, opts = {}) => (await manager.history(user, opts)).notifications.map(n => n.title)
  t.same(await titles(alice), ['dash', 'for alice', 'everyone'])
  t.same(await titles(bob), ['dash', 'for bob', 'everyone'])
  t.same(await titles(viewer), ['everyone'], 'a viewer never sees dashboard')
  t.same(await titles(root), ['dash', 'admins', 'everyone'])
  t.same(await titles(alice, { categories: ['dashboard'] }), ['dash', 'for alice'])
  const page = await manager.history(alice)
  for (const n of page.notifications) {
    t.notOk('audience' in n, 'no audience in history')
    t.equal(n.read, false)
  }
  const p1 = await manager.history(alice, { limit: 2 })
  t.same(p1.notifications.map(n => n.title), ['dash', 'for alice'])
  t.equal(p1.hasMore, true)
  const p2 = await manager.history(alice, { limit: 2, before: p1.notifications[1]!.seq })
  t.same(p2.notifications.map(n => n.title), ['everyone'])
  t.equal(p2.hasMore, false)
})

t.test('categoriesFor narrows to the role, and throws for unknown or forbidden categories', async t => {
  const { manager } = await setup(t)
  t.same(manager.categoriesFor(viewer), ['system', 'maintenance'])
  t.same(manager.categoriesFor(alice, []), ['system', 'dashboard', 'maintenance', 'user'])
  t.same(manager.categoriesFor(alice, ['dashboard', 'dashboard', 'system']), ['dashboard', 'system'])
  await failsWith(t, () => manager.categoriesFor(alice, ['billing']), UnknownCategoryError, /billing/)
  await failsWith(t, () => manager.categoriesFor(viewer, ['dashboard']), ForbiddenError, /viewer.*dashboard/)
  await failsWith(t, () => manager.categoriesFor(alice, ['admin']), ForbiddenError)
  await failsWith(t, () => manager.history(viewer, { categories: ['dashboard'] }), ForbiddenError)
  await failsWith(t, () => manager.history(alice, { categories: ['nope'] }), UnknownCategoryError)
})

t.test('resumeStatus', async t => {
  const { manager, store } = await setup(t)
  for (let i = 0; i < 3; i++) await manager.publish({ category: 'system', title: `n${i}` })
  t.same(await manager.resumeStatus(0), { complete: true, replay: true })
  t.same(await manager.resumeStatus(2), { complete: true, replay: true })
  t.same(await manager.resumeStatus(3), { complete: true, replay: true }, 'nothing missed')
  t.same(await manager.resumeStatus(2, store.epoch), { complete: true, replay: true }, 'same epoch')
  t.same(await manager.resumeStatus(4), { complete: false, replay: false }, 'since beyond lastSeq: another log')
  t.same(await manager.resumeStatus(1, 'another-epoch'), { complete: false, replay: false }, 'wrong epoch')
})

t.test('resumeStatus is incomplete when retention pruned past the cursor', async t => {
  const { manager } = await setup(t, { retention: { maxCount: 2 } })
  for (let i = 0; i < 5; i++) await manager.publish({ category: 'system', title: `n${i}` })
  t.equal(await manager.store.prunedThrough(), 3)
  t.same(await manager.resumeStatus(1), { complete: false, replay: true })
  t.same(await manager.resumeStatus(2), { complete: false, replay: true })
  t.same(await manager.resumeStatus(3), { complete: true, replay: true })
  t.same((await manager.replayPage(alice, ['system'], 1, 10)).map(n => n.seq), [4, 5])
})

t.test('replayPage returns entitled notifications after the cursor, oldest first', async t => {
  const { manager } = await setup(t)
  await manager.publish({ category: 'system', title: 'a' })
  await manager.publish({ category: 'system', title: 'b', audience: { users: ['bob'] } })
  await manager.publish({ category: 'dashboard', title: 'c' })
  await manager.publish({ category: 'system', title: 'd' })
  const titles = (items: Array<{ frame: { text: string } }>) => items.map(i => JSON.parse(i.frame.text).notification.title)
  t.same(titles(await manager.replayPage(alice, ['system', 'dashboard'], 0, 10)), ['a', 'c', 'd'])
  t.same(titles(await manager.replayPage(alice, ['system'], 1, 10)), ['d'])
  t.same(titles(await manager.replayPage(alice, ['system', 'dashboard'], 0, 2)), ['a', 'c'])
})

t.test('unread and markRead', async t => {
  const { manager } = await setup(t)
  const ns = []
  for (let i = 0; i < 3; i++) ns.push((await manager.publish({ category: 'dashboard', title: `n${i}` })).notification)
  await manager.publish({ category: 'admin', title: 'not for alice' })
  t.equal(await manager.unread(alice), 3)
  t.equal(await manager.markRead(alice, { ids: [ns[0]!.id] }), 2)
  t.equal(await manager.unread(bob), 3, 'per user')
  t.equal(await manager.markRead(alice, { all: true }), 0)
  await manager.publish({ category: 'dashboard', title: 'later' })
  t.equal(await manager.unread(alice), 1)
  await failsWith(t, () => manager.markRead(alice, {}), BadRequestError)
  await failsWith(t, () => manager.markRead(alice, { ids: [] }), BadRequestError)
})

t.test('markRead tells every connection of that user the new count, through the broker', async t => {
  const { manager } = await setup(t)
  const a1 = fake(alice, ['dashboard'])
  const a2 = fake(alice, [])
  const b = fake(bob, ['dashboard'])
  for (const c of [a1, a2, b]) manager.registry.add(c)
  const ns = []
  for (let i = 0; i < 3; i++) ns.push((await manager.publish({ category: 'dashboard', title: `n${i}` })).notification)
  await brokerTurn()
  t.equal(await manager.markRead(alice, { ids: [ns[0]!.id] }), 2)
  await brokerTurn()
  const first = { type: 'unread', unread: 2, ids: [ns[0]!.id] }
  t.same(a1.otherFrames.map(f => JSON.parse(f)), [first], 'the connection that asked')
  t.same(a2.otherFrames.map(f => JSON.parse(f)), [first], 'and the other device, whatever its subscriptions')
  t.same(b.otherFrames, [], 'not another user')
  t.equal(await manager.markRead(alice, { all: true }), 0)
  await brokerTurn()
  t.same(JSON.parse(a2.otherFrames[1]!), { type: 'unread', unread: 0, through: ns[2]!.seq })
  // A control message from another instance with a wrong shape is ignored, not thrown.
  manager.applyControl({ type: 'unread', user: 42 })
  manager.applyControl({ type: 'unread', user: 'alice', unread: 'x' })
  manager.applyControl({ type: 'something-else' })
  manager.applyControl({ type: 'unread', user: 'nobody', unread: 1 })
  manager.applyControl({ type: 'unread', user: 'alice', unread: 1, ids: ['ok', 7] })
  t.same(JSON.parse(a1.otherFrames[2]!), { type: 'unread', unread: 1, ids: ['ok'] })
  t.equal(a1.otherFrames.length, 3)
})

t.test('markRead answers even when the broker cannot carry the unread count', async t => {
  const broker = new LocalBroker()
  broker.publishControl = async () => { throw new Error('broker down') }
  const { manager } = await setup(t, { broker })
  const n = (await manager.publish({ category: 'dashboard', title: 'x' })).notification
  t.equal(await manager.markRead(alice, { ids: [n.id] }), 0)
  t.equal(await manager.unread(alice), 0, 'the read state is stored')
})

t.test('stats counts publishes, duplicates, deliveries, connections and subscriptions', async t => {
  const { manager } = await setup(t)
  t.same(manager.stats(), { published: 0, duplicates: 0, delivered: 0, connections: 0, users: 0, transports: { ws: 0 }, subscriptions: {} })
  const a1 = fake(alice, ['system', 'dashboard'])
  const a2 = fake(alice, ['system'])
  const b = fake(bob, ['dashboard'])
  for (const c of [a1, a2, b]) manager.registry.add(c)
  await manager.publish({ category: 'system', title: 'x', idempotencyKey: 'k' })
  await manager.publish({ category: 'system', title: 'x', idempotencyKey: 'k' })
  await manager.publish({ category: 'dashboard', title: 'y' })
  await manager.publish({ category: 'security', title: 'nobody listens' })
  await brokerTurn()
  t.same(manager.stats(), { published: 3, duplicates: 1, delivered: 4, connections: 3, users: 2, transports: { ws: 3 }, subscriptions: { system: 2, dashboard: 2 } })
  manager.registry.remove(a2)
  t.match(manager.stats(), { connections: 2, users: 2, transports: { ws: 2 }, subscriptions: { system: 1, dashboard: 2 } })
})

t.test('a broker whose publish throws does not make publish reject; the notification is stored', async t => {
  let handler: BrokerHandler | undefined
  const broken: Broker = {
    async start (h) { handler = h },
    async publish (_m: BrokerMessage) { throw new Error('broker down') },
    async publishControl () { throw new Error('broker down') },
    async ping () { throw new Error('broker down') },
    async close () {}
  }
  const { manager } = await setup(t, { broker: broken })
  t.ok(handler, 'the manager registered its delivery handler')
  const conn = fake(alice, ['system'])
  manager.registry.add(conn)
  const { notification, duplicate } = await manager.publish({ category: 'system', title: 'kept' })
  t.equal(duplicate, false)
  t.equal(notification.seq, 1)
  t.same((await manager.history(alice)).notifications.map(n => n.id), [notification.id], 'stored anyway')
  t.same(conn.frames, [], 'not delivered live: the broker never carried it')
  t.equal(manager.stats().published, 1)
  t.same(await manager.health(), { store: true, broker: false })
})

t.test('a store whose append throws makes publish reject and nothing is delivered', async t => {
  class FailingStore extends MemoryStore {
    override async append (_draft: Draft, _key?: string): Promise<AppendResult> { throw new Error('disk full') }
    override async appendMany (): Promise<AppendResult[]> { throw new Error('disk full') }
  }
  const { manager } = await setup(t, { store: new FailingStore() })
  const conn = fake(alice, ['system'])
  manager.registry.add(conn)
  await t.rejects(manager.publish({ category: 'system', title: 'lost' }), /disk full/)
  await t.rejects(manager.publishMany([{ category: 'system', title: 'lost' }]), /disk full/)
  t.same(conn.frames, [])
  t.match(manager.stats(), { published: 0, delivered: 0 })
})

t.test('health answers for store and broker', async t => {
  const { manager } = await setup(t)
  t.same(await manager.health(), { store: true, broker: true })
  class DownStore extends MemoryStore {
    override async ping (): Promise<void> { throw new Error('down') }
  }
  const { manager: down } = await setup(t, { store: new DownStore() })
  t.same(await down.health(), { store: false, broker: true })
})

t.test('assertCanConnect enforces the per-user connection limit', async t => {
  const { manager } = await setup(t, { maxConnectionsPerUser: 2 })
  manager.assertCanConnect(alice)
  manager.registry.add(fake(alice, []))
  manager.assertCanConnect(alice)
  manager.registry.add(fake(alice, []))
  t.throws(() => manager.assertCanConnect(alice), { statusCode: 403, code: 'UN_FORBIDDEN' })
  t.doesNotThrow(() => manager.assertCanConnect(bob), 'per user')
  t.equal(manager.stats().connections, 2)
})

t.test('migration reports are collected per adapter', async t => {
  const { manager } = await setup(t)
  t.same(manager.migration(), {})
  let received = 0
  const report = () => ({ forwardLegacyEvents: false, events: { user_notification: { received, published: 0, rejected: 0, failed: 0, lastSeenAt: null } }, unmapped: { received: 0, events: {} } })
  manager.registerMigrationReport('dashboard', report)
  received = 3
  t.match(manager.migration(), { dashboard: { events: { user_notification: { received: 3 } } } }, 'read at call time')
  manager.unregisterMigrationReport('dashboard')
  t.same(manager.migration(), {})
})

t.test('a custom policy is used for categories and roles', async t => {
  const manager = new NotificationManager({
    store: new MemoryStore(),
    broker: new LocalBroker(),
    logger,
    policy: new RolePolicy(['orders'], { clerk: ['orders'] })
  })
  await manager.start()
  t.teardown(() => manager.close())
  await t.resolves(manager.publish({ category: 'orders', title: 'x', audience: { roles: ['clerk'] } }))
  await t.rejects(manager.publish({ category: 'system', title: 'x' }), { statusCode: 400, code: 'UN_UNKNOWN_CATEGORY' })
  await t.rejects(manager.publish({ category: 'orders', title: 'x', audience: { roles: ['admin'] } }), { statusCode: 400, code: 'UN_INVALID_NOTIFICATION', message: /admin/ })
})

t.test('a recipient whose send throws is logged and closed with 1011; every other recipient still gets the notification', async t => {
  const lines: Array<Record<string, unknown>> = []
  const manager = new NotificationManager({
    store: new MemoryStore(),
    broker: new LocalBroker(),
    logger: pino({ level: 'error' }, { write: (s: string) => { lines.push(JSON.parse(s)) } })
  })
  await manager.start()
  t.teardown(() => manager.close())
  const before = fake(alice, ['system'], true)
  const faulty = fake(bob, ['system'], true)
  const after = fake(root, ['system'], true)
  faulty.deliver = () => { throw new Error('send exploded') }
  faulty.deliverLegacy = () => { throw new Error('legacy send exploded') }
  for (const c of [before, faulty, after]) manager.registry.add(c)

  const { notification } = await manager.publish({ category: 'system', title: 'for all' }, { legacy: { event: 'old', data: {} } })
  await brokerTurn()
  t.same(before.frames.map(f => f.seq), [notification.seq], 'the recipient before the faulty one got it')
  t.same(after.frames.map(f => f.seq), [notification.seq], 'the recipient after the faulty one got it')
  t.equal(before.legacyFrames.length, 1)
  t.equal(after.legacyFrames.length, 1, 'and its legacy frame')
  t.same(faulty.closes, [{ code: 1011, reason: 'internal error' }, { code: 1011, reason: 'internal error' }], 'the faulty one is closed with 1011')
  t.match(lines, [
    { msg: /delivery failed/, sessionId: faulty.id, userId: 'bob', seq: notification.seq, err: { message: 'send exploded' } },
    { msg: /delivery failed/, sessionId: faulty.id, err: { message: 'legacy send exploded' } }
  ])
  t.equal(manager.stats().delivered, 3, 'counted as delivered to the three recipients')
})

t.test('control messages reach only the named user\'s connections: preferences applied, disconnect closes 4003', async t => {
  const { manager } = await setup(t)
  const a1 = fake(alice, ['system'])
  const a2 = fake(alice, ['dashboard'])
  const b = fake(bob, ['system'])
  for (const c of [a1, a2, b]) manager.registry.add(c)
  const prefs = await manager.setPreferences(alice, ['maintenance'])
  t.strictSame(prefs, { muted: ['maintenance'], locked: ['security'] })
  await brokerTurn()
  t.strictSame(a1.mutedApplied, [['maintenance']])
  t.strictSame(a2.mutedApplied, [['maintenance']])
  t.strictSame(b.mutedApplied, [], 'another user is untouched')
  t.strictSame(await manager.preferences(alice), { muted: ['maintenance'], locked: ['security'] })

  t.strictSame(await manager.disconnectUser('alice', { reason: 'test' }), { closed: 2 })
  await brokerTurn()
  t.strictSame(a1.closes, [{ code: 4003, reason: 'access revoked: get a new token' }])
  t.strictSame(a2.closes, [{ code: 4003, reason: 'access revoked: get a new token' }])
  t.strictSame(b.closes, [])
})

t.test('setPreferences refuses locked, unknown and invisible categories and stores nothing', async t => {
  const { manager, store } = await setup(t)
  await t.rejects(manager.setPreferences(alice, ['security']), { code: 'UN_FORBIDDEN' })
  await t.rejects(manager.setPreferences(alice, ['billing']), { code: 'UN_UNKNOWN_CATEGORY' })
  await t.rejects(manager.setPreferences(alice, ['admin']), { code: 'UN_BAD_REQUEST' })
  await t.rejects(manager.setPreferences(alice, ['maintenance', 'admin']), { code: 'UN_BAD_REQUEST' }, 'one bad entry refuses the whole list')
  t.strictSame(await store.getMuted('alice'), [])
})

t.test('unread leaves muted categories out; a broker that fails a control message does not fail setPreferences', async t => {
  const failing: Broker = {
    start: async (handler) => { await new LocalBroker().start(handler) },
    publish: async () => {},
    publishControl: async () => { throw new Error('broker down') },
    ping: async () => {},
    close: async () => {}
  }
  const { manager, store } = await setup(t, { broker: failing })
  await manager.publish({ category: 'maintenance', title: 'm' })
  await manager.publish({ category: 'dashboard', title: 'd' })
  t.equal(await manager.unread(alice), 2)
  t.strictSame((await manager.setPreferences(alice, ['maintenance'])).muted, ['maintenance'], 'stored although the broker failed')
  t.strictSame(await store.getMuted('alice'), ['maintenance'])
  t.equal(await manager.unread(alice), 1, 'read from the store')
  t.equal(await manager.unread(alice, []), 2, 'or as the caller says')
  await manager.setPreferences(viewer, ['system', 'maintenance'])
  t.equal(await manager.unread(viewer), 0, 'everything muted: nothing to count')
})
