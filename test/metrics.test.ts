// GET /metrics: the Prometheus text format, credentials, and each metric moving
// when its event happens; the event channels have no subscriber without metrics.
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import t from 'tap'
import { events, type EventChannel } from '../src/events.js'
import { ConfigError, configFromEnv } from '../server/config.js'
import { unifiedNotifications } from '../index.js'
import { closeCodeLabel } from '../plugins/metrics.js'
import type { NotificationManager } from '../src/manager.js'
import type { StoredNotification } from '../src/schemas.js'
import { API_KEY, SECRET, build, connect, publishHttp, type Harness } from './helper.js'
import { buildSio, sio } from './socketio-helper.js'

interface Sample { name: string, labels: Record<string, string>, value: number }

/** Parses the text exposition format strictly: every line is a comment or a well-formed sample. */
function parse (text: string): { samples: Sample[], types: Map<string, string> } {
  const samples: Sample[] = []
  const types = new Map<string, string>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (type) { types.set(type[1]!, type[2]!); continue }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/.test(line)) continue
    // Values as Prometheus reads them (Go's ParseFloat: NaN and Inf in any case; prom-client writes 'Nan').
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|nan|[+-]inf)$/i.exec(line)
    if (!m) throw new Error(`not a valid exposition line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g)) labels[l[1]!] = l[2]!
    samples.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return { samples, types }
}

async function scrape (h: Harness, auth = `Bearer ${API_KEY}`): Promise<ReturnType<typeof parse>> {
  const res = await h.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: auth } })
  if (res.statusCode !== 200) throw new Error(`scrape: ${res.statusCode} ${res.body}`)
  return parse(res.body)
}

/** The value of one sample, 0 when the series does not exist yet. */
function value (m: ReturnType<typeof parse>, name: string, labels: Record<string, string> = {}): number {
  const s = m.samples.find(s => s.name === `unified_notifications_${name}` &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  return s?.value ?? 0
}

/** Resolves with the next event on `channel` from this app's manager. */
function next<T extends { origin: object }> (h: Harness, channel: EventChannel<T>): Promise<T> {
  return new Promise(resolve => {
    const name = String(channel.name)
    const listener = (message: unknown): void => {
      if ((message as T).origin !== h.app.notifications) return
      unsubscribe(name, listener)
      resolve(message as T)
    }
    subscribe(name, listener)
  })
}

t.test('GET /metrics: API key or admin token; 401 without credentials, 403 for a user', async t => {
  const h = await build(t)
  const none = await h.app.inject({ method: 'GET', url: '/metrics' })
  t.equal(none.statusCode, 401)
  t.equal(none.json().code, 'UN_MISSING_CREDENTIALS')
  const user = await h.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${await h.token('u1', 'user')}` } })
  t.equal(user.statusCode, 403)
  t.equal(user.json().code, 'UN_FORBIDDEN')
  const admin = await h.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${await h.token('a1', 'admin')}` } })
  t.equal(admin.statusCode, 200)
  t.match(admin.headers['content-type'], /^text\/plain; version=0\.0\.4/)
})

t.test('counts and latencies gathered between scrapes are all there at the next scrape, also past the latency buffer', async t => {
  const h = await build(t)
  const alice = await connect(h.ws, { token: await h.token('alice', 'user') })
  await alice.nextOf('connected')
  // Delivered events as the manager emits them, more than the 1,024 latencies held between scrapes.
  const n = await publishHttp(h, { category: 'system', title: 'real' })
  await alice.nextOf('notification')
  const notification = { ...n, category: 'system' } as unknown as StoredNotification
  for (let i = 0; i < 2500; i++) events.delivered.publish({ origin: h.app.notifications, notification, recipients: 2, publishedAt: Date.now() })
  let m = await scrape(h)
  t.equal(value(m, 'publish_to_send_seconds_count'), 2501, 'every latency observed')
  t.equal(value(m, 'delivered_total', { category: 'system' }), 5001)
  t.equal(value(m, 'published_total', { category: 'system', source: 'api' }), 1)
  m = await scrape(h)
  t.equal(value(m, 'publish_to_send_seconds_count'), 2501, 'a second scrape counts nothing twice')
  t.equal(value(m, 'delivered_total', { category: 'system' }), 5001)
  alice.close()
})

t.test('the text format: every metric of the contract with its type, plus default process metrics', async t => {
  const h = await build(t)
  const m = await scrape(h)
  const expected: Record<string, string> = {
    connections: 'gauge',
    connections_by_transport: 'gauge',
    published_total: 'counter',
    publish_failures_total: 'counter',
    delivered_total: 'counter',
    publish_to_send_seconds: 'histogram',
    replayed_total: 'counter',
    frames_rejected_total: 'counter',
    closes_total: 'counter',
    legacy_events_total: 'counter'
  }
  for (const [name, type] of Object.entries(expected)) {
    t.equal(m.types.get(`unified_notifications_${name}`), type, `${name} is a ${type}`)
  }
  t.ok(m.types.has('process_cpu_user_seconds_total'), 'default process metrics')
  t.ok(m.types.has('nodejs_eventloop_lag_seconds'), 'default Node.js metrics')
  t.equal(value(m, 'connections', { role: 'admin' }), 0, 'known roles start at 0')
  t.ok(m.samples.some(s => s.name === 'unified_notifications_connections_by_transport' && s.labels.transport === 'ws' && s.value === 0), 'the /ws door starts at 0')
  t.ok(m.samples.some(s => s.name === 'unified_notifications_delivered_total' && s.labels.category === 'security' && s.value === 0), 'known categories start at 0')
  const buckets = m.samples.filter(s => s.name === 'unified_notifications_publish_to_send_seconds_bucket').map(s => s.labels.le)
  t.ok(buckets.includes('0.0005') && buckets.includes('0.001') && buckets.includes('5') && buckets.includes('+Inf'), 'buckets from sub-millisecond to seconds')
})

t.test('each metric moves when its event happens', async t => {
  const h = await build(t, { legacyAdapters: ['maintenance'] })
  const before = await scrape(h)
  t.equal(value(before, 'connections', { role: 'user' }), 0)

  const alice = await connect(h.ws, { token: await h.token('alice', 'user') })
  await alice.nextOf('connected')
  const admin = await connect(h.ws, { token: await h.token('root', 'admin') })
  await admin.nextOf('connected')
  let m = await scrape(h)
  t.equal(value(m, 'connections', { role: 'user' }), 1, 'connections{role=user}')
  t.equal(value(m, 'connections', { role: 'admin' }), 1, 'connections{role=admin}')

  const sent = await publishHttp(h, { category: 'dashboard', title: 'hello' })
  await alice.nextOf('notification')
  await admin.nextOf('notification')
  m = await scrape(h)
  t.equal(value(m, 'published_total', { category: 'dashboard', source: 'api' }), 1, 'published_total{category,source}')
  t.equal(value(m, 'delivered_total', { category: 'dashboard' }), 2, 'delivered_total counts each recipient')
  t.equal(value(m, 'publish_to_send_seconds_count'), 1, 'one latency observation per notification')
  t.ok(value(m, 'publish_to_send_seconds_sum') > 0, 'with a positive duration')
  t.equal(value(m, 'publish_to_send_seconds_bucket', { le: '+Inf' }), 1)
  t.ok(value(m, 'publish_to_send_seconds_bucket', { le: '10' }) === 1, 'under ten seconds')

  // A duplicate is not a new publish.
  await publishHttp(h, { category: 'dashboard', title: 'once', idempotencyKey: 'k1' })
  await alice.nextOf('notification')
  await publishHttp(h, { category: 'dashboard', title: 'once', idempotencyKey: 'k1' })
  m = await scrape(h)
  t.equal(value(m, 'published_total', { category: 'dashboard', source: 'api' }), 2, 'duplicates are not counted')

  // Resume: two notifications replayed.
  const resumed = await connect(h.ws, { token: await h.token('bob', 'user'), query: { since: String(sent.seq - 1) } })
  const replayed = await resumed.nextOf('replayed')
  t.equal(replayed.count, 2)
  m = await scrape(h)
  t.equal(value(m, 'replayed_total'), 2, 'replayed_total counts replayed notifications')

  // Rejected frames, by code.
  const bad = await alice.request({ type: 'nope' })
  t.equal(bad.code, 'unknown_type')
  const forbidden = await alice.request({ type: 'subscribe_category', categories: ['admin'] })
  t.equal(forbidden.code, 'forbidden')
  alice.send('not json')
  await alice.nextOf('error')
  m = await scrape(h)
  t.equal(value(m, 'frames_rejected_total', { code: 'unknown_type' }), 1)
  t.equal(value(m, 'frames_rejected_total', { code: 'forbidden' }), 1)
  t.equal(value(m, 'frames_rejected_total', { code: 'bad_request' }), 1)

  // Closes, by code; the gauge goes back down.
  const closed = next(h, events.connectionClosed)
  alice.ws.close(1000)
  t.equal((await closed).code, 1000)
  const odd = next(h, events.connectionClosed)
  resumed.ws.close(4321)
  t.equal((await odd).code, 4321)
  m = await scrape(h)
  t.equal(value(m, 'closes_total', { code: '1000' }), 1, 'closes_total{code=1000}')
  t.equal(value(m, 'closes_total', { code: 'other' }), 1, 'a code outside the protocol is "other"')
  t.equal(value(m, 'connections', { role: 'user' }), 0, 'the gauge is back to 0')
  t.equal(value(m, 'connections', { role: 'admin' }), 1)

  // Legacy events: published, rejected, unmapped (one label value), failed.
  const ingest = (event: string, payload: unknown) => h.app.inject({
    method: 'POST', url: `/api/legacy/maintenance/${event}`, headers: { authorization: `Bearer ${API_KEY}` }, payload: payload as object
  })
  t.equal((await ingest('maintenance_started', { operation_id: 'op1', operation_type: 'backup' })).statusCode, 202)
  t.equal((await ingest('maintenance_started', { operation_id: 7 })).statusCode, 400)
  t.equal((await ingest('user-123-secret-event', {})).statusCode, 404)
  t.equal((await ingest('another-made-up-name', {})).statusCode, 404)
  const publishRaw = (body: object) => h.app.inject({ method: 'POST', url: '/api/notifications', headers: { authorization: `Bearer ${API_KEY}` }, payload: body })
  t.equal((await publishRaw({ category: 'nope', title: 'x' })).statusCode, 400)
  const manager = h.app.notifications as NotificationManager
  manager.stopAccepting()
  t.equal((await ingest('maintenance_completed', { operation_id: 'op1' })).statusCode, 503)
  t.equal((await publishRaw({ category: 'system', title: 'x' })).statusCode, 503)
  m = await scrape(h)
  t.equal(value(m, 'publish_failures_total', { code: 'UN_UNAVAILABLE' }), 2, 'publish 503s, REST and adapter')
  t.equal(value(m, 'publish_failures_total', { code: 'UN_UNKNOWN_CATEGORY' }), 1)
  const legacy = (event: string, outcome: string) => value(m, 'legacy_events_total', { adapter: 'maintenance', event, outcome })
  t.equal(legacy('maintenance_started', 'published'), 1)
  t.equal(legacy('maintenance_started', 'rejected'), 1)
  t.equal(legacy('unmapped', 'rejected'), 2, 'unknown event names collapse to one label value')
  t.equal(legacy('maintenance_completed', 'failed'), 1)
  t.notOk(m.samples.some(s => s.labels.event === 'user-123-secret-event'), 'no label value from the URL')
  t.equal(value(m, 'published_total', { category: 'maintenance', source: 'maintenance' }), 1, 'source is the adapter')
  admin.close()
})

t.test('a slow consumer close (4009) is counted under its code', async t => {
  const h = await build(t)
  const alice = await connect(h.ws, { token: await h.token('alice', 'user') })
  await alice.nextOf('connected')
  const session = [...(h.app.notifications as NotificationManager).registry.all()][0] as unknown as { close (code: number, reason: string): void }
  const closed = next(h, events.connectionClosed)
  session.close(4009, 'slow consumer')
  t.equal((await closed).code, 4009)
  t.equal(value(await scrape(h), 'closes_total', { code: '4009' }), 1)
  t.equal(closeCodeLabel(1006), '1006', 'a dropped connection keeps its code')
  t.equal(closeCodeLabel(3000), 'other')
})

t.test("two apps in one process: each counts only its own manager's events", async t => {
  const a = await build(t)
  const b = await build(t)
  const client = await connect(a.ws, { token: await a.token('alice') })
  await client.nextOf('connected')
  await publishHttp(a, { category: 'system', title: 'only in a' })
  await client.nextOf('notification')
  t.equal(value(await scrape(a), 'published_total', { category: 'system', source: 'api' }), 1)
  t.equal(value(await scrape(b), 'published_total', { category: 'system', source: 'api' }), 0)
  t.equal(value(await scrape(b), 'connections', { role: 'user' }), 0)
  client.close()
})

t.test('metrics off: no route and no subscriber on any channel (the delivery path pays nothing)', async t => {
  const h = await build(t, { metrics: false })
  const res = await h.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${API_KEY}` } })
  t.equal(res.statusCode, 404)
  for (const [name, channel] of Object.entries(events)) t.equal(channel.hasSubscribers, false, `${name}: no subscriber`)
})

t.test('closing the app unsubscribes its metrics', async t => {
  const h = await build(t)
  t.equal(events.delivered.hasSubscribers, true)
  await h.app.close()
  t.equal(events.delivered.hasSubscribers, false)
})

t.test("library: off by default; { registry } puts the metrics in the host app's registry without a route", async t => {
  const plain = Fastify()
  t.teardown(() => plain.close())
  await plain.register(unifiedNotifications, { jwtSecret: SECRET })
  t.equal((await plain.inject({ method: 'GET', url: '/metrics' })).statusCode, 404, 'no route by default')
  t.equal(events.published.hasSubscribers, false)

  const registry = new Registry()
  const host = Fastify()
  t.teardown(() => host.close())
  await host.register(unifiedNotifications, { jwtSecret: SECRET, apiKeys: [API_KEY], metrics: { registry } })
  t.equal((await host.inject({ method: 'GET', url: '/metrics' })).statusCode, 404, 'the host serves its registry itself')
  await host.notifications.publish({ category: 'system', title: 'x' })
  const m = parse(await registry.metrics())
  t.equal(m.samples.find(s => s.name === 'unified_notifications_published_total')?.value, 1)
  t.notOk(m.types.has('process_cpu_user_seconds_total'), 'no default metrics forced into the host registry')

  const wrong = Fastify()
  await t.rejects(async () => { await wrong.register(unifiedNotifications, { jwtSecret: SECRET, metrics: 'yes' as never }).ready() }, TypeError)
})

t.test('NOTIFY_METRICS: on by default in the standalone server, 0 turns it off, anything else fails at start', async t => {
  t.equal(configFromEnv({}).metrics, true)
  t.equal(configFromEnv({ NOTIFY_METRICS: '0' }).metrics, false)
  t.equal(configFromEnv({ NOTIFY_METRICS: 'true' }).metrics, true)
  t.throws(() => configFromEnv({ NOTIFY_METRICS: 'toString' }), ConfigError)
})

t.test('connections_by_transport: each door counted at scrape time, up on connect and down on close', async t => {
  const h = await buildSio(t)
  const token = await h.token('tess', 'user')
  const ws = await connect(h.ws, { token })
  await ws.nextOf('connected')
  const c = await sio(h, { auth: { token }, transports: ['websocket'] })
  await c.next('connected')
  let m = await scrape(h)
  t.equal(value(m, 'connections_by_transport', { transport: 'ws' }), 1, '{transport=ws}')
  t.equal(value(m, 'connections_by_transport', { transport: 'socketio' }), 1, '{transport=socketio}')
  t.equal(value(m, 'connections', { role: 'user' }), 2, 'the role gauge counts both doors')

  const closed = next(h, events.connectionClosed)
  c.close()
  await closed
  m = await scrape(h)
  t.equal(value(m, 'connections_by_transport', { transport: 'socketio' }), 0, 'back to 0 once the Socket.IO client left')
  t.equal(value(m, 'connections_by_transport', { transport: 'ws' }), 1)
  ws.close()
})
