// The client SDK (src/client) against the real server on a real port, with `ws`
// as its WebSocket: events, request helpers, errors, resume after a drop, close().
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { createClient, RequestError, type ClientEvents, type NotificationClient } from '../src/client/index.js'
import type { ClientNotification } from '../src/schemas.js'
import { build, publish, serverSockets, sleep, within, type Harness } from './helper.js'

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
    WebSocket: WebSocket as unknown as NonNullable<Parameters<typeof createClient>[0]['WebSocket']>,
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
