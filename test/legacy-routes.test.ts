// The standalone server's legacy adapters: NOTIFY_LEGACY_ADAPTERS and
// POST /api/legacy/<adapter>/<event>, with real WebSocket clients receiving.
import t, { type Test } from 'tap'
import { ConfigError, buildServer, configFromEnv } from '../server/index.js'
import { API_KEY, SECRET, build, connect, type Client, type Harness } from './helper.js'

const auth = { authorization: `Bearer ${API_KEY}` }

function post (h: Harness, path: string, payload: unknown, headers: Record<string, string> = auth) {
  return h.app.inject({
    method: 'POST',
    url: `/api/legacy/${path}`,
    headers: { ...headers, 'content-type': 'application/json' },
    payload: JSON.stringify(payload)
  })
}

async function client (t: Test, h: Harness, sub: string, role: string, query?: Record<string, string>): Promise<Client> {
  const c = await connect(h.ws, { token: await h.token(sub, role), ...(query ? { query } : {}) })
  t.teardown(() => c.close())
  t.equal((await c.next()).type, 'connected')
  return c
}

async function assertNothingReceived (t: Test, c: Client, label: string): Promise<void> {
  t.equal((await c.request({ type: 'ping' })).type, 'reply')
  t.same(c.pending().filter(f => f.type === 'notification' || f.type === 'legacy'), [], label)
}

const report = async (h: Harness) => (await h.app.inject({ method: 'GET', url: '/api/notifications/migration', headers: auth })).json().adapters

t.test('NOTIFY_LEGACY_ADAPTERS: parsed from the environment; an unknown name fails at startup', async t => {
  t.same(configFromEnv({ NOTIFY_LEGACY_ADAPTERS: 'dashboard, admin-health,maintenance' }).legacyAdapters, ['dashboard', 'admin-health', 'maintenance'])
  t.equal(configFromEnv({}).legacyAdapters, undefined)
  t.equal(configFromEnv({ NOTIFY_LEGACY_ADAPTERS: ' ' }).legacyAdapters, undefined)
  t.throws(() => configFromEnv({ NOTIFY_LEGACY_ADAPTERS: 'dashboard,billing' }), { name: 'ConfigError', message: /unknown adapter 'billing'.*known: dashboard, admin-health, maintenance/ })
  t.throws(() => configFromEnv({ NOTIFY_LEGACY_ADAPTERS: 'constructor' }), ConfigError)
  await t.rejects(buildServer({ jwtSecret: SECRET, store: 'memory', logger: false, legacyAdapters: ['nope'] }), ConfigError)
})

t.test('POST /api/legacy/<adapter>/<event>: 202 and the frames reach the entitled users only', async t => {
  const h = await build(t, { legacyAdapters: ['dashboard', 'admin-health', 'maintenance'] })
  const alice = await client(t, h, 'alice', 'user', { legacy: '1' })
  const bob = await client(t, h, 'bob', 'user')
  const admin = await client(t, h, 'root', 'admin')

  const payload = { user_id: 'alice', message: 'Report ready', notification_type: 'success' }
  const res = await post(h, 'dashboard/user_notification', payload)
  t.equal(res.statusCode, 202)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['createdAt', 'duplicate', 'id', 'seq'])
  t.equal(body.duplicate, false)
  const frame = await alice.nextOf('notification')
  t.match(frame.notification, { id: body.id, seq: body.seq, category: 'dashboard', type: 'success', message: 'Report ready', source: 'dashboard' })
  t.same(await alice.next(), { type: 'legacy', event: 'user_notification', data: payload }, 'the standalone server forwards legacy frames to legacy=1 connections')
  await assertNothingReceived(t, bob, 'another user')
  await assertNothingReceived(t, admin, 'an admin')

  t.equal((await post(h, 'admin-health/health_alert', { component: 'db', severity: 'critical', message: 'down' })).statusCode, 202)
  t.match((await admin.nextOf('notification')).notification, { category: 'health', type: 'error', priority: 'critical', source: 'admin-health' })
  await assertNothingReceived(t, admin, 'admin: no legacy frame without legacy=1')
  await assertNothingReceived(t, alice, 'a user: not an admin')

  t.equal((await post(h, 'maintenance/maintenance_progress', { operation_id: 'op-9', progress: 75 })).statusCode, 202)
  for (const c of [alice, bob, admin]) {
    t.match((await c.nextOf('notification')).notification, { category: 'maintenance', type: 'progress', collapseKey: 'maintenance:op-9', data: { operation_id: 'op-9', progress: 75 } })
  }
})

t.test('an invalid payload: 400 with the schema error, counted as rejected exactly once, nothing delivered', async t => {
  const h = await build(t, { legacyAdapters: ['maintenance'] })
  const c = await client(t, h, 'u1', 'user', { legacy: '1' })

  const res = await post(h, 'maintenance/maintenance_progress', { operation_id: 'op', progress: 150 })
  t.equal(res.statusCode, 400)
  t.same(res.json(), {
    statusCode: 400,
    code: 'UN_INVALID_LEGACY_PAYLOAD',
    error: 'Bad Request',
    message: "Invalid 'maintenance_progress' payload: /progress Expected number to be less or equal to 100"
  })
  for (const [label, payload, message] of [
    ['null', null, /payload: \/ Expected object/],
    ['a string', 'progress', /payload: \/ Expected object/],
    ['a missing field', { progress: 5 }, /\/operation_id/]
  ] as const) {
    const r = await post(h, 'maintenance/maintenance_progress', payload)
    t.equal(r.statusCode, 400, label)
    t.match(r.json(), { code: 'UN_INVALID_LEGACY_PAYLOAD', message }, label)
  }
  await assertNothingReceived(t, c, 'rejected payloads publish nothing')
  t.match((await report(h)).maintenance.events.maintenance_progress, { received: 4, published: 0, rejected: 4, failed: 0 })
})

t.test('404 for an adapter that is not enabled or an event it does not know; the unknown event counts as unmapped', async t => {
  const h = await build(t, { legacyAdapters: ['dashboard'] })
  const notEnabled = await post(h, 'maintenance/maintenance_started', { operation_id: 'x', operation_type: 'y' })
  t.equal(notEnabled.statusCode, 404)
  t.same(notEnabled.json(), { statusCode: 404, code: 'UN_NOT_FOUND', error: 'Not Found', message: "Legacy adapter 'maintenance' is not enabled" })
  t.equal((await post(h, 'billing/invoice', {})).statusCode, 404)

  const unknown = await post(h, 'dashboard/user_notificaton', { user_id: 'a', message: 'typo' })
  t.equal(unknown.statusCode, 404)
  t.same(unknown.json(), { statusCode: 404, code: 'UN_NOT_FOUND', error: 'Not Found', message: "Legacy adapter 'dashboard' has no event 'user_notificaton'" })
  t.equal((await post(h, 'dashboard/error', {})).statusCode, 404, "an event named 'error' is not emitted (it would throw)")

  const r = await report(h)
  t.same(Object.keys(r), ['dashboard'], 'only the enabled adapter reports')
  t.same(r.dashboard.unmapped, { received: 2, events: { user_notificaton: 1, error: 1 } })
})

t.test('the ingest route needs an API key: 401 without one, 401 with a wrong key or a user token', async t => {
  const h = await build(t, { legacyAdapters: ['dashboard'] })
  const payload = { message: 'hello' }
  const none = await post(h, 'dashboard/broadcast_notification', payload, {})
  t.equal(none.statusCode, 401)
  t.match(none.json(), { statusCode: 401, code: 'UN_MISSING_CREDENTIALS', error: 'Unauthorized' })
  const wrong = await post(h, 'dashboard/broadcast_notification', payload, { authorization: 'Bearer not-the-key' })
  t.equal(wrong.statusCode, 401)
  t.match(wrong.json(), { code: 'UN_INVALID_TOKEN' })
  const adminToken = await post(h, 'dashboard/broadcast_notification', payload, { authorization: `Bearer ${await h.token('root', 'admin')}` })
  t.equal(adminToken.statusCode, 401, 'a legacy service authenticates with an API key, not a user token')
  t.equal((await post(h, 'maintenance/maintenance_started', {}, {})).statusCode, 401, 'credentials are checked before the adapter lookup')
  t.match((await report(h)).dashboard.events.broadcast_notification, { received: 0 }, 'refused requests are not counted')
})

t.test('without NOTIFY_LEGACY_ADAPTERS no adapter runs: 404, and the report is empty', async t => {
  const h = await build(t)
  t.equal((await post(h, 'dashboard/broadcast_notification', { message: 'x' })).statusCode, 404)
  t.same(await report(h), {})
  const stats = await h.app.inject({ method: 'GET', url: '/api/notifications/stats', headers: auth })
  t.same(stats.json().migration, {})
})

t.test('the report counts the ingest route, and the stats route carries it', async t => {
  const h = await build(t, { legacyAdapters: ['admin-health'] })
  const update = { status: 'degraded', components: { cache: { status: 'degraded', message: 'slow' } }, timestamp: 1714557600000 }
  t.equal((await post(h, 'admin-health/health_update', update)).statusCode, 202)
  t.equal((await post(h, 'admin-health/health_update', update)).statusCode, 202)
  t.equal((await post(h, 'admin-health/health_update', { ...update, status: 'meh' })).statusCode, 400)
  const stats = (await h.app.inject({ method: 'GET', url: '/api/notifications/stats', headers: auth })).json()
  const r = stats.migration['admin-health']
  t.match(r.events.health_update, { received: 3, published: 2, rejected: 1, failed: 0 })
  t.match(r.events.health_update.lastSeenAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
  t.same(r.events.health_alert, { received: 0, published: 0, rejected: 0, failed: 0, lastSeenAt: null })
  t.equal(r.forwardLegacyEvents, true)
  t.equal(stats.published, 2)
})

t.test('closing the standalone server removes the adapters\' listeners', async t => {
  const h = await build(t, { legacyAdapters: ['maintenance'] })
  const emitter = h.app.legacyAdapters.get('maintenance')!.emitter
  t.equal(emitter.listenerCount('maintenance_progress'), 1)
  await h.app.close()
  t.same(emitter.eventNames(), [])
})
