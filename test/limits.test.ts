// Every limit with its exact outcome: per-connection request rate (rate_limited,
// then 4008), bad frames (4008), connections per user (403 before the upgrade),
// categories per subscribe, REST body size (413), publish rate (429), audience
// length (400), and the slow consumer (4009) with a real client that stops
// reading while another client in the same category keeps receiving.
import t from 'tap'
import { DEFAULT_LIMITS } from '../src/limits.js'
import { API_KEY, build, connect, refusedUpgrade, sleep, within, type Client, type Frame } from './helper.js'

/** Collects frames until the socket closes; returns them with the close code. */
async function untilClosed (c: Client, ms = 5000): Promise<{ frames: Frame[], code: number }> {
  const { code } = await within(c.closed, ms, 'close')
  return { frames: c.pending(), code }
}

t.test('the documented defaults', async t => {
  t.same(DEFAULT_LIMITS, {
    maxPayload: 64 * 1024,
    sendBufferBytes: 1024 * 1024,
    requestsPerSecond: 50,
    requestBurst: 100,
    rateLimitedBeforeClose: 50,
    badFramesPerMinute: 20,
    maxConnectionsPerUser: 20
  })
})

t.test('request rate: a burst is served, then rate_limited, then close 4008 when it goes on', async t => {
  const h = await build(t, { limits: { requestsPerSecond: 1, requestBurst: 5, rateLimitedBeforeClose: 3 } })
  const c = await connect(h.ws, { token: await h.token('alice') })
  await c.next()
  for (let i = 0; i < 9; i++) c.send({ type: 'ping', id: `p${i}` })
  const { frames, code } = await untilClosed(c)
  t.equal(code, 4008, 'closed with 4008')
  const replies = frames.filter(f => f.type === 'reply')
  const limited = frames.filter(f => f.type === 'error')
  t.same(replies.map(f => f.id), ['p0', 'p1', 'p2', 'p3', 'p4'], 'the burst of 5 is answered, in order')
  t.equal(limited.length, 3, 'then 3 refusals')
  t.same([...new Set(limited.map(f => f.code))], ['rate_limited'])
  t.equal(h.app.notifications.sizes().registry.connections, 0, 'removed from the registry')
})

t.test('request rate: a refusal streak that stops does not close; the bucket refills', async t => {
  const h = await build(t, { limits: { requestsPerSecond: 20, requestBurst: 3, rateLimitedBeforeClose: 5 } })
  const c = await connect(h.ws, { token: await h.token('alice') })
  await c.next()
  for (let i = 0; i < 5; i++) c.send({ type: 'ping', id: `a${i}` })
  const errs: Frame[] = []
  for (let i = 0; i < 2; i++) errs.push(await c.nextOf('error'))
  t.same(errs.map(e => e.code), ['rate_limited', 'rate_limited'])
  await sleep(300)
  const ok = await c.request({ type: 'ping', id: 'later' })
  t.equal(ok.type, 'reply', 'after a pause the connection is served again')
  c.close()
})

t.test('request rate with the defaults: a flood of 400 pings gets rate_limited, then close 4008', async t => {
  const h = await build(t)
  const c = await connect(h.ws, { token: await h.token('alice') })
  await c.next()
  for (let i = 0; i < 400; i++) c.send({ type: 'ping' })
  const { frames, code } = await untilClosed(c)
  t.equal(code, 4008)
  const replies = frames.filter(f => f.type === 'reply').length
  t.ok(replies >= DEFAULT_LIMITS.requestBurst, `at least the burst was answered (${replies})`)
  t.ok(frames.some(f => f.type === 'error' && f.code === 'rate_limited'), 'rate_limited before the close')
})

t.test('bad frames: 20 a minute get bad_request, the 21st closes with 4008', async t => {
  const h = await build(t)
  const c = await connect(h.ws, { token: await h.token('alice') })
  await c.next()
  for (let i = 0; i < 21; i++) c.send('{"type":')
  const { frames, code } = await untilClosed(c)
  t.equal(code, 4008)
  const errors = frames.filter(f => f.type === 'error')
  t.equal(errors.length, 20)
  t.same([...new Set(errors.map(f => f.code))], ['bad_request'])
})

t.test('bad frames: unknown_type counts too; a configured limit applies', async t => {
  const h = await build(t, { limits: { badFramesPerMinute: 3 } })
  const c = await connect(h.ws, { token: await h.token('alice') })
  await c.next()
  for (let i = 0; i < 4; i++) c.send({ type: 'nope', id: `n${i}` })
  const { frames, code } = await untilClosed(c)
  t.equal(code, 4008)
  t.same(frames.filter(f => f.type === 'error').map(f => [f.id, f.code]), [['n0', 'unknown_type'], ['n1', 'unknown_type'], ['n2', 'unknown_type']])
})

t.test('connections per user: over the limit is 403 UN_FORBIDDEN before the upgrade, also when they race', async t => {
  const h = await build(t, { limits: { maxConnectionsPerUser: 3 } })
  const token = await h.token('alice')
  // Ten upgrades at once: the limit holds even when all are authenticated before any is registered.
  const attempts = await Promise.allSettled(Array.from({ length: 10 }, () => connect(h.ws, { token })))
  const open = attempts.filter((a): a is PromiseFulfilledResult<Client> => a.status === 'fulfilled').map(a => a.value)
  const refused = attempts.filter((a): a is PromiseRejectedResult => a.status === 'rejected')
  t.equal(open.length, 3, 'three connections open')
  t.same([...new Set(refused.map(r => r.reason.statusCode))], [403], 'the others are refused with 403')
  const r = await refusedUpgrade(h.ws, { token })
  t.equal(r.statusCode, 403)
  t.equal(r.body.code, 'UN_FORBIDDEN')
  t.notOk(r.opened)
  const other = await connect(h.ws, { token: await h.token('bob') })
  t.equal((await other.next()).type, 'connected', "another user's limit is separate")
  open[0]!.close()
  await open[0]!.closed
  let again: Client | undefined
  for (let i = 0; i < 50 && again === undefined; i++) {
    again = await connect(h.ws, { token }).catch(async () => { await sleep(20); return undefined })
  }
  t.ok(again, 'a slot freed by a close can be used again')
  t.equal((await again!.next()).type, 'connected')
  for (const c of [...open, other, again!]) c.close()
})

t.test('categories per subscribe: 64 is fine (duplicates collapse), 65 is bad_request, nothing changes', async t => {
  const h = await build(t)
  const c = await connect(h.ws, { token: await h.token('ada', 'admin'), query: { categories: 'system' } })
  await c.next()
  const dup = await c.request({ type: 'subscribe_category', id: 'd', categories: Array.from({ length: 64 }, () => 'health') })
  t.equal(dup.type, 'reply')
  t.same(dup.result.subscriptions, ['system', 'health'], '64 copies of one category subscribe it once')
  const over = await c.request({ type: 'subscribe_category', id: 'o', categories: Array.from({ length: 65 }, () => 'admin') })
  t.equal(over.type, 'error')
  t.equal(over.code, 'bad_request')
  t.equal(over.id, 'o')
  const un = await c.request({ type: 'unsubscribe_category', id: 'u', categories: Array.from({ length: 65 }, () => 'system') })
  t.equal(un.code, 'bad_request', 'unsubscribe has the same cap')
  const ping = await c.request({ type: 'request_notification_history', id: 'h', categories: ['system'] })
  t.equal(ping.type, 'reply')
  t.same(h.app.notifications.sizes().registry.subscriptions, 2, 'still system and health only')
  c.close()
})

t.test('REST body over 1 MiB: 413 FST_ERR_CTP_BODY_TOO_LARGE; a configured bodyLimit applies', async t => {
  const h = await build(t)
  const big = JSON.stringify({ category: 'system', title: 'big', message: 'x'.repeat(1024 * 1024) })
  const res = await fetch(`${h.http}/api/notifications`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }, body: big })
  t.equal(res.status, 413)
  const body = await res.json() as Record<string, unknown>
  t.equal(body.code, 'FST_ERR_CTP_BODY_TOO_LARGE')
  t.equal(body.statusCode, 413)
  t.equal(await h.store.lastSeq(), 0, 'nothing published')

  const small = await build(t, { bodyLimit: 1024 })
  const r2 = await small.app.inject({ method: 'POST', url: '/api/notifications', headers: { authorization: `Bearer ${API_KEY}` }, payload: { category: 'system', title: 't', message: 'y'.repeat(1100) } })
  t.equal(r2.statusCode, 413)
  t.equal(r2.json().code, 'FST_ERR_CTP_BODY_TOO_LARGE')
})

t.test('REST publish rate per credential: 429 UN_RATE_LIMITED with retry-after; another credential is not affected', async t => {
  const h = await build(t, { publishRateLimit: { max: 3, timeWindowMs: 60_000 } })
  const post = (auth: string) => h.app.inject({ method: 'POST', url: '/api/notifications', headers: { authorization: `Bearer ${auth}` }, payload: { category: 'system', title: 'r' } })
  for (let i = 0; i < 3; i++) t.equal((await post(API_KEY)).statusCode, 202, `publish ${i + 1} of 3`)
  const limited = await post(API_KEY)
  t.equal(limited.statusCode, 429)
  t.equal(limited.json().code, 'UN_RATE_LIMITED')
  t.ok(Number(limited.headers['retry-after']) > 0, 'retry-after is set')
  t.equal((await post(await h.token('ada', 'admin'))).statusCode, 202, 'an admin token has its own budget')
  // The batch route has a budget of its own per credential (each request there carries up to 100 notifications).
  const batch = () => h.app.inject({ method: 'POST', url: '/api/notifications/batch', headers: { authorization: `Bearer ${API_KEY}` }, payload: { notifications: [{ category: 'system', title: 'b' }] } })
  for (let i = 0; i < 3; i++) t.equal((await batch()).statusCode, 202, `batch ${i + 1} of 3`)
  const batchLimited = await batch()
  t.equal(batchLimited.statusCode, 429)
  t.equal(batchLimited.json().code, 'UN_RATE_LIMITED')
  t.equal(await h.store.lastSeq(), 7, 'only the accepted ones were stored')
})

t.test('audience list length: 1000 users and 100 roles are accepted, one more is 400 FST_ERR_VALIDATION', async t => {
  const h = await build(t)
  const post = (audience: object) => h.app.inject({ method: 'POST', url: '/api/notifications', headers: { authorization: `Bearer ${API_KEY}` }, payload: { category: 'system', title: 'a', audience } })
  t.equal((await post({ users: Array.from({ length: 1000 }, (_v, i) => `u${i}`) })).statusCode, 202)
  const users = await post({ users: Array.from({ length: 1001 }, (_v, i) => `u${i}`) })
  t.equal(users.statusCode, 400)
  t.equal(users.json().code, 'FST_ERR_VALIDATION')
  const roles = await post({ roles: Array.from({ length: 101 }, (_v, i) => `r${i}`) })
  t.equal(roles.statusCode, 400)
  t.equal(roles.json().code, 'FST_ERR_VALIDATION')
  const dup = await post({ users: ['a', 'a'] })
  t.equal(dup.statusCode, 400, 'duplicate audience users')
  t.equal(dup.json().code, 'FST_ERR_VALIDATION')
})

t.test('slow consumer: a client that stops reading is closed with 4009 and released; a reader in the same category gets everything', async t => {
  const SEND_BUFFER = 64 * 1024
  const h = await build(t, { limits: { sendBufferBytes: SEND_BUFFER } })
  const reader = await connect(h.ws, { token: await h.token('reader'), query: { categories: 'dashboard' } })
  const slow = await connect(h.ws, { token: await h.token('slow'), query: { categories: 'dashboard' } })
  const stuck = await connect(h.ws, { token: await h.token('stuck'), query: { categories: 'dashboard' } })
  await reader.next(); await slow.next(); await stuck.next()
  // Stop reading: the kernel buffers fill, then the server's own send buffer grows.
  const pause = (c: Client) => (c.ws as unknown as { _socket: { pause (): void, resume (): void } })._socket
  pause(slow).pause()
  pause(stuck).pause()

  const seqs: number[] = []
  const data = { blob: 'z'.repeat(12 * 1024) }
  // Bounded: at most 3000 notifications of ~12 KiB (36 MiB) to get past loopback's kernel buffers.
  for (let i = 0; i < 3000 && h.app.notifications.sizes().registry.connections > 1; i++) {
    const { notification } = await h.app.notifications.publish({ category: 'dashboard', title: `n${i}`, data })
    seqs.push(notification.seq)
    if (i % 20 === 19) await sleep(1)
  }
  t.equal(h.app.notifications.sizes().registry.connections, 1, 'both non-readers were dropped from the registry; the reader stays')
  const last = seqs[seqs.length - 1]!
  const got: number[] = []
  for (let i = 0; i < seqs.length; i++) {
    const f = await reader.nextOf('notification', 10_000)
    got.push(f.notification.seq)
    if (f.notification.seq === last) break
  }
  t.same(got, seqs, `the reader got all ${seqs.length} notifications, in order`)
  t.equal(reader.ws.readyState, reader.ws.OPEN, 'the reader is still connected')

  // The slow client reads again within the close grace: it drains and sees 4009.
  pause(slow).resume()
  const closed = await within(slow.closed, 10_000, 'slow close')
  t.equal(closed.code, 4009, 'closed with 4009')
  // The other never reads again: the server drops its socket (and buffer) after the grace.
  let sizes = h.app.notifications.sizes()
  for (let i = 0; i < 200 && sizes.websocket!.sockets! > 1; i++) {
    await sleep(25)
    sizes = h.app.notifications.sizes()
  }
  t.equal(sizes.websocket!.sockets, 1, 'the non-reading socket was terminated and released')
  t.equal(sizes.websocket!.wsClients, 1)
  t.equal(sizes.websocket!.closeTimers, 0)
  stuck.ws.terminate()
  const pong = await reader.request({ type: 'ping' })
  t.equal(pong.type, 'reply', 'the reader still gets answers')
  reader.close()
})
