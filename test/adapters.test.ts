// Legacy adapters in a host app: real EventEmitters on the legacy side, real
// WebSocket clients on the receiving side.
import { EventEmitter } from 'node:events'
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { adminHealthAdapter, dashboardAdapter, maintenanceProgressAdapter } from '../adapters/index.js'
import type { LegacyAdapterOptions, LegacyEventReport } from '../adapters/index.js'
import { unifiedNotifications } from '../plugins/notifications.js'
import { MemoryStore } from '../src/stores/memory-store.js'
import { signToken } from '../src/tokens.js'
import { API_KEY, SECRET, connect, type Client, type Frame } from './helper.js'

const reportOf = (app: FastifyInstance) => app.notifications.migration()

type LogLine = Record<string, any> & { level: number, msg: string }
const WARN = 40

interface Host {
  app: FastifyInstance
  store: MemoryStore
  ws: string
  logs: LogLine[]
  /** Opens a client for `sub` with `role`, and takes its connected frame. */
  client (sub: string, role: string, query?: Record<string, string>): Promise<Client>
}

/** A host app: the root plugin, then whatever `register` adds, on a real loopback port. */
async function host (t: Test, register: (app: FastifyInstance) => Promise<void>): Promise<Host> {
  const logs: LogLine[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { logs.push(JSON.parse(line)) } } } })
  const store = new MemoryStore()
  await app.register(unifiedNotifications, { jwtSecret: SECRET, store, apiKeys: [API_KEY] })
  await register(app)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  const ws = `ws://127.0.0.1:${address.port}/ws`
  return {
    app,
    store,
    ws,
    logs,
    client: async (sub, role, query) => {
      const c = await connect(ws, { token: await signToken(SECRET, { sub, role, expiresIn: '1h' }), ...(query ? { query } : {}) })
      t.teardown(() => c.close())
      t.equal((await c.next()).type, 'connected')
      return c
    }
  }
}

/** Asserts that nothing but the ping's reply reached `c`: the server answers the ping after any frame already written. */
async function assertNothingReceived (t: Test, c: Client, label: string): Promise<void> {
  const reply = await c.request({ type: 'ping' })
  t.equal(reply.type, 'reply', `${label}: ping answered`)
  t.same(c.pending().filter(f => f.type === 'notification' || f.type === 'legacy'), [], `${label}: no notification nor legacy frame`)
}

/** The notification of a frame without its server-stamped fields. */
function stable (t: Test, frame: Frame): Record<string, unknown> {
  t.equal(frame.type, 'notification')
  const { id, seq, createdAt, ...rest } = frame.notification
  t.type(id, 'string')
  t.type(seq, 'number')
  t.match(createdAt, /^\d{4}-\d{2}-\d{2}T/)
  return rest
}

function withAdapter (plugin: typeof dashboardAdapter, opts: Partial<LegacyAdapterOptions>) {
  return async (app: FastifyInstance) => { await app.register(plugin, opts as LegacyAdapterOptions) }
}

let unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => { unhandled.push(reason) }
process.on('unhandledRejection', onUnhandled)
t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

t.test('dashboard user_notification reaches that user only, mapped exactly', async t => {
  const emitter = new EventEmitter()
  const h = await host(t, withAdapter(dashboardAdapter, { emitter }))
  const alice = await h.client('alice', 'user')
  const aliceTwo = await h.client('alice', 'user')
  const bob = await h.client('bob', 'user')
  const admin = await h.client('root', 'admin')

  emitter.emit('user_notification', { user_id: 'alice', message: 'Your export is ready', notification_type: 'success', title: 'Export', data: { file: 'a.csv' } })
  const expected = {
    category: 'dashboard', type: 'success', priority: 'normal', title: 'Export', message: 'Your export is ready',
    data: { file: 'a.csv' }, source: 'dashboard', read: false
  }
  t.same(stable(t, await alice.nextOf('notification')), expected)
  t.same(stable(t, await aliceTwo.nextOf('notification')), expected, "every one of the user's connections")
  await assertNothingReceived(t, bob, 'another user')
  await assertNothingReceived(t, admin, 'an admin (the audience names a user)')

  emitter.emit('user_notification', { user_id: 'bob', message: 'minimal' })
  t.same(stable(t, await bob.nextOf('notification')), {
    category: 'dashboard', type: 'info', priority: 'normal', title: 'Notification', message: 'minimal', source: 'dashboard', read: false
  }, 'defaults: type info, a title')
  await assertNothingReceived(t, alice, 'alice for bob’s notification')
})

t.test('dashboard broadcast_notification reaches everyone who may see dashboard', async t => {
  const emitter = new EventEmitter()
  const h = await host(t, withAdapter(dashboardAdapter, { emitter }))
  const user = await h.client('u1', 'user')
  const moderator = await h.client('m1', 'moderator')
  const admin = await h.client('a1', 'admin')
  const viewer = await h.client('v1', 'viewer')

  emitter.emit('broadcast_notification', { message: 'Release 2.0 is out', notification_type: 'info', title: 'Release' })
  const expected = { category: 'dashboard', type: 'info', priority: 'normal', title: 'Release', message: 'Release 2.0 is out', source: 'dashboard', read: false }
  for (const c of [user, moderator, admin]) t.same(stable(t, await c.nextOf('notification')), expected)
  await assertNothingReceived(t, viewer, 'a viewer (may not see dashboard)')
})

t.test('admin-health health_update: admins only, type and priority by status, one health:system entry in history', async t => {
  const emitter = new EventEmitter()
  const h = await host(t, withAdapter(adminHealthAdapter, { emitter }))
  const admin = await h.client('a1', 'admin')
  const moderator = await h.client('m1', 'moderator')
  const user = await h.client('u1', 'user')

  const components = { database: { status: 'unhealthy', message: 'connection refused' }, cache: { status: 'healthy' } }
  const cases = [
    { status: 'healthy', type: 'success', priority: 'normal', message: 'All components healthy', components: { cache: { status: 'healthy' } } },
    { status: 'degraded', type: 'warning', priority: 'normal', message: 'cache: degraded', components: { cache: { status: 'degraded' } } },
    { status: 'unhealthy', type: 'error', priority: 'high', message: 'database: unhealthy (connection refused)', components }
  ]
  for (const c of cases) {
    emitter.emit('health_update', { status: c.status, components: c.components, timestamp: '2024-05-01T10:00:00Z' })
    t.same(stable(t, await admin.nextOf('notification')), {
      category: 'health', type: c.type, priority: c.priority, title: `System health: ${c.status}`, message: c.message,
      data: { status: c.status, components: c.components, timestamp: '2024-05-01T10:00:00Z' },
      collapseKey: 'health:system', source: 'admin-health', read: false
    }, c.status)
  }
  await assertNothingReceived(t, moderator, 'a moderator')
  await assertNothingReceived(t, user, 'a user')

  const history = await admin.request({ type: 'request_notification_history', categories: ['health'] })
  t.equal(history.result.notifications.length, 1, 'collapsed to the latest state')
  t.equal(history.result.notifications[0].title, 'System health: unhealthy')
})

t.test('admin-health health_alert: admins only, priority critical, type by severity', async t => {
  const emitter = new EventEmitter()
  const h = await host(t, withAdapter(adminHealthAdapter, { emitter }))
  const admin = await h.client('a1', 'admin')
  const user = await h.client('u1', 'user')

  emitter.emit('health_alert', { component: 'disk', severity: 'warning', message: 'Disk 85% full' })
  t.same(stable(t, await admin.nextOf('notification')), {
    category: 'health', type: 'warning', priority: 'critical', title: 'Health alert: disk', message: 'Disk 85% full',
    data: { component: 'disk', severity: 'warning' }, source: 'admin-health', read: false
  })
  emitter.emit('health_alert', { component: 'database', severity: 'critical', message: 'Replica lag 10 min' })
  t.same(stable(t, await admin.nextOf('notification')), {
    category: 'health', type: 'error', priority: 'critical', title: 'Health alert: database', message: 'Replica lag 10 min',
    data: { component: 'database', severity: 'critical' }, source: 'admin-health', read: false
  })
  await assertNothingReceived(t, user, 'a user')
})

t.test('maintenance: started, progress, completed and failed reach everyone; history keeps the latest state per operation', async t => {
  const emitter = new EventEmitter()
  const h = await host(t, withAdapter(maintenanceProgressAdapter, { emitter }))
  const viewer = await h.client('v1', 'viewer')
  const user = await h.client('u1', 'user')

  const base = { category: 'maintenance', priority: 'normal', collapseKey: 'maintenance:op-1', source: 'maintenance', read: false }
  emitter.emit('maintenance_started', { operation_id: 'op-1', operation_type: 'reindex', message: 'Reindexing search', estimated_duration: 120 })
  const started = {
    ...base, type: 'progress', title: 'Maintenance started: reindex', message: 'Reindexing search',
    data: { operation_id: 'op-1', operation_type: 'reindex', progress: 0, estimated_duration: 120 }
  }
  t.same(stable(t, await viewer.nextOf('notification')), started)
  t.same(stable(t, await user.nextOf('notification')), started)

  emitter.emit('maintenance_progress', { operation_id: 'op-1', progress: 40 })
  t.same(stable(t, await viewer.nextOf('notification')), {
    ...base, type: 'progress', title: 'Maintenance in progress: 40%', message: 'Operation op-1 is 40% complete',
    data: { operation_id: 'op-1', progress: 40 }
  })
  emitter.emit('maintenance_completed', { operation_id: 'op-1', message: 'Search reindexed' })
  const completed = { ...base, type: 'success', title: 'Maintenance completed', message: 'Search reindexed', data: { operation_id: 'op-1', progress: 100 } }
  t.same(stable(t, await viewer.nextOf('notification')), completed)

  emitter.emit('maintenance_started', { operation_id: 'op-2', operation_type: 'migration' })
  await viewer.nextOf('notification')
  emitter.emit('maintenance_failed', { operation_id: 'op-2', error: 'Lock timeout' })
  t.same(stable(t, await viewer.nextOf('notification')), {
    ...base, collapseKey: 'maintenance:op-2', type: 'error', priority: 'high', title: 'Maintenance failed', message: 'Lock timeout',
    data: { operation_id: 'op-2', error: 'Lock timeout' }
  })

  const history = await user.request({ type: 'request_notification_history', categories: ['maintenance'] })
  const latest = history.result.notifications.map((n: any) => ({ key: n.collapseKey, type: n.type }))
  t.same(latest, [{ key: 'maintenance:op-2', type: 'error' }, { key: 'maintenance:op-1', type: 'success' }], 'one entry per operation, its latest state')
})

t.test('invalid payloads are rejected, counted, logged once each at warn without the payload, and never throw', async t => {
  const emitter = new EventEmitter()
  const h = await host(t, async app => {
    await app.register(dashboardAdapter, { emitter })
    await app.register(maintenanceProgressAdapter, { emitter })
    await app.register(adminHealthAdapter, { emitter })
  })
  const admin = await h.client('a1', 'admin')

  const circular: Record<string, unknown> = { user_id: 'alice', message: 'x' }
  circular.self = circular
  const cases: Array<[string, string, unknown]> = [
    ['null', 'user_notification', null],
    ['undefined', 'user_notification', undefined],
    ['a string', 'user_notification', 'SECRET-MARKER hello'],
    ['a number', 'broadcast_notification', 42],
    ['an array', 'broadcast_notification', ['SECRET-MARKER']],
    ['a missing field', 'user_notification', { message: 'SECRET-MARKER no user' }],
    ['a wrong type', 'user_notification', { user_id: 7, message: 'SECRET-MARKER' }],
    ['an unknown notification_type', 'broadcast_notification', { message: 'SECRET-MARKER', notification_type: 'loud' }],
    ['an own __proto__ key', 'broadcast_notification', JSON.parse('{"message":"SECRET-MARKER","__proto__":{"polluted":true}}')],
    ['a nested __proto__ key', 'user_notification', JSON.parse('{"user_id":"a","message":"m","data":{"x":{"__proto__":{"polluted":true}}}}')],
    ['constructor.prototype', 'user_notification', { user_id: 'a', message: 'm', data: { constructor: { prototype: { polluted: true } } } }],
    ['a circular object', 'user_notification', circular],
    ['a BigInt', 'user_notification', { user_id: 'a', message: 'm', data: { n: 10n } }],
    ['a control character in an id', 'user_notification', { user_id: 'a\u0000b', message: 'SECRET-MARKER' }],
    ['a title over 200 characters', 'broadcast_notification', { message: 'SECRET-MARKER', title: 'x'.repeat(201) }],
    ['data over 16 KiB (refused by the manager)', 'user_notification', { user_id: 'a', message: 'SECRET-MARKER', data: { blob: 'x'.repeat(17 * 1024) } }],
    ['progress above 100', 'maintenance_progress', { operation_id: 'op', progress: 101 }],
    ['an unknown health status', 'health_update', { status: 'fine', components: {}, timestamp: 1 }],
    ['an unknown severity', 'health_alert', { component: 'disk', severity: 'info', message: 'SECRET-MARKER' }]
  ]
  const warnsBefore = () => h.logs.filter(l => l.level === WARN && /payload rejected/.test(l.msg)).length
  for (const [label, event, payload] of cases) {
    const before = warnsBefore()
    t.doesNotThrow(() => emitter.emit(event, payload), `${label}: nothing thrown into the emitter`)
    // The manager's refusal (data too large) comes after an await.
    await new Promise(resolve => setImmediate(resolve))
    const rejections = h.logs.filter(l => l.level === WARN && /payload rejected/.test(l.msg)).slice(before)
    t.equal(rejections.length, 1, `${label}: one warning`)
    t.equal(rejections[0]?.event, event, `${label}: names the event`)
    t.type(rejections[0]?.adapter, 'string', `${label}: names the adapter`)
    t.notMatch(JSON.stringify(rejections[0]), /SECRET-MARKER|polluted/, `${label}: the payload is not logged`)
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched')

  const report = h.app.notifications.migration() as Record<string, any>
  const count = (adapter: string, event: string) => report[adapter].events[event]
  t.same(count('dashboard', 'user_notification'), { ...count('dashboard', 'user_notification'), received: 11, published: 0, rejected: 11, failed: 0 })
  t.same(count('dashboard', 'broadcast_notification'), { ...count('dashboard', 'broadcast_notification'), received: 5, published: 0, rejected: 5, failed: 0 })
  t.equal(count('maintenance', 'maintenance_progress').rejected, 1)
  t.equal(count('admin-health', 'health_update').rejected, 1)
  t.equal(count('admin-health', 'health_alert').rejected, 1)
  t.equal(report.dashboard.unmapped.received, 0, 'events another adapter on the same emitter maps are not unmapped')

  await assertNothingReceived(t, admin, 'nothing published')
  t.same(unhandled, [], 'no unhandled rejection')
})

t.test('a failing store never throws into the emitter nor leaves an unhandled rejection', async t => {
  const emitter = new EventEmitter()
  const h = await host(t, withAdapter(dashboardAdapter, { emitter }))
  const store = h.store
  const append = store.append
  store.append = async () => { throw new Error('disk full') }
  t.teardown(() => { store.append = append })

  t.doesNotThrow(() => emitter.emit('broadcast_notification', { message: 'lost' }))
  const outcome = await h.app.legacyAdapters.get('dashboard')!.ingest('broadcast_notification', { message: 'lost too' })
  t.equal(outcome.status, 'failed')
  await new Promise(resolve => setImmediate(resolve))
  t.match(reportOf(h.app).dashboard!.events.broadcast_notification, { received: 2, published: 0, rejected: 0, failed: 2 })
  t.equal(h.logs.filter(l => l.level === 50 && l.adapter === 'dashboard' && l.err?.message === 'disk full').length, 2, 'logged at error with the cause')
  t.same(unhandled, [], 'no unhandled rejection')

  store.append = append
  emitter.emit('broadcast_notification', { message: 'back' })
  const c = await h.client('u1', 'user')
  const history = await c.request({ type: 'request_notification_history' })
  t.same(history.result.notifications.map((n: any) => n.message), ['back'], 'publishes again once the store recovers')
})

t.test('an unknown event on a wrapped emitter is ignored and counted as unmapped', async t => {
  const emitter = new EventEmitter()
  const h = await host(t, withAdapter(dashboardAdapter, { emitter }))
  const u = await h.client('u1', 'user')
  t.doesNotThrow(() => emitter.emit('user_notificaton', { user_id: 'u1', message: 'typo' }))
  emitter.emit('user_notificaton', { user_id: 'u1', message: 'typo' })
  emitter.emit('something_else')
  emitter.on('newListener', () => {})
  await assertNothingReceived(t, u, 'unknown events')
  t.same(reportOf(h.app).dashboard!.unmapped, { received: 3, events: { user_notificaton: 2, something_else: 1 } })
})

t.test('closing the app removes every listener the adapters added and restores emit', async t => {
  const emitter = new EventEmitter()
  const ownListener = () => {}
  emitter.on('user_notification', ownListener)
  emitter.on('maintenance_started', ownListener)
  const events = ['user_notification', 'broadcast_notification', 'maintenance_started', 'maintenance_progress', 'maintenance_completed', 'maintenance_failed', 'health_update', 'health_alert']
  const counts = () => Object.fromEntries(events.map(e => [e, emitter.listenerCount(e)]))
  const before = counts()
  const h = await host(t, async app => {
    await app.register(dashboardAdapter, { emitter })
    await app.register(maintenanceProgressAdapter, { emitter })
    await app.register(adminHealthAdapter, { emitter })
  })
  t.same(counts(), Object.fromEntries(events.map(e => [e, before[e]! + 1])), 'one listener per mapped event while running')
  t.ok(Object.hasOwn(emitter, 'emit'), 'emit is wrapped while running')

  await h.app.close()
  t.same(counts(), before, 'listener counts back to what they were')
  t.notOk(Object.hasOwn(emitter, 'emit'), 'emit restored to the prototype’s')
  t.equal(emitter.emit, EventEmitter.prototype.emit)
  t.same(emitter.listeners('user_notification'), [ownListener], 'the legacy code’s own listener is kept')
  t.same(h.app.notifications.migration(), {}, 'reports unregistered')
  t.doesNotThrow(() => emitter.emit('user_notification', { user_id: 'a', message: 'after close' }))
})

t.test('a disabled adapter registers nothing', async t => {
  const emitter = new EventEmitter()
  const h = await host(t, async app => {
    await app.register(dashboardAdapter, { emitter, enabled: false })
    await app.register(adminHealthAdapter, { enabled: false } as LegacyAdapterOptions)
  })
  t.equal(emitter.listenerCount('user_notification'), 0)
  t.equal(emitter.listenerCount('broadcast_notification'), 0)
  t.notOk(Object.hasOwn(emitter, 'emit'), 'emit not wrapped')
  t.same(h.app.notifications.migration(), {})
  t.equal(h.app.legacyAdapters.size, 0, 'no adapter in app.legacyAdapters')

  const u = await h.client('u1', 'user')
  emitter.emit('broadcast_notification', { message: 'ignored' })
  await assertNothingReceived(t, u, 'disabled adapter')
})

t.test('options are checked at registration, and the root plugin is a declared dependency', async t => {
  const bare = Fastify()
  t.teardown(() => bare.close())
  await t.rejects(async () => { await bare.register(dashboardAdapter, { emitter: new EventEmitter() }).ready() }, { code: 'FST_ERR_PLUGIN_DEPENDENCY_NOT_REGISTERED', message: /dependency 'unified-notifications' of plugin 'unified-notifications-dashboard-adapter'/ }, 'root plugin missing')

  for (const [label, opts, message] of [
    ['no emitter', {}, /emitter must be an EventEmitter/],
    ['not an emitter', { emitter: { on: 1 } }, /emitter must be an EventEmitter/],
    ['enabled not a boolean', { emitter: new EventEmitter(), enabled: 'yes' }, /enabled must be a boolean/],
    ['forwardLegacyEvents not a boolean', { emitter: new EventEmitter(), forwardLegacyEvents: 1 }, /forwardLegacyEvents must be a boolean/]
  ] as const) {
    const app = Fastify()
    await app.register(unifiedNotifications, { jwtSecret: SECRET })
    app.register(dashboardAdapter, opts as unknown as LegacyAdapterOptions)
    await t.rejects(async () => { await app.ready() }, message, label)
    await app.close()
  }

  const twice = Fastify()
  await twice.register(unifiedNotifications, { jwtSecret: SECRET })
  twice.register(dashboardAdapter, { emitter: new EventEmitter() })
  twice.register(dashboardAdapter, { emitter: new EventEmitter() })
  await t.rejects(async () => { await twice.ready() }, /dashboard adapter is already registered/)
  await twice.close()
})

t.test('forwardLegacyEvents on: legacy=1 connections entitled to it also get the original payload', async t => {
  const emitter = new EventEmitter()
  const h = await host(t, withAdapter(dashboardAdapter, { emitter, forwardLegacyEvents: true }))
  const aliceLegacy = await h.client('alice', 'user', { legacy: '1' })
  const alicePlain = await h.client('alice', 'user')
  const bobLegacy = await h.client('bob', 'user', { legacy: '1' })

  const payload = { user_id: 'alice', message: 'hi', title: 'Hello', data: { n: 1 }, sent_by: 'legacy-cron' }
  emitter.emit('user_notification', payload)
  t.equal((await aliceLegacy.next()).type, 'notification', 'the unified frame first')
  t.same(await aliceLegacy.next(), { type: 'legacy', event: 'user_notification', data: payload }, 'then the legacy frame, payload unchanged (extra fields too)')
  t.equal((await alicePlain.nextOf('notification')).notification.message, 'hi')
  await assertNothingReceived(t, alicePlain, 'a connection without legacy=1')
  await assertNothingReceived(t, bobLegacy, 'a legacy=1 connection not entitled to it')

  emitter.emit('broadcast_notification', { message: 'to all' })
  await bobLegacy.nextOf('notification')
  t.same(await bobLegacy.next(), { type: 'legacy', event: 'broadcast_notification', data: { message: 'to all' } })
  t.same(reportOf(h.app).dashboard!.forwardLegacyEvents, true)
})

t.test('forwardLegacyEvents off (default): legacy=1 connections get the notification only', async t => {
  const emitter = new EventEmitter()
  const h = await host(t, withAdapter(maintenanceProgressAdapter, { emitter }))
  const legacy = await h.client('u1', 'user', { legacy: '1' })
  emitter.emit('maintenance_progress', { operation_id: 'op', progress: 10 })
  t.equal((await legacy.nextOf('notification')).notification.data.progress, 10)
  await assertNothingReceived(t, legacy, 'no legacy frame')
  t.same(reportOf(h.app).maintenance!.forwardLegacyEvents, false)
})

t.test('the migration report: exact counts per event, from manager, /migration and /stats; one deprecation warning per event', async t => {
  const emitter = new EventEmitter()
  const h = await host(t, async app => {
    await app.register(dashboardAdapter, { emitter })
    await app.register(maintenanceProgressAdapter, { emitter })
  })
  const dashboard = h.app.legacyAdapters.get('dashboard')!
  const maintenance = h.app.legacyAdapters.get('maintenance')!
  const t0 = Date.now()
  for (let i = 0; i < 3; i++) t.equal((await dashboard.ingest('user_notification', { user_id: 'u', message: `m${i}` })).status, 'published')
  t.equal((await dashboard.ingest('user_notification', { message: 'no user' })).status, 'rejected')
  t.equal((await maintenance.ingest('maintenance_progress', { operation_id: 'op', progress: 50 })).status, 'published')
  t.equal((await maintenance.ingest('maintenance_progress', null)).status, 'rejected')
  emitter.emit('no_such_event', {})

  const zero = { received: 0, published: 0, rejected: 0, failed: 0, lastSeenAt: null }
  const report = reportOf(h.app)
  const seen = (r: LegacyEventReport | undefined) => {
    const at = Date.parse(r?.lastSeenAt ?? '')
    t.ok(at >= t0 - 1000 && at <= Date.now(), 'lastSeenAt is a recent ISO time')
    return { ...r, lastSeenAt: 'seen' }
  }
  const dashboardReport = report.dashboard!
  const maintenanceReport = report.maintenance!
  t.same({ ...dashboardReport, events: { ...dashboardReport.events, user_notification: seen(dashboardReport.events.user_notification) } }, {
    forwardLegacyEvents: false,
    events: {
      user_notification: { received: 4, published: 3, rejected: 1, failed: 0, lastSeenAt: 'seen' },
      broadcast_notification: zero
    },
    unmapped: { received: 1, events: { no_such_event: 1 } }
  })
  t.same({ ...maintenanceReport, events: { ...maintenanceReport.events, maintenance_progress: seen(maintenanceReport.events.maintenance_progress) } }, {
    forwardLegacyEvents: false,
    events: {
      maintenance_started: zero,
      maintenance_progress: { received: 2, published: 1, rejected: 1, failed: 0, lastSeenAt: 'seen' },
      maintenance_completed: zero,
      maintenance_failed: zero
    },
    unmapped: { received: 1, events: { no_such_event: 1 } }
  })

  const auth = { authorization: `Bearer ${API_KEY}` }
  const migration = await h.app.inject({ method: 'GET', url: '/api/notifications/migration', headers: auth })
  t.equal(migration.statusCode, 200)
  t.same(migration.json(), { adapters: report }, 'the route serves the same report')
  const stats = await h.app.inject({ method: 'GET', url: '/api/notifications/stats', headers: auth })
  t.equal(stats.statusCode, 200)
  t.same(stats.json().migration, report, 'and so does stats')
  t.equal((await h.app.inject({ method: 'GET', url: '/api/notifications/migration' })).statusCode, 401)

  const deprecations = h.logs.filter(l => l.level === WARN && /is deprecated/.test(l.msg))
  t.same(deprecations.map(l => [l.adapter, l.event]), [['dashboard', 'user_notification'], ['maintenance', 'maintenance_progress']], 'one per event used')
  t.match(deprecations[0]!.msg, /app\.notifications\.publish\(\{ category: 'dashboard', audience: \{ users: \[userId\] \}/, 'names the unified call')
  t.match(deprecations[1]!.msg, /collapseKey: `maintenance:\$\{operationId\}`/)
})

t.test('two adapters sharing one emitter count unmapped only what neither maps, and clean up in any order', async t => {
  const emitter = new EventEmitter()
  const app = Fastify()
  await app.register(unifiedNotifications, { jwtSecret: SECRET })
  await app.register(dashboardAdapter, { emitter })
  await app.register(maintenanceProgressAdapter, { emitter })
  await app.ready()
  emitter.emit('maintenance_started', { operation_id: 'x', operation_type: 'y' })
  emitter.emit('mystery', 1)
  const report = reportOf(app)
  t.same(report.dashboard!.unmapped, { received: 1, events: { mystery: 1 } })
  t.same(report.maintenance!.unmapped, { received: 1, events: { mystery: 1 } })
  await app.close()
  t.equal(emitter.emit, EventEmitter.prototype.emit)
  t.equal(emitter.eventNames().length, 0)
})
