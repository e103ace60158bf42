// Errors that used to mislead (issue 10, item 4) and the same mistake getting
// the same code everywhere (issue 9, item 4): each case asserts the code and
// that the message says what is wrong.
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { MemoryStore } from '../src/stores/memory-store.js'
import { API_KEY, build, connect, refusedUpgrade, type Harness } from './helper.js'

const apiKey = { authorization: `Bearer ${API_KEY}` }
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

function post (h: Harness, url: string, payload: unknown, headers: Record<string, string> = apiKey) {
  return h.app.inject({ method: 'POST', url, headers, payload: payload as Record<string, unknown> })
}

/** Asserts the status, Fastify's exact error shape and the code; returns the message. */
function errorOf (t: Test, res: LightMyRequestResponse, status: number, code: string): string {
  t.equal(res.statusCode, status, `status ${status} (${res.body})`)
  const body = res.json() as Record<string, unknown>
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], "Fastify's error shape")
  t.equal(body.code, code)
  return body.message as string
}

t.test('an unknown category is UN_UNKNOWN_CATEGORY on every REST route and the handshake, bad_request on the socket', async t => {
  const h = await build(t)
  const user = await h.token('alice')
  const expected = "Unknown category 'billing'"
  t.equal(errorOf(t, await post(h, '/api/notifications', { category: 'billing', title: 'x' }), 400, 'UN_UNKNOWN_CATEGORY'), expected, 'publish')
  t.equal(errorOf(t, await post(h, '/api/notifications/batch', { notifications: [{ category: 'billing', title: 'x' }] }), 400, 'UN_UNKNOWN_CATEGORY'), `notifications[0]: ${expected}`, 'batch')
  t.equal(errorOf(t, await h.app.inject({ method: 'GET', url: '/api/notifications?category=billing', headers: bearer(user) }), 400, 'UN_UNKNOWN_CATEGORY'), expected, 'history')
  const handshake = await refusedUpgrade(h.ws, { token: user, query: { categories: 'system,billing' } })
  t.equal(handshake.statusCode, 400)
  t.match(handshake.body, { code: 'UN_UNKNOWN_CATEGORY', message: expected }, 'handshake')
  await t.rejects(h.app.notifications.publish({ category: 'billing', title: 'x' }), { code: 'UN_UNKNOWN_CATEGORY', message: expected }, 'in-process publish')

  const c = await connect(h.ws, { token: user })
  await c.next()
  for (const frame of [
    { type: 'subscribe_category', categories: ['billing'] },
    { type: 'unsubscribe_category', categories: ['billing'] },
    { type: 'request_notification_history', categories: ['billing'] }
  ]) {
    t.match(await c.request(frame), { type: 'error', code: 'bad_request', message: expected }, frame.type)
  }
  c.close()
})

t.test('a category the role may not see is UN_FORBIDDEN on REST and forbidden on the socket, with the same message', async t => {
  const h = await build(t)
  const viewer = await h.token('vic', 'viewer')
  const expected = "Role 'viewer' may not see category 'dashboard'"
  t.equal(errorOf(t, await h.app.inject({ method: 'GET', url: '/api/notifications?category=dashboard', headers: bearer(viewer) }), 403, 'UN_FORBIDDEN'), expected)
  const c = await connect(h.ws, { token: viewer })
  await c.next()
  t.match(await c.request({ type: 'subscribe_category', categories: ['dashboard'] }), { type: 'error', code: 'forbidden', message: expected })
  c.close()
})

t.test('an unknown API key is not called a bad token signature', async t => {
  const h = await build(t)
  const message = errorOf(t, await post(h, '/api/notifications', { category: 'system', title: 'x' }, bearer('not-a-key-we-know')), 401, 'UN_INVALID_TOKEN')
  t.notMatch(message, /signature/)
  t.match(message, /neither an API key this server accepts nor a JWT/)
  const onUserRoute = errorOf(t, await h.app.inject({ method: 'GET', url: '/api/notifications', headers: bearer('not-a-key-we-know') }), 401, 'UN_INVALID_TOKEN')
  t.match(onUserRoute, /not a JWT/)
})

t.test('a valid API key on a user route is 403: a key is not a user', async t => {
  const h = await build(t)
  const history = errorOf(t, await h.app.inject({ method: 'GET', url: '/api/notifications', headers: apiKey }), 403, 'UN_FORBIDDEN')
  t.match(history, /API key is not a user/)
  t.notMatch(history, /signature/)
  errorOf(t, await post(h, '/api/notifications/read', { all: true }, apiKey), 403, 'UN_FORBIDDEN')
  const ws = await refusedUpgrade(h.ws, { token: API_KEY })
  t.equal(ws.statusCode, 403)
  t.match(ws.body, { code: 'UN_FORBIDDEN', message: /API key is not a user/ })
})

t.test('an API key shaped like a JWT is still told apart from one (its digest is checked when a key could be a JWT)', async t => {
  const jwtShapedKey = 'aaaa.bbbb.cccc'
  const h = await build(t, { apiKeys: [jwtShapedKey] })
  const history = errorOf(t, await h.app.inject({ method: 'GET', url: '/api/notifications', headers: bearer(jwtShapedKey) }), 403, 'UN_FORBIDDEN')
  t.match(history, /API key is not a user/)
  const invalid = errorOf(t, await h.app.inject({ method: 'GET', url: '/api/notifications', headers: bearer('aaaa.bbbb.dddd') }), 401, 'UN_INVALID_TOKEN')
  t.match(invalid, /signature or format/, 'another JWT-shaped token is checked as a JWT')
  t.equal((await post(h, '/api/notifications', { category: 'system', title: 'x' }, bearer(jwtShapedKey))).statusCode, 202, 'and publishes')
})

t.test('stats and migration refusals do not talk about publishing', async t => {
  const h = await build(t)
  const user = bearer(await h.token('bob'))
  for (const url of ['/api/notifications/stats', '/api/notifications/migration']) {
    const message = errorOf(t, await h.app.inject({ method: 'GET', url, headers: user }), 403, 'UN_FORBIDDEN')
    t.notMatch(message, /Publishing/, url)
    t.match(message, /operator route needs an API key or a token with role admin/, url)
  }
  t.match(errorOf(t, await post(h, '/api/notifications', { category: 'system', title: 'x' }, user), 403, 'UN_FORBIDDEN'), /^Publishing needs/)
})

t.test('POST /api/notifications/read with neither or both of ids and all is UN_BAD_REQUEST, as errors.md says', async t => {
  const h = await build(t)
  const auth = bearer(await h.token('alice'))
  t.match(errorOf(t, await post(h, '/api/notifications/read', {}, auth), 400, 'UN_BAD_REQUEST'), /needs 'ids'.*or 'all': true/)
  t.match(errorOf(t, await post(h, '/api/notifications/read', { ids: ['a'], all: true }, auth), 400, 'UN_BAD_REQUEST'), /not both/)
  // Schema violations stay FST_ERR_VALIDATION.
  errorOf(t, await post(h, '/api/notifications/read', { all: false }, auth), 400, 'FST_ERR_VALIDATION')
  errorOf(t, await post(h, '/api/notifications/read', { ids: [] }, auth), 400, 'FST_ERR_VALIDATION')
  const c = await connect(h.ws, { token: await h.token('alice') })
  await c.next()
  t.match(await c.request({ type: 'mark_read' }), { type: 'error', code: 'bad_request' }, 'the socket answers the same mistake with bad_request')
  c.close()
})

t.test("an unknown route's 404 has the code UN_NOT_FOUND (standalone server), and does not echo the query", async t => {
  const h = await build(t)
  for (const [method, url] of [['GET', '/nope'], ['POST', '/api/notifications/nope'], ['DELETE', '/api/notifications']] as const) {
    const message = errorOf(t, await h.app.inject({ method, url, headers: apiKey }), 404, 'UN_NOT_FOUND')
    t.equal(message, `Route ${method}:${url} not found`)
  }
  const withToken = errorOf(t, await h.app.inject({ method: 'GET', url: '/wss?token=secret-token-value' }), 404, 'UN_NOT_FOUND')
  t.notMatch(withToken, /secret-token-value/)
})

t.test('enum violations name the allowed values once', async t => {
  const h = await build(t)
  const type = errorOf(t, await post(h, '/api/notifications', { category: 'system', title: 'x', type: 'panic' }), 400, 'FST_ERR_VALIDATION')
  t.equal(type, 'body/type must be one of: info, success, warning, error, progress')
  const priority = errorOf(t, await post(h, '/api/notifications', { category: 'system', title: 'x', priority: 'urgent' }), 400, 'FST_ERR_VALIDATION')
  t.equal(priority, 'body/priority must be one of: low, normal, high, critical')
  await t.rejects(h.app.notifications.publish({ category: 'system', title: 'x', type: 'panic' as never }),
    { code: 'UN_INVALID_NOTIFICATION', message: 'Invalid notification: /type must be one of: info, success, warning, error, progress' }, 'in-process publish too')
  const unknown = errorOf(t, await post(h, '/api/notifications', { category: 'system', title: 'x', colour: 'red' }), 400, 'FST_ERR_VALIDATION')
  t.equal(unknown, "body has unknown property 'colour'")
})

t.test('batch errors name the item as notifications[i], as documented', async t => {
  const h = await build(t)
  const bad = [{ category: 'system', title: 'ok' }, { category: 'system', title: 5 }]
  t.equal(errorOf(t, await post(h, '/api/notifications/batch', { notifications: bad }), 400, 'FST_ERR_VALIDATION'), 'notifications[1]: title must be string')
  const extra = [{ category: 'system', title: 'ok' }, { category: 'system', title: 'b', extra: 1 }]
  t.equal(errorOf(t, await post(h, '/api/notifications/batch', { notifications: extra }), 400, 'FST_ERR_VALIDATION'), "notifications[1]: has unknown property 'extra'")
  const enumBad = [{ category: 'system', title: 'ok', priority: 'urgent' }]
  t.equal(errorOf(t, await post(h, '/api/notifications/batch', { notifications: enumBad }), 400, 'FST_ERR_VALIDATION'), 'notifications[0]: priority must be one of: low, normal, high, critical')
  t.equal(await h.store.lastSeq(), 0, 'nothing published')
})

t.test('a 500 says "internal error" with the request id; the log keeps the detail', async t => {
  class BrokenStore extends MemoryStore {
    override async append (): Promise<never> { throw new Error('disk on fire at /var/lib/secret-path.db') }
  }
  const lines: Array<Record<string, any>> = []
  const stream = new Writable({ write (chunk, _enc, done) { lines.push(JSON.parse(chunk.toString())); done() } })
  const h = await build(t, { store: new BrokenStore(), logger: { level: 'error', stream } })
  const res = await post(h, '/api/notifications', { category: 'system', title: 'x' })
  const message = errorOf(t, res, 500, 'UN_INTERNAL')
  t.notMatch(message, /disk on fire|secret-path/, 'the internal detail is not sent')
  const reqId = /request (\S+)\)/.exec(message)?.[1]
  t.ok(reqId, `the message names the request id (${message})`)
  t.match(message, /^Internal error \(request /)
  const logged = lines.find(l => l.reqId === reqId && l.level === 50)
  t.ok(logged, 'an error line with that request id was logged')
  t.match(logged?.err?.message, /disk on fire/, 'the log keeps the detail')
})
