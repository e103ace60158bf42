// The shared-frame path: a broadcast is framed once and the same bytes go to
// every socket; with compression negotiated it falls back to ws's own send.
import websocket from '@fastify/websocket'
import Fastify from 'fastify'
import t from 'tap'
import { unifiedNotifications } from '../plugins/notifications.js'
import * as wsModule from 'ws'
import { COALESCE_BYTES, textFrameBuffer } from '../plugins/ws-transport.js'
import type { BrokerHandler, ControlHandler } from '../src/brokers/broker.js'
import { LocalBroker } from '../src/brokers/local-broker.js'
import { signToken } from '../src/tokens.js'
import { API_KEY, SECRET, build, connect, countWrites, publish, serverSockets } from './helper.js'

t.test('a broadcast framed once arrives intact at every socket, small and large', async t => {
  const h = await build(t)
  const clients = await Promise.all(['a', 'b', 'c'].map(async u => connect(h.ws, { token: await h.token(u) })))
  for (const c of clients) await c.nextOf('connected')
  const big = 'x'.repeat(15_000)
  const sent = [
    await publish(h, { category: 'system', title: 't' }),
    await publish(h, { category: 'system', title: 'big', message: 'é'.repeat(2000), data: { big } })
  ]
  for (const c of clients) {
    const first = await c.nextOf('notification')
    const second = await c.nextOf('notification')
    t.same([first.notification.id, second.notification.id], sent.map(s => s.id))
    t.equal(second.notification.message, 'é'.repeat(2000), 'multi-byte text survives the shared encoding')
    t.equal(second.notification.data.big, big)
  }
  for (const c of clients) c.close()
})

t.test('textFrameBuffer builds the bytes ws would write for a text frame, at every header size', async t => {
  const Sender = (wsModule as unknown as { Sender: { frame (data: Buffer, o: object): Buffer[] } }).Sender
  for (const text of ['', 'x'.repeat(125), 'é'.repeat(63), 'x'.repeat(126), 'é'.repeat(40_000), 'x'.repeat(65_535), 'x'.repeat(65_536), 'é'.repeat(50_000)]) {
    const expected = Buffer.concat(Sender.frame(Buffer.from(text), { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false }))
    t.ok(textFrameBuffer(text).equals(expected), `${Buffer.byteLength(text)} bytes`)
  }
})

t.test('with permessage-deflate negotiated (host app enabled it) notifications still arrive, compressed by ws', async t => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(websocket, { options: { perMessageDeflate: true } })
  await app.register(unifiedNotifications, { jwtSecret: SECRET, store: 'memory', apiKeys: [API_KEY] })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address() as { port: number }
  const c = await connect(`ws://127.0.0.1:${address.port}/ws`, { token: await signToken(SECRET, { sub: 'alice', role: 'user' }) })
  t.match(c.ws.extensions, /permessage-deflate/, 'compression was negotiated')
  await c.nextOf('connected')
  const res = await app.inject({ method: 'POST', url: '/api/notifications', headers: { authorization: `Bearer ${API_KEY}` }, payload: { category: 'system', title: 'compressed' } })
  t.equal(res.statusCode, 202)
  t.equal((await c.nextOf('notification')).notification.title, 'compressed')
  c.close()
})

t.test('an open connection does not keep its upgrade request and response alive', async t => {
  const h = await build(t)
  const c = await connect(h.ws, { token: await h.token('alice') })
  await c.nextOf('connected')
  const [socket] = serverSockets(h)
  t.ok(socket, 'the server side of the connection')
  const [raw] = h.upgraded
  t.notOk((raw as { _httpMessage?: unknown })._httpMessage, 'the hijacked ServerResponse is detached from the socket')
  t.equal(socket!.listenerCount('error'), 1, "only our error listener, not one closing over the request and reply")
  // and the connection still works both ways
  const sent = await publish(h, { category: 'system', title: 'still here' })
  t.equal((await c.nextOf('notification')).notification.id, sent.id)
  t.equal((await c.request({ type: 'ping' })).type, 'reply')
  c.close()
})

/** Counts the writes (syscall-bound: _write or _writev) one server-side TCP socket makes. */
t.test('a batch published at once leaves each socket in two writes, in order', async t => {
  const h = await build(t)
  const clients = await Promise.all(['a', 'b'].map(async u => connect(h.ws, { token: await h.token(u) })))
  for (const c of clients) await c.nextOf('connected')
  const counters = [...h.upgraded].map(countWrites)
  const outcomes = await h.app.notifications.publishMany(Array.from({ length: 20 }, (_, i) => ({ category: 'system', title: `n${i}` })))
  for (const c of clients) {
    const got = []
    for (let i = 0; i < 20; i++) got.push((await c.nextOf('notification')).notification.seq)
    t.same(got, outcomes.map(o => o.notification.seq), 'all twenty, in seq order')
  }
  t.same(counters.map(c => c.writes), [2, 2], 'twenty notifications, two writes per socket: the first at once, the other nineteen together')
  for (const c of clients) c.close()
})

t.test('a turn holding more than COALESCE_BYTES for one socket writes it out as it goes, and nothing is lost', async t => {
  const h = await build(t)
  const c = await connect(h.ws, { token: await h.token('alice') })
  await c.nextOf('connected')
  const [counter] = [...h.upgraded].map(countWrites)
  const big = 'x'.repeat(15_000)
  // 20 × ~15 KB: about 300 KB in one turn, several times the coalescing cap, far below the 1 MiB send buffer.
  const outcomes = await h.app.notifications.publishMany(Array.from({ length: 20 }, (_, i) => ({ category: 'system', title: `big${i}`, data: { big } })))
  const got = []
  for (let i = 0; i < 20; i++) got.push((await c.nextOf('notification')).notification.seq)
  t.same(got, outcomes.map(o => o.notification.seq))
  // About 300 KB for one socket in one turn: written out every COALESCE_BYTES, so a handful of writes.
  const most = Math.ceil(20 * 15_300 / COALESCE_BYTES) + 2
  t.ok(counter!.writes >= 2 && counter!.writes <= most, `written in a few writes of about ${COALESCE_BYTES} bytes (${counter!.writes}, at most ${most}), not one per notification`)
  t.equal(h.app.notifications.stats().connections, 1, 'not taken for a slow consumer')
  c.close()
})

/** A local broker whose delivery callback the test may call itself, as a broker's queue does. */
class HandBroker extends LocalBroker {
  deliver: BrokerHandler | undefined
  override async start (handler: BrokerHandler, control?: ControlHandler): Promise<void> {
    this.deliver = handler
    await super.start(handler, control)
  }
}

t.test("a socket's first frame of a turn is written at once; only the ones after it are held", async t => {
  const broker = new HandBroker()
  const h = await build(t, { broker })
  const c = await connect(h.ws, { token: await h.token('alice') })
  await c.nextOf('connected')
  const raw = [...h.upgraded][0]!
  const stored = await h.store.appendMany([1, 2].map(i => ({
    draft: { id: `id-${i}`, category: 'system', type: 'info', priority: 'normal', title: `t${i}`, message: '', createdAt: new Date().toISOString(), source: 'app' }
  })))
  // Both deliveries in one synchronous run, as the broker's queue does.
  broker.deliver!({ notification: stored[0]!.notification })
  t.equal(raw.writableCorked, 0, 'the first frame went out without waiting for the turn to end')
  broker.deliver!({ notification: stored[1]!.notification })
  t.equal(raw.writableCorked, 1, 'the second is held')
  await Promise.resolve()
  t.equal(raw.writableCorked, 0, 'released once the turn is over')
  t.same([(await c.nextOf('notification')).notification.title, (await c.nextOf('notification')).notification.title], ['t1', 't2'])
  c.close()
})
