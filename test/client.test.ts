// The client SDK (src/client) against the real server on a real port, with `ws`
// as its WebSocket: events, request helpers, errors, resume after a drop, backoff, status, token renewal, unread across devices, close().
import { once } from 'node:events'
import t, { type Test } from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import {
  backoffDelay, createClient, RequestError, tokenExpiry,
  type ClientEvents, type ClientStatus, type NotificationClient, type WebSocketConstructor
} from '../src/client/index.js'
import type { ClientNotification } from '../src/schemas.js'
import { build, publish, serverSockets, sleep, within, type Harness } from './helper.js'

const WS = WebSocket as unknown as WebSocketConstructor

/** The next `event` of a client, or a rejection after `ms`. */
function nextEvent<K extends keyof ClientEvents> (client: NotificationClient, event: K, ms = 3000): Promise<ClientEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`no '${event}' event within ${ms} ms`)) }, ms)
    const off = client.on(event, value => { clearTimeout(timer); off(); resolve(value) })
  })
}

async function open (t: Test, h: Harness, user: string, role = 'user', extra: Partial<Parameters<typeof createClient>[0]> = {}) {
  const token = await h.token(user, role)
  const client = createClient({
    url: h.ws,
    token,
    WebSocket: WS,
    minReconnectDelayMs: 20,
    maxReconnectDelayMs: 80,
    requestTimeoutMs: 3000,
    ...extra
  })
  t.teardown(() => client.close())
  const notifications: ClientNotification[] = []
  client.on('notification', n => { notifications.push(n) })
  return { client, notifications }
}

/** Waits until `cond()` holds, polling, up to `ms`. */
async function until (cond: () => boolean, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) return false
    await sleep(10)
  }
  return true
}

t.test('receives connected and notifications', async t => {
  const h = await build(t)
  const early = await publish(h, { category: 'dashboard', title: 'before connect' })
  const { client, notifications } = await open(t, h, 'alice')
  const connected = await nextEvent(client, 'connected')
  t.equal(connected.protocol, 1)
  t.same(connected.user, { id: 'alice', role: 'user' })
  t.equal(connected.lastSeq, early.seq)
  t.equal(client.lastSeq, early.seq, 'the cursor starts at the server lastSeq')
  t.equal(connected.unread, 1)
  const sent = await publish(h, { category: 'dashboard', title: 'hello', message: 'world', audience: { users: ['alice'] } })
  const n = await nextEvent(client, 'notification')
  t.equal(n.id, sent.id)
  t.equal(n.title, 'hello')
  t.equal(n.message, 'world')
  t.equal(n.read, false)
  t.notOk('audience' in n)
  t.equal(client.lastSeq, sent.seq)
  t.strictSame(notifications.map(x => x.id), [sent.id], 'history is not pushed on a fresh connect')
})

t.test('request helpers resolve: ping, history, subscribe, unsubscribe, markRead', async t => {
  const h = await build(t)
  const a = await publish(h, { category: 'dashboard', title: 'a' })
  const b = await publish(h, { category: 'system', title: 'b' })
  const { client } = await open(t, h, 'alice', 'user', { categories: ['system'] })
  // Requests made before the socket is open are queued and sent after connected.
  const pong = client.ping()
  const connected = await nextEvent(client, 'connected')
  t.strictSame(connected.subscriptions, ['system'], 'categories option sets the initial subscriptions')
  const { time } = await pong
  t.equal(new Date(time).toISOString(), time)

  const hist = await client.history({ limit: 10 })
  t.strictSame(hist.notifications.map(n => n.id), [b.id, a.id])
  t.equal(hist.hasMore, false)
  const one = await client.history({ limit: 1, categories: ['dashboard'] })
  t.strictSame(one.notifications.map(n => n.id), [a.id])

  t.strictSame(await client.subscribe(['dashboard']), { subscriptions: ['system', 'dashboard'] })
  const live = await publish(h, { category: 'dashboard', title: 'live' })
  t.equal((await nextEvent(client, 'notification')).id, live.id, 'delivery follows the subscription')
  t.strictSame(await client.unsubscribe(['system']), { subscriptions: ['dashboard'] })

  t.strictSame(await client.markRead([a.id]), { unread: 2 })
  t.strictSame(await client.markRead('all'), { unread: 0 })
  const unread = await client.history({ unreadOnly: true })
  t.strictSame(unread.notifications, [])
})

t.test('a forbidden subscribe rejects with a RequestError carrying the code', async t => {
  const h = await build(t)
  const { client } = await open(t, h, 'vic', 'viewer')
  await nextEvent(client, 'connected')
  const err = await client.subscribe(['dashboard']).then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof RequestError, 'a RequestError')
  t.equal((err as RequestError).code, 'forbidden')
  t.match((err as RequestError).message, /dashboard/)
  const bad = await client.history({ limit: 0 }).then(() => undefined, (e: unknown) => e)
  t.equal((bad as RequestError).code, 'bad_request')
  t.strictSame(await client.subscribe(['maintenance']), { subscriptions: ['system', 'maintenance'] }, 'the connection is fine afterwards')
})

t.test('resume after a dropped connection: exactly the missed notifications, once', async t => {
  const h = await build(t)
  const { client, notifications } = await open(t, h, 'alice', 'user', { minReconnectDelayMs: 50, maxReconnectDelayMs: 100 })
  const first = await nextEvent(client, 'connected')
  const before = await publish(h, { category: 'dashboard', title: 'before the drop' })
  await until(() => notifications.length === 1)
  t.strictSame(notifications.map(n => n.id), [before.id])

  // Drop the server side of the socket; publish while the client is disconnected.
  const missed: string[] = []
  const droppedClose = new Promise<ClientEvents['close']>(resolve => {
    const off = client.on('close', ev => {
      off()
      // Synchronously, before any reconnect can happen: these can only come back by the replay.
      for (let i = 0; i < 3; i++) {
        void h.app.notifications.publish({ category: i === 1 ? 'system' : 'dashboard', title: `missed ${i}` })
          .then(o => { missed[i] = o.notification.id })
      }
      void h.app.notifications.publish({ category: 'admin', title: 'not for alice' })
      resolve(ev)
    })
  })
  const reconnected = new Promise<ClientEvents['connected']>(resolve => {
    const off = client.on('connected', f => { off(); resolve(f) })
  })
  const replayed = new Promise<ClientEvents['replayed']>(resolve => {
    const off = client.on('replayed', f => { off(); resolve(f) })
  })
  const sockets = serverSockets(h)
  t.equal(sockets.length, 1)
  for (const s of sockets) s.terminate()
  const close = await droppedClose
  t.equal(close.willReconnect, true)
  t.not(close.code, 1000)
  const again = await within(reconnected, 3000, 'reconnect')
  t.not(again.sessionId, first.sessionId, 'reconnected: a new session')
  t.equal(again.epoch, first.epoch)
  t.same(await within(replayed, 3000, 'replayed'), { type: 'replayed', count: 3, complete: true })
  t.strictSame(notifications.map(n => n.id), [before.id, ...missed], 'the missed ones, once, in order')

  const after = await publish(h, { category: 'dashboard', title: 'after the reconnect' })
  t.ok(await until(() => notifications.length === 5), 'live again')
  t.strictSame(notifications.map(n => n.id), [before.id, ...missed, after.id])
  await sleep(50)
  t.equal(notifications.length, 5, 'nothing twice')
  t.equal(new Set(notifications.map(n => n.seq)).size, 5)
  t.equal(client.lastSeq, after.seq)
})

t.test('close() stops reconnecting', async t => {
  const h = await build(t)
  const { client } = await open(t, h, 'alice')
  await nextEvent(client, 'connected')
  let connects = 0
  client.on('connected', () => { connects++ })
  const closed = nextEvent(client, 'close')
  client.close()
  const ev = await closed
  t.equal(ev.code, 1000)
  t.equal(ev.willReconnect, false)
  await sleep(300)
  t.equal(connects, 0, 'no reconnect after close()')
  t.equal(h.app.notifications.stats().connections, 0, 'no connection on the server')
})

t.test('close() while waiting to reconnect cancels the reconnect', async t => {
  const h = await build(t)
  const { client } = await open(t, h, 'alice', 'user', { minReconnectDelayMs: 100, maxReconnectDelayMs: 150 })
  await nextEvent(client, 'connected')
  let connects = 0
  client.on('connected', () => { connects++ })
  const dropped = nextEvent(client, 'close')
  for (const s of serverSockets(h)) s.terminate()
  const ev = await dropped
  t.equal(ev.willReconnect, true)
  client.close()
  await sleep(400)
  t.equal(connects, 0, 'the scheduled reconnect never ran')
  t.equal(h.app.notifications.stats().connections, 0)
})

t.test('close() while a token function is still pending opens no socket', async t => {
  const h = await build(t)
  const token = await h.token('alice')
  let calls = 0
  const { client } = await open(t, h, 'alice', 'user', {
    token: async () => { calls++; await sleep(100); return token }
  })
  let connects = 0
  client.on('connected', () => { connects++ })
  client.close()
  await sleep(400)
  t.equal(calls, 1, 'the token function was called')
  t.equal(connects, 0, 'no connected event after close()')
  t.equal(h.app.notifications.stats().connections, 0, 'no connection reached the server')
})

// ---- backoff, status, token renewal, requests after close, unread, server restart ----

t.test('backoff: each delay lies between half and all of min·2^attempt, capped at max', async t => {
  for (let attempt = 0; attempt < 12; attempt++) {
    const cap = Math.min(1000, 50 * 2 ** attempt)
    t.equal(backoffDelay(attempt, 50, 1000, () => 0), cap / 2, `attempt ${attempt}: lower bound`)
    t.ok(backoffDelay(attempt, 50, 1000, () => 0.999999) <= cap, `attempt ${attempt}: upper bound`)
  }
  t.equal(backoffDelay(5000, 50, 1000, () => 1), 1000, 'a huge attempt count stays at the cap')
})

t.test('tokenExpiry reads exp from a JWT without verifying it; anything else has none', async t => {
  const h = await build(t)
  const exp = tokenExpiry(await h.token('alice', 'user', 60))!
  t.ok(Math.abs(exp - (Date.now() + 60_000)) < 2000, 'exp in epoch ms')
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url')
  t.equal(tokenExpiry(`${b64({ alg: 'none' })}.${b64({ sub: 'a' })}.x`), undefined, 'no exp claim')
  t.equal(tokenExpiry(`${b64({ alg: 'none' })}.${b64({ exp: 'soon' })}.x`), undefined, 'exp not a number')
  t.equal(tokenExpiry('not-a-jwt'), undefined)
  t.equal(tokenExpiry('a.%%%.c'), undefined, 'payload not base64url JSON')
})

t.test('a renewal that fails leaves the connection to its 4001 close, then a new token reconnects it', async t => {
  const h = await build(t)
  let calls = 0
  const { client } = await open(t, h, 'alice', 'user', {
    token: async () => {
      calls++
      if (calls === 2) throw new Error('identity provider down')
      return h.token('alice', 'user', 2)
    }
  })
  await nextEvent(client, 'connected')
  const closed = await nextEvent(client, 'close', 5000)
  t.match(closed, { code: 4001, willReconnect: true }, 'the server closed at exp')
  await nextEvent(client, 'connected', 5000)
  t.equal(calls, 3, 'renewal failed once, the reconnect fetched a new token')
})

t.test('backoff against a server that went away: growing, bounded, jittered, reported in status', async t => {
  const h = await build(t)
  const { client } = await open(t, h, 'alice', 'user', { minReconnectDelayMs: 20, maxReconnectDelayMs: 160 })
  await nextEvent(client, 'connected')
  const delays: Array<{ delayMs: number, attempt: number }> = []
  const enough = new Promise<void>(resolve => {
    client.on('status', s => {
      if (s.state !== 'reconnecting') return
      delays.push({ delayMs: s.delayMs, attempt: s.attempt })
      if (delays.length === 8) resolve()
    })
  })
  await h.app.close()
  await within(enough, 5000, 'eight reconnect attempts')
  client.close()
  t.strictSame(delays.map(d => d.attempt), [1, 2, 3, 4, 5, 6, 7, 8], 'attempts are counted')
  for (const [i, d] of delays.entries()) {
    const cap = Math.min(160, 20 * 2 ** i)
    t.ok(d.delayMs >= cap / 2 && d.delayMs <= cap, `attempt ${d.attempt}: ${d.delayMs.toFixed(1)} ms within [${cap / 2}, ${cap}]`)
  }
  const atCap = delays.slice(3).map(d => d.delayMs)
  t.ok(new Set(atCap).size > 1, 'jittered: the capped delays are not all the same')
})

t.test('status: connecting, open; reconnecting, connecting, catching_up, open after a drop; closed after close()', async t => {
  const h = await build(t)
  const { client } = await open(t, h, 'alice', 'user', { minReconnectDelayMs: 20, maxReconnectDelayMs: 40 })
  const states: string[] = [client.status.state]
  client.on('status', s => { states.push(s.state) })
  await nextEvent(client, 'connected')
  t.strictSame(states, ['connecting', 'open'])
  const replayed = nextEvent(client, 'replayed')
  for (const s of serverSockets(h)) s.terminate()
  await replayed
  t.strictSame(states, ['connecting', 'open', 'reconnecting', 'connecting', 'catching_up', 'open'])
  const closed = nextEvent(client, 'close')
  client.close()
  await closed
  t.equal(states.at(-1), 'closed')
  t.same(client.status, { state: 'closed', code: 1000, reason: 'client closed' })
})

t.test('token renewal: a new token is fetched before exp and sent in-band; the connection outlives the first token', async t => {
  const h = await build(t)
  const issued: number[] = []
  const { client } = await open(t, h, 'alice', 'user', {
    token: async () => {
      issued.push(Date.now())
      return h.token('alice', 'user', 2)
    }
  })
  let connects = 0
  let closes = 0
  client.on('connected', () => { connects++ })
  client.on('close', () => { closes++ })
  await nextEvent(client, 'connected')
  const firstExp = tokenExpiry(await h.token('alice', 'user', 2))!
  t.equal(issued.length, 1, 'one token to connect')
  // Wait past the first token's exp: without the in-band refresh the server would close with 4001 then.
  t.ok(await until(() => Date.now() > firstExp + 500, 5000))
  t.ok(issued.length >= 2, `renewed in-band (${issued.length} tokens fetched)`)
  t.ok(issued[1]! < firstExp, 'the second token was fetched before the first expired')
  t.equal(closes, 0, 'no close')
  t.equal(connects, 1, 'no reconnect')
  t.same(await client.ping().then(r => typeof r.time), 'string', 'still answering')
  t.equal(h.app.notifications.stats().connections, 1, 'one connection on the server')
})

t.test('a reconnect keeps the subscriptions changed since the first connect', async t => {
  const h = await build(t)
  const { client, notifications } = await open(t, h, 'alice', 'user', { minReconnectDelayMs: 20, maxReconnectDelayMs: 40 })
  await nextEvent(client, 'connected')
  await client.unsubscribe(['dashboard'])
  await client.subscribe(['dashboard'])
  await client.unsubscribe(['system'])
  const again = nextEvent(client, 'connected')
  for (const s of serverSockets(h)) s.terminate()
  const connected = await again
  t.strictSame([...connected.subscriptions].sort(), ['dashboard', 'maintenance', 'user'])
  await publish(h, { category: 'system', title: 'not subscribed' })
  const wanted = await publish(h, { category: 'dashboard', title: 'subscribed' })
  t.ok(await until(() => notifications.some(n => n.id === wanted.id)))
  t.strictSame(notifications.map(n => n.title), ['subscribed'])
})

t.test('a reconnect fetches a new token each time', async t => {
  const h = await build(t)
  let calls = 0
  const { client } = await open(t, h, 'alice', 'user', { token: async () => { calls++; return h.token('alice') } })
  await nextEvent(client, 'connected')
  t.equal(calls, 1)
  const again = nextEvent(client, 'connected')
  for (const s of serverSockets(h)) s.terminate()
  await again
  t.equal(calls, 2)
})

t.test('closes 4001 and 4003: a token function is asked again; a fixed token stops the client', async t => {
  const h = await build(t)
  let calls = 0
  const renewable = await open(t, h, 'alice', 'user', { token: async () => { calls++; return h.token('alice') } })
  await nextEvent(renewable.client, 'connected')
  // A refresh with another user's token makes the server close with 4001.
  const closed = nextEvent(renewable.client, 'close')
  const reconnected = nextEvent(renewable.client, 'connected', 5000)
  await renewable.client.refresh(await h.token('mallory')).catch(() => undefined)
  t.match(await closed, { code: 4001, willReconnect: true })
  await reconnected
  t.equal(calls, 2, 'reconnected with a newly fetched token')

  const revoked = nextEvent(renewable.client, 'close')
  const back = nextEvent(renewable.client, 'connected', 5000)
  for (const s of serverSockets(h)) s.close(4003, 'access revoked')
  t.match(await revoked, { code: 4003, willReconnect: true })
  await back
  t.equal(calls, 3)

  for (const code of [4001, 4003]) {
    const before = new Set(serverSockets(h))
    const fixed = await open(t, h, `bob${code}`, 'user')
    await nextEvent(fixed.client, 'connected')
    const bobs = serverSockets(h).filter(s => !before.has(s))
    const gone = nextEvent(fixed.client, 'close')
    const status = new Promise<ClientStatus>(resolve => fixed.client.on('status', resolve))
    t.equal(bobs.length, 1, "bob's socket on the server")
    bobs[0]!.close(code, 'go away')
    t.match(await gone, { code, willReconnect: false }, `${code} with a fixed token: no retry with the same token`)
    t.match(await status, { state: 'closed', code })
    await t.rejects(fixed.client.ping(), { code: 'closed' }, 'requests reject at once afterwards')
  }
})

t.test('requests: a timeout rejects with code timeout; a request after close() rejects at once', async t => {
  // A server that accepts and never answers a request.
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(wss, 'listening')
  t.teardown(() => new Promise<void>(resolve => { for (const c of wss.clients) c.terminate(); wss.close(() => resolve()) }))
  wss.on('connection', ws => {
    ws.send(JSON.stringify({ type: 'connected', protocol: 1, sessionId: 's', user: { id: 'a', role: 'user' }, categories: [], subscriptions: [], unread: 0, lastSeq: 0, epoch: 'e' }))
  })
  const { port } = wss.address() as { port: number }
  const client = createClient({ url: `ws://127.0.0.1:${port}/ws`, token: 'x', WebSocket: WS, requestTimeoutMs: 200 })
  t.teardown(() => client.close())
  await nextEvent(client, 'connected')
  const started = Date.now()
  const err = await client.ping().then(() => undefined, (e: unknown) => e)
  const waited = Date.now() - started
  t.ok(err instanceof RequestError && err.code === 'timeout', 'RequestError timeout')
  t.ok(waited >= 190 && waited < 1500, `after the timeout (${waited} ms)`)

  const inFlight = client.history().then(() => undefined, (e: unknown) => e)
  // "At once" by order, not by a clock a loaded machine can stall: both settle before a 0 ms timer runs,
  // so before any timeout could have.
  let timerRan = false
  const timer = setTimeout(() => { timerRan = true }, 0)
  client.close()
  const pendingErr = await inFlight
  t.ok(pendingErr instanceof RequestError && pendingErr.code === 'closed', 'a pending request rejects on close()')
  const after = await client.ping().then(() => undefined, (e: unknown) => e)
  t.ok(after instanceof RequestError && after.code === 'closed', 'a request after close() rejects with closed')
  t.notOk(timerRan, 'at once, not after the timeout')
  clearTimeout(timer)
})

t.test('requests written to a socket that drops reject at once; queued ones go out after the reconnect', async t => {
  const h = await build(t)
  const { client } = await open(t, h, 'alice', 'user', { minReconnectDelayMs: 50, maxReconnectDelayMs: 100, requestTimeoutMs: 5000 })
  await nextEvent(client, 'connected')
  const closed = nextEvent(client, 'close')
  for (const s of serverSockets(h)) s.terminate()
  await closed
  // Written while disconnected: queued, sent after the next connected.
  const queued = client.ping()
  t.equal(typeof (await queued).time, 'string', 'the queued request was answered after the reconnect')
})

t.test('unread stays in step across two devices of one user: new notifications, mark_read here, there and over REST', async t => {
  const h = await build(t)
  const phone = await open(t, h, 'alice')
  const laptop = await open(t, h, 'alice')
  const other = await open(t, h, 'bob')
  await Promise.all([nextEvent(phone.client, 'connected'), nextEvent(laptop.client, 'connected'), nextEvent(other.client, 'connected')])
  t.equal(phone.client.unread, 0)
  const a = await publish(h, { category: 'dashboard', title: 'a', audience: { users: ['alice'] } })
  const b = await publish(h, { category: 'dashboard', title: 'b', audience: { users: ['alice'] } })
  t.ok(await until(() => phone.client.unread === 2 && laptop.client.unread === 2), 'both count the new ones')

  const seen = nextEvent(laptop.client, 'unread')
  t.strictSame(await phone.client.markRead([a.id]), { unread: 1 })
  t.same(await seen, { unread: 1, ids: [a.id] }, 'the other device is told, with the ids')
  t.equal(phone.client.unread, 1)

  // A progress operation: three updates under one collapse key are one unread notification on the server.
  for (const p of [10, 50, 90]) await publish(h, { category: 'maintenance', type: 'progress', title: `op ${p}%`, collapseKey: 'maintenance:op1', data: { progress: p } })
  t.ok(await until(() => phone.notifications.length === 5))
  t.equal(phone.client.unread, 2, 'a collapse key counts once')
  t.equal((await h.app.notifications.unread({ id: 'alice', role: 'user' })), 2, 'as on the server')

  const cleared = nextEvent(phone.client, 'unread')
  const res = await h.app.inject({ method: 'POST', url: '/api/notifications/read', headers: { authorization: `Bearer ${await h.token('alice')}` }, payload: { all: true } })
  t.equal(res.statusCode, 200)
  const change = await cleared
  t.equal(change.unread, 0, 'mark all read over REST reaches the sockets')
  t.ok(change.through !== undefined && change.through >= b.seq, 'with the seq it covers')
  t.ok(await until(() => laptop.client.unread === 0))
  t.equal(other.notifications.length, 3, 'bob got only the broadcast progress updates')
  t.equal(other.client.unread, 1, "another user's count is untouched by alice's mark_read: one operation unread")
  t.equal(await h.app.notifications.unread({ id: 'bob', role: 'user' }), 1)
})

t.test('setPreferences mutes on every device: the other client gets the preferences event', async t => {
  const h = await build(t)
  const { client: phone } = await open(t, h, 'alice')
  const { client: laptop } = await open(t, h, 'alice')
  await Promise.all([nextEvent(phone, 'connected'), nextEvent(laptop, 'connected')])
  const onLaptop = nextEvent(laptop, 'preferences')
  t.strictSame(await phone.setPreferences(['maintenance']), { muted: ['maintenance'], subscriptions: ['system', 'dashboard', 'user'] })
  const frame = await onLaptop
  t.strictSame(frame.muted, ['maintenance'])
  t.strictSame(frame.subscriptions, ['system', 'dashboard', 'user'])
  await t.rejects(phone.setPreferences(['security']), { code: 'forbidden' }, 'a locked category is refused')
})

t.test('4003 (access revoked): a fixed token is not retried; a token function fetches a new one and reconnects', async t => {
  const h = await build(t)
  const { client: fixed } = await open(t, h, 'alice')
  let fetched = 0
  const { client: renewing } = await open(t, h, 'alice', 'user', { token: async () => { fetched++; return h.token('alice') } })
  await Promise.all([nextEvent(fixed, 'connected'), nextEvent(renewing, 'connected')])
  const closes = [nextEvent(fixed, 'close'), nextEvent(renewing, 'close')] as const
  const reconnected = new Promise<void>(resolve => { renewing.on('connected', () => resolve()) })
  await h.app.notifications.disconnectUser('alice')
  const [fixedClose, renewingClose] = await Promise.all(closes)
  t.strictSame(fixedClose, { code: 4003, reason: 'access revoked: get a new token', willReconnect: false })
  t.equal(renewingClose.code, 4003)
  t.equal(renewingClose.willReconnect, true)
  await within(reconnected, 3000, 'the reconnect with a new token')
  t.equal(fetched, 2, 'a new token was fetched for the reconnect')
})
