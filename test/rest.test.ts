import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { MemoryStore } from '../src/stores/memory-store.js'
import { API_KEY, build, type Harness } from './helper.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const apiKey = { authorization: `Bearer ${API_KEY}` }
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

type Body = Record<string, unknown>

async function post (h: Harness, url: string, payload: unknown, headers: Record<string, string> = apiKey) {
  return h.app.inject({ method: 'POST', url, headers, payload: payload as Body })
}

async function get (h: Harness, url: string, headers: Record<string, string> = {}) {
  return h.app.inject({ method: 'GET', url, headers })
}

/** Asserts the status and Fastify's exact error shape. */
function isError (t: Test, res: LightMyRequestResponse, status: number, code?: string | RegExp): Record<string, unknown> {
  t.equal(res.statusCode, status, `status ${status} (${res.body})`)
  const body = res.json() as Record<string, unknown>
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], "exactly Fastify's error shape")
  t.equal(body.statusCode, status)
  t.type(body.code, 'string')
  t.type(body.error, 'string')
  t.type(body.message, 'string')
  if (code !== undefined) t.match(body.code, code)
  return body
}

/** The whole history an admin can see (everything not audience-restricted to others). */
async function everything (h: Harness): Promise<Array<{ title: string, seq: number }>> {
  const res = await get(h, '/api/notifications?limit=100', bearer(await h.token('root', 'admin')))
  return res.json().notifications
}

// ---- POST /api/notifications ----------------------------------------------------

t.test('POST /api/notifications publishes with an API key: 202 {id, seq, createdAt, duplicate:false}', async t => {
  const h = await build(t)
  const res = await post(h, '/api/notifications', { category: 'system', title: 'hello' })
  t.equal(res.statusCode, 202)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['createdAt', 'duplicate', 'id', 'seq'])
  t.match(body.id, UUID)
  t.equal(body.seq, 1)
  t.equal(new Date(body.createdAt).toISOString(), body.createdAt)
  t.equal(body.duplicate, false)
  const [stored] = await everything(h)
  t.match(stored, { id: body.id, title: 'hello', source: 'api', type: 'info', priority: 'normal', message: '' })
})

t.test('a repeated idempotencyKey answers 200 with the first notification and duplicate:true', async t => {
  const h = await build(t)
  const first = await post(h, '/api/notifications', { category: 'system', title: 'one', idempotencyKey: 'abc' })
  t.equal(first.statusCode, 202)
  const again = await post(h, '/api/notifications', { category: 'system', title: 'two', idempotencyKey: 'abc' })
  t.equal(again.statusCode, 200)
  t.same(again.json(), { ...first.json(), duplicate: true })
  t.same((await everything(h)).map(n => n.title), ['one'], 'stored once')
})

t.test('POST /api/notifications refuses invalid bodies with 400', async t => {
  const h = await build(t)
  isError(t, await post(h, '/api/notifications', { category: 'billing', title: 'x' }), 400, 'UN_UNKNOWN_CATEGORY')
  const unknownField = isError(t, await post(h, '/api/notifications', { category: 'system', title: 'x', colour: 'red' }), 400)
  t.match(unknownField.message, /additional|colour/i, 'an unknown field is refused, not silently stripped')
  isError(t, await post(h, '/api/notifications', { category: 'system', title: 123 }), 400)
  isError(t, await post(h, '/api/notifications', { category: 'system', title: 'x', priority: 1 }), 400)
  isError(t, await post(h, '/api/notifications', { category: 'system', title: 'x', data: 'str' }), 400)
  isError(t, await post(h, '/api/notifications', { category: 'system', title: 'x', audience: { users: 'alice' } }), 400)
  isError(t, await post(h, '/api/notifications', { category: 'system', title: 'x', audience: { roles: ['root'] } }), 400)
  isError(t, await post(h, '/api/notifications', { category: 'system', title: 'x', expiresAt: new Date(Date.now() - 1000).toISOString() }), 400)
  isError(t, await post(h, '/api/notifications', { category: 'system', title: 'x'.repeat(201) }), 400)
  isError(t, await post(h, '/api/notifications', { category: 'system', title: 'x', data: { s: 'x'.repeat(17 * 1024) } }), 400, 'UN_DATA_TOO_LARGE')
  isError(t, await post(h, '/api/notifications', { title: 'x' }), 400)
  isError(t, await post(h, '/api/notifications', [{ category: 'system', title: 'x' }]), 400)
  t.same(await everything(h), [], 'nothing was published')
})

t.test('title: 123 is not coerced to a string', async t => {
  const h = await build(t)
  const res = await post(h, '/api/notifications', { category: 'system', title: 123 })
  isError(t, res, 400)
  const res2 = await post(h, '/api/notifications', { category: 'system', title: 'x', message: true })
  isError(t, res2, 400)
  t.same(await everything(h), [])
})

t.test('a text/plain body is 415, not parsed as a string and refused as 400', async t => {
  const h = await build(t)
  const plain = await h.app.inject({
    method: 'POST', url: '/api/notifications', headers: { ...apiKey, 'content-type': 'text/plain' },
    payload: JSON.stringify({ category: 'system', title: 'x' })
  })
  isError(t, plain, 415, 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
  const form = await h.app.inject({
    method: 'POST', url: '/api/notifications/batch', headers: { ...apiKey, 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'category=system&title=x'
  })
  isError(t, form, 415)
  const read = await h.app.inject({
    method: 'POST', url: '/api/notifications/read', headers: { ...bearer(await h.token('alice')), 'content-type': 'text/plain' },
    payload: '{"all":true}'
  })
  isError(t, read, 415)
  t.same(await everything(h), [], 'nothing was published')
})

t.test('invalid JSON and prototype keys are 400', async t => {
  const h = await build(t)
  const invalid = await h.app.inject({
    method: 'POST', url: '/api/notifications', headers: { ...apiKey, 'content-type': 'application/json' },
    payload: '{"category":"system",'
  })
  isError(t, invalid, 400)
  const proto = await h.app.inject({
    method: 'POST', url: '/api/notifications', headers: { ...apiKey, 'content-type': 'application/json' },
    payload: '{"category":"system","title":"x","__proto__":{"admin":true}}'
  })
  isError(t, proto, 400)
  const nested = await h.app.inject({
    method: 'POST', url: '/api/notifications', headers: { ...apiKey, 'content-type': 'application/json' },
    payload: '{"category":"system","title":"x","data":{"__proto__":{"admin":true}}}'
  })
  isError(t, nested, 400)
  t.same(await everything(h), [], 'nothing was published')
})

t.test('publishing needs an API key or an admin token', async t => {
  const h = await build(t)
  const body = { category: 'system', title: 'x' }
  isError(t, await post(h, '/api/notifications', body, {}), 401, 'UN_MISSING_CREDENTIALS')
  isError(t, await post(h, '/api/notifications', body, bearer('not-a-token')), 401, 'UN_INVALID_TOKEN')
  isError(t, await post(h, '/api/notifications', body, bearer('wrong-api-key')), 401)
  isError(t, await post(h, '/api/notifications', body, { authorization: `Basic ${API_KEY}` }), 401)
  isError(t, await post(h, '/api/notifications', body, bearer(await h.token('bob', 'user', -10))), 401, 'UN_INVALID_TOKEN')
  isError(t, await post(h, '/api/notifications', body, bearer(await h.token('bob', 'user'))), 403, 'UN_FORBIDDEN')
  isError(t, await post(h, '/api/notifications', body, bearer(await h.token('mo', 'moderator'))), 403)
  isError(t, await post(h, '/api/notifications', body, bearer(await h.token('x', 'superuser'))), 403, 'UN_UNKNOWN_ROLE')
  t.same(await everything(h), [], 'nothing was published')
  const admin = await post(h, '/api/notifications', body, bearer(await h.token('root', 'admin')))
  t.equal(admin.statusCode, 202)
  t.equal(admin.json().duplicate, false)
})

// ---- POST /api/notifications/batch ------------------------------------------------

t.test('POST /api/notifications/batch publishes all, in order', async t => {
  const h = await build(t)
  const res = await post(h, '/api/notifications/batch', {
    notifications: [{ category: 'system', title: 'a' }, { category: 'dashboard', title: 'b', idempotencyKey: 'k' }, { category: 'system', title: 'c' }]
  })
  t.equal(res.statusCode, 202)
  const { results } = res.json()
  t.same(Object.keys(res.json()), ['results'])
  t.same(results.map((r: { seq: number, duplicate: boolean }) => [r.seq, r.duplicate]), [[1, false], [2, false], [3, false]])
  for (const r of results) t.match(r.id, UUID)
  t.same((await everything(h)).map(n => n.title), ['c', 'b', 'a'])
  const again = await post(h, '/api/notifications/batch', { notifications: [{ category: 'dashboard', title: 'b2', idempotencyKey: 'k' }] })
  t.equal(again.json().results[0].duplicate, true)
  t.equal(again.json().results[0].id, results[1].id)
})

t.test('a batch with one invalid item is refused and nothing is published', async t => {
  const h = await build(t)
  isError(t, await post(h, '/api/notifications/batch', {
    notifications: [{ category: 'system', title: 'a' }, { category: 'billing', title: 'b' }, { category: 'system', title: 'c' }]
  }), 400)
  isError(t, await post(h, '/api/notifications/batch', {
    notifications: [{ category: 'system', title: 'a' }, { category: 'system', title: 'b', extra: 1 }]
  }), 400)
  isError(t, await post(h, '/api/notifications/batch', {
    notifications: [{ category: 'system', title: 'a' }, { category: 'system', title: 'b', audience: { roles: ['nobody'] } }]
  }), 400)
  t.same(await everything(h), [], 'nothing was published')
  t.equal(h.app.notifications.stats().published, 0)
})

t.test('a batch must hold 1..100 notifications', async t => {
  const h = await build(t)
  const many = Array.from({ length: 101 }, (_, i) => ({ category: 'system', title: `n${i}` }))
  isError(t, await post(h, '/api/notifications/batch', { notifications: many }), 400)
  isError(t, await post(h, '/api/notifications/batch', { notifications: [] }), 400)
  isError(t, await post(h, '/api/notifications/batch', { notifications: [{ category: 'system', title: 'x' }], more: true }), 400)
  t.same(await everything(h), [])
  const hundred = await post(h, '/api/notifications/batch', { notifications: many.slice(0, 100) })
  t.equal(hundred.statusCode, 202)
  t.equal(hundred.json().results.length, 100)
})

t.test('the batch route needs the same credentials', async t => {
  const h = await build(t)
  const body = { notifications: [{ category: 'system', title: 'x' }] }
  isError(t, await post(h, '/api/notifications/batch', body, {}), 401)
  isError(t, await post(h, '/api/notifications/batch', body, bearer(await h.token('bob'))), 403)
  t.equal((await post(h, '/api/notifications/batch', body, bearer(await h.token('root', 'admin')))).statusCode, 202)
})

// ---- GET /api/notifications and POST /api/notifications/read ----------------------

t.test("GET /api/notifications lists only the caller's entitled notifications", async t => {
  const h = await build(t)
  const publish = async (body: Body) => (await post(h, '/api/notifications', body)).json()
  await publish({ category: 'system', title: 'everyone' })
  await publish({ category: 'dashboard', title: 'for bob', audience: { users: ['bob'] } })
  await publish({ category: 'dashboard', title: 'for alice', audience: { users: ['alice'] } })
  await publish({ category: 'dashboard', title: 'dash' })
  await publish({ category: 'admin', title: 'admins' })
  await publish({ category: 'maintenance', title: 'for admins', audience: { roles: ['admin'] } })

  const list = async (sub: string, role = 'user', query = '') => {
    const res = await get(h, `/api/notifications${query}`, bearer(await h.token(sub, role)))
    t.equal(res.statusCode, 200)
    return res.json()
  }
  const alice = await list('alice')
  t.same(alice.notifications.map((n: { title: string }) => n.title), ['dash', 'for alice', 'everyone'], 'newest first')
  t.equal(alice.hasMore, false)
  t.equal(alice.unread, 3)
  for (const n of alice.notifications) {
    t.notOk('audience' in n, 'no audience in the response')
    t.equal(n.read, false)
  }
  t.notOk(JSON.stringify(alice).includes('for bob'), 'alice never sees the notification targeted at bob')
  const viewer = await list('vic', 'viewer')
  t.same(viewer.notifications.map((n: { title: string }) => n.title), ['everyone'], 'a viewer never sees dashboard')
  const admin = await list('root', 'admin')
  t.same(admin.notifications.map((n: { title: string }) => n.title), ['for admins', 'admins', 'dash', 'everyone'])
})

t.test('GET /api/notifications pages with limit and before', async t => {
  const h = await build(t)
  for (let i = 1; i <= 5; i++) await post(h, '/api/notifications', { category: 'system', title: `n${i}` })
  const auth = bearer(await h.token('alice'))
  const p1 = (await get(h, '/api/notifications?limit=2', auth)).json()
  t.same(p1.notifications.map((n: { seq: number }) => n.seq), [5, 4])
  t.equal(p1.hasMore, true)
  const p2 = (await get(h, `/api/notifications?limit=2&before=${p1.notifications[1].seq}`, auth)).json()
  t.same(p2.notifications.map((n: { seq: number }) => n.seq), [3, 2])
  t.equal(p2.hasMore, true)
  const p3 = (await get(h, '/api/notifications?limit=2&before=2', auth)).json()
  t.same(p3.notifications.map((n: { seq: number }) => n.seq), [1])
  t.equal(p3.hasMore, false)
  isError(t, await get(h, '/api/notifications?limit=0', auth), 400)
  isError(t, await get(h, '/api/notifications?limit=101', auth), 400)
  isError(t, await get(h, '/api/notifications?limit=abc', auth), 400)
  isError(t, await get(h, '/api/notifications?before=0', auth), 400)
  isError(t, await get(h, '/api/notifications?since=3', auth), 400, undefined)
})

t.test('GET /api/notifications filters by category', async t => {
  const h = await build(t)
  await post(h, '/api/notifications', { category: 'system', title: 's' })
  await post(h, '/api/notifications', { category: 'dashboard', title: 'd' })
  await post(h, '/api/notifications', { category: 'admin', title: 'a' })
  const auth = bearer(await h.token('alice'))
  const res = await get(h, '/api/notifications?category=dashboard', auth)
  t.equal(res.statusCode, 200)
  t.same(res.json().notifications.map((n: { title: string }) => n.title), ['d'])
  isError(t, await get(h, '/api/notifications?category=admin', auth), 403, 'UN_FORBIDDEN')
  isError(t, await get(h, '/api/notifications?category=dashboard', bearer(await h.token('vic', 'viewer'))), 403)
  isError(t, await get(h, '/api/notifications?category=billing', auth), 400)
})

t.test('GET /api/notifications needs a user token', async t => {
  const h = await build(t)
  isError(t, await get(h, '/api/notifications'), 401, 'UN_MISSING_CREDENTIALS')
  isError(t, await get(h, '/api/notifications', bearer('garbage')), 401, 'UN_INVALID_TOKEN')
  isError(t, await get(h, '/api/notifications', bearer(await h.token('x', 'superuser'))), 403, 'UN_UNKNOWN_ROLE')
})

t.test('unread filter, unread count and POST /api/notifications/read', async t => {
  const h = await build(t)
  const ids: string[] = []
  for (let i = 1; i <= 4; i++) ids.push((await post(h, '/api/notifications', { category: 'dashboard', title: `n${i}` })).json().id)
  const auth = bearer(await h.token('alice'))
  const read = await post(h, '/api/notifications/read', { ids: [ids[0], ids[2]] }, auth)
  t.equal(read.statusCode, 200)
  t.same(read.json(), { unread: 2 })
  const all = (await get(h, '/api/notifications', auth)).json()
  t.same(all.notifications.map((n: { title: string, read: boolean }) => [n.title, n.read]), [['n4', false], ['n3', true], ['n2', false], ['n1', true]])
  t.equal(all.unread, 2)
  const unread = (await get(h, '/api/notifications?unread=true', auth)).json()
  t.same(unread.notifications.map((n: { title: string }) => n.title), ['n4', 'n2'])
  t.equal(unread.unread, 2)
  t.equal((await get(h, '/api/notifications', bearer(await h.token('bob')))).json().unread, 4, 'read state is per user')

  const allRead = await post(h, '/api/notifications/read', { all: true }, auth)
  t.same(allRead.json(), { unread: 0 })
  t.same((await get(h, '/api/notifications?unread=true', auth)).json().notifications, [])
  await post(h, '/api/notifications', { category: 'dashboard', title: 'n5' })
  t.equal((await get(h, '/api/notifications', auth)).json().unread, 1)
})

t.test('POST /api/notifications/read refuses bad bodies', async t => {
  const h = await build(t)
  const auth = bearer(await h.token('alice'))
  isError(t, await post(h, '/api/notifications/read', { ids: ['a'], all: true }, auth), 400)
  isError(t, await post(h, '/api/notifications/read', {}, auth), 400)
  isError(t, await post(h, '/api/notifications/read', { ids: [] }, auth), 400)
  isError(t, await post(h, '/api/notifications/read', { all: false }, auth), 400)
  isError(t, await post(h, '/api/notifications/read', { ids: 'a' }, auth), 400)
  isError(t, await post(h, '/api/notifications/read', { all: true }, {}), 401)
})

// ---- operations -----------------------------------------------------------------

t.test('GET /api/notifications/stats and /migration: API key or admin only', async t => {
  const h = await build(t)
  await post(h, '/api/notifications', { category: 'system', title: 'x', idempotencyKey: 'k' })
  await post(h, '/api/notifications', { category: 'system', title: 'x', idempotencyKey: 'k' })
  const userToken = bearer(await h.token('bob'))
  for (const url of ['/api/notifications/stats', '/api/notifications/migration']) {
    isError(t, await get(h, url), 401)
    isError(t, await get(h, url, userToken), 403)
  }
  const stats = await get(h, '/api/notifications/stats', apiKey)
  t.equal(stats.statusCode, 200)
  t.same(stats.json(), {
    connections: 0, users: 0, transports: { ws: 0 }, subscriptions: {}, published: 1, duplicates: 1, delivered: 0, migration: {},
    instance: h.app.notifications.instance,
    cluster: { instances: 1, connections: 0, users: 0 },
    internals: {
      registry: { connections: 0, users: 0, roles: 0, categories: 0, indexed: 0, subscriptions: 0 },
      websocket: { sockets: 0, starting: 0, expiryTimers: 0, closeTimers: 0, pendingFrames: 0, wsClients: 0 }
    }
  })
  // A provider in the shape the adapters report (src/migration-report.ts).
  const report = {
    forwardLegacyEvents: false,
    events: { user_notification: { received: 2, published: 1, rejected: 1, failed: 0, lastSeenAt: '2024-01-01T00:00:00.000Z' } },
    unmapped: { received: 0, events: {} }
  }
  h.app.notifications.registerMigrationReport('dashboard', () => report)
  const migration = await get(h, '/api/notifications/migration', apiKey)
  t.equal(migration.statusCode, 200)
  t.same(migration.json(), { adapters: { dashboard: report } })
  const adminStats = await get(h, '/api/notifications/stats', bearer(await h.token('root', 'admin')))
  t.equal(adminStats.statusCode, 200)
  t.same(adminStats.json().migration, { dashboard: report })
  t.same(Object.keys(adminStats.json()).sort(), ['cluster', 'connections', 'delivered', 'duplicates', 'instance', 'internals', 'migration', 'published', 'subscriptions', 'transports', 'users'])
})

t.test('GET /health is 200 when store and broker answer', async t => {
  const h = await build(t)
  const res = await get(h, '/health')
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status: 'ok', store: 'up', broker: 'up' })
})

t.test('GET /health is 503 when the store does not answer', async t => {
  class DownStore extends MemoryStore {
    override async ping (): Promise<void> { throw new Error('store down') }
  }
  const h = await build(t, { store: new DownStore() })
  const res = await get(h, '/health')
  t.equal(res.statusCode, 503)
  t.same(res.json(), { status: 'unavailable', store: 'down', broker: 'up' })
})

t.test('GET /docs/json lists the REST paths', async t => {
  const h = await build(t)
  const res = await get(h, '/docs/json')
  t.equal(res.statusCode, 200)
  const paths = res.json().paths as Record<string, Record<string, unknown>>
  t.ok(paths['/api/notifications']?.post, 'POST /api/notifications')
  t.ok(paths['/api/notifications']?.get, 'GET /api/notifications')
  t.ok(paths['/api/notifications/batch']?.post)
  t.ok(paths['/api/notifications/read']?.post)
  t.ok(paths['/api/notifications/stats']?.get)
  t.ok(paths['/api/notifications/migration']?.get)
  t.ok(paths['/health']?.get)
})
