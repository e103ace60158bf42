// The Socket.IO door with an unmodified socket.io-client 4 against a real
// server on 127.0.0.1: polling start and upgrade beside /ws, acks, refusals,
// resume, limits, both doors at once, shutdown.
import t from 'tap'
import type { Socket } from 'node:net'
import { API_KEY, build, connect, expiringToken, publish, refusedUpgrade, sleep, within, type Harness } from './helper.js'
import { buildSio, refused, sio, type Payload, type SioClient } from './socketio-helper.js'

async function stats (h: Harness): Promise<Payload> {
  const res = await h.app.inject({ url: '/api/notifications/stats', headers: { authorization: `Bearer ${API_KEY}` } })
  return res.json()
}

t.test('polling start, then the upgrade to websocket beside /ws; connected and live notification events', async t => {
  const h = await buildSio(t)
  const c = await sio(h, { auth: { token: await h.token('alice') } })
  t.teardown(() => c.close())
  t.equal(c.firstTransport, 'polling', 'socket.io-client starts on long-polling')
  const connected = await c.next('connected')
  t.equal(connected.type, 'connected')
  t.equal(connected.protocol, 1)
  t.same(connected.user, { id: 'alice', role: 'user' })
  t.type(connected.epoch, 'string')
  await within(c.upgraded, 3000, 'the upgrade')
  t.equal(c.socket.io.engine.transport.name, 'websocket', 'the transport reached websocket')

  // /ws still upgrades on the same server, and still refuses before the upgrade.
  const ws = await connect(h.ws, { token: await h.token('alice') })
  t.equal((await ws.next()).type, 'connected', '/ws works beside Socket.IO')
  t.equal((await refusedUpgrade(h.ws)).statusCode, 401, '/ws still answers its own refusals')

  const sent = await publish(h, { category: 'dashboard', title: 'live' })
  const n = await c.next('notification')
  t.equal(n.type, 'notification', 'the payload is the frame object, as /ws sends it')
  t.equal(n.notification.id, sent.id)
  t.equal(n.notification.seq, sent.seq)
  t.equal(n.notification.read, false)
  const viaWs = await ws.nextOf('notification')
  t.same(n, viaWs, 'the same frame object on both doors')
  ws.close()
})

t.test('websocket-only clients connect too (no polling at all); ?token= works', async t => {
  const h = await buildSio(t)
  const c = await sio(h, { query: { token: await h.token('bob') }, transports: ['websocket'] })
  t.teardown(() => c.close())
  t.equal(c.socket.io.engine.transport.name, 'websocket')
  t.same((await c.next('connected')).user, { id: 'bob', role: 'user' })
})

t.test('polling-only clients (no upgrade at all) get events and acks', async t => {
  const h = await buildSio(t)
  const c = await sio(h, { auth: { token: await h.token('pat') }, transports: ['polling'] })
  t.teardown(() => c.close())
  await c.next('connected')
  const sent = await publish(h, { category: 'system', title: 'over polling' })
  t.equal((await c.next('notification')).notification.id, sent.id)
  t.same(await c.ask('unsubscribe_category', { categories: ['system'] }), { subscriptions: ['dashboard', 'maintenance', 'user'] })
  t.equal(c.socket.io.engine.transport.name, 'polling', 'still on long-polling')
})

t.test('client events with acks: the reply result, or {error:{code,message}}', async t => {
  const h = await buildSio(t)
  const token = await h.token('carol')
  const c = await sio(h, { auth: { token, categories: ['dashboard'] }, transports: ['websocket'] })
  t.teardown(() => c.close())
  t.same((await c.next('connected')).subscriptions, ['dashboard'])

  t.same(await c.ask('subscribe_category', { categories: ['maintenance'] }), { subscriptions: ['dashboard', 'maintenance'] })
  t.same(await c.ask('unsubscribe_category', { categories: ['dashboard'] }), { subscriptions: ['maintenance'] })
  const forbidden = await c.ask('subscribe_category', { categories: ['admin'] })
  t.equal(forbidden.error.code, 'forbidden', 'a category the role may not see')
  t.match(forbidden.error.message, /admin/)

  const a = await publish(h, { category: 'maintenance', title: 'a' })
  await publish(h, { category: 'maintenance', title: 'b' })
  const history = await c.ask('request_notification_history', { limit: 1 })
  t.equal(history.notifications.length, 1)
  t.equal(history.hasMore, true)
  t.same(await c.ask('mark_read', { ids: [a.id] }), { unread: 1 })
  t.same(await c.ask('mark_read', { all: true }), { unread: 0 })
  const bad = await c.ask('mark_read', { ids: [a.id], all: true })
  t.equal(bad.error.code, 'bad_request')

  const pong = await c.ask('ping')
  t.ok(!Number.isNaN(Date.parse(pong.time)), 'ping answers an ISO time')
  const refreshed = await c.ask('refresh', { token: await h.token('carol', 'user', '2h') })
  t.ok(Date.parse(refreshed.expiresAt) > Date.now() + 3600_000, 'refresh answers the new expiry')

  // Bad input: an error answer with the /ws code, and the connection stays.
  t.equal((await c.ask('subscribe_category', { categories: 'maintenance' })).error.code, 'bad_request', 'schema violation')
  t.equal((await c.ask('subscribe_category', { categories: ['x'], extra: 1 })).error.code, 'bad_request', 'unknown field')
  t.equal((await c.ask('subscribe_category', 'maintenance')).error.code, 'bad_request', 'a payload that is not an object')
  t.equal((await c.ask('subscribe_category', Buffer.from('{}'))).error.code, 'bad_request', 'a binary payload')
  t.equal((await c.ask('nonsense', {})).error.code, 'unknown_type', 'an unknown event')
  t.equal((await c.ask('error', {})).error.code, 'unknown_type', "an event named 'error' is just unknown (nothing throws)")
  const spoof = await c.ask('ping', { type: 'refresh', id: 'x' })
  t.ok(spoof.time, "the payload cannot change the event's type")
  const two = await within(c.socket.emitWithAck('ping', {}, {}), 3000) as Payload
  t.equal(two.error.code, 'bad_request', 'two payloads')

  // An event without an ack has nowhere to be answered: an error event, nothing done.
  const error = c.next('error')
  c.socket.emit('subscribe_category', { categories: ['dashboard'] })
  const e = await error
  t.equal(e.type, 'error')
  t.equal(e.code, 'bad_request')
  t.match(e.message, /acknowledgement/)
  t.same((await c.ask('ping')).time !== undefined, true, 'still connected and answering')
  t.same((await c.ask('subscribe_category', { categories: [] })).error.code, 'bad_request')
  t.same((await c.ask('unsubscribe_category', { categories: ['user'] })).subscriptions, ['maintenance'], 'the ack-less subscribe changed nothing')
})

t.test('refused handshakes: connect_error unauthorized / forbidden, and no session', async t => {
  const h = await buildSio(t, { limits: { maxConnectionsPerUser: 1 } })
  const none = await refused(h)
  t.equal(none.message, 'unauthorized', 'no token')
  t.equal(none.data?.code, 'UN_MISSING_CREDENTIALS')
  t.equal((await refused(h, { auth: { token: 'not-a-jwt' } })).message, 'unauthorized', 'a bad token')
  t.equal((await refused(h, { auth: { token: await h.token('eve', 'user', -10) } })).message, 'unauthorized', 'an expired token')
  t.equal((await refused(h, { auth: { token: await h.token('eve', 'pirate') } })).message, 'forbidden', 'a role outside the policy')
  t.equal((await refused(h, { auth: { token: await h.token('eve'), categories: ['admin'] } })).message, 'forbidden', 'a category the role may not see')
  t.equal((await refused(h, { auth: { token: await h.token('eve'), since: 'soon' } })).message, 'bad_request', 'a malformed since')
  t.equal((await refused(h, { auth: { token: await h.token('eve'), categories: ['billing'] } })).message, 'bad_request', 'an unknown category')
  const ambiguous = await refused(h, { auth: { token: await h.token('eve') }, query: { token: await h.token('mallory') } })
  t.equal(ambiguous.message, 'bad_request', 'two different tokens')
  t.match(ambiguous.data?.message, /Ambiguous credentials/)
  t.equal((await refused(h, { auth: { token: API_KEY } })).message, 'forbidden', 'an API key is not a user')
  t.equal((await refused(h, { transports: ['polling'] })).message, 'unauthorized', 'refused on long-polling too')

  const first = await sio(h, { auth: { token: await h.token('eve') }, transports: ['websocket'] })
  t.teardown(() => first.close())
  await first.next('connected')
  const over = await refused(h, { auth: { token: await h.token('eve') } })
  t.equal(over.message, 'forbidden', 'the per-user connection limit counts Socket.IO connections')
  const overWs = await refusedUpgrade(h.ws, { token: await h.token('eve') })
  t.equal(overWs.statusCode, 403, 'and /ws counts them too: one registry')
  t.equal(h.app.notifications.stats().connections, 1)
})

t.test('resume with auth.since: the missed notifications, then replayed, then live; no gap, no duplicate', async t => {
  const h = await buildSio(t)
  const first = await sio(h, { auth: { token: await h.token('dan') }, transports: ['websocket'] })
  const { lastSeq, epoch } = await first.next('connected')
  first.close()
  const missed = [
    await publish(h, { category: 'dashboard', title: 'm1' }),
    await publish(h, { category: 'admin', title: 'not entitled' }),
    await publish(h, { category: 'system', title: 'm2' })
  ]
  // A publish loop keeps going while the client resumes.
  let publishing = true
  const published: number[] = []
  const loop = (async () => {
    for (let i = 0; publishing && i < 200; i++) {
      published.push((await publish(h, { category: 'system', title: `live${i}` })).seq)
      await sleep(1)
    }
  })()
  const again = await sio(h, { auth: { token: await h.token('dan'), since: lastSeq, epoch } })
  t.teardown(() => again.close())
  await again.next('connected')
  await sleep(50)
  publishing = false
  await loop
  const end = await publish(h, { category: 'system', title: 'end' })
  const seqs: number[] = []
  const replayed: Array<{ at: number, payload: Payload }> = []
  for (;;) {
    const e = await again.nextEvent()
    if (e.event === 'replayed') replayed.push({ at: seqs.length, payload: e.payload })
    else if (e.event === 'notification') {
      seqs.push(e.payload.notification.seq)
      if (e.payload.notification.seq === end.seq) break
    }
  }
  t.equal(replayed.length, 1, 'replayed is sent once')
  t.equal(replayed[0]!.payload.complete, true)
  t.equal(replayed[0]!.payload.count, replayed[0]!.at, 'after exactly the replayed notifications')
  t.ok(replayed[0]!.at >= 2, 'the missed ones are among them')
  t.same(seqs.slice(0, 2), [missed[0]!.seq, missed[2]!.seq], 'the missed entitled ones come first')
  t.same(seqs, [missed[0]!.seq, missed[2]!.seq, ...published, end.seq], 'every seq once, in order')
})

t.test('one system, two doors: same id and seq on /ws and Socket.IO; mark_read on one shows on the other; stats per transport', async t => {
  const h = await buildSio(t)
  const token = await h.token('fay')
  const ws = await connect(h.ws, { token })
  const c = await sio(h, { auth: { token }, transports: ['websocket'] })
  await ws.next()
  await c.next('connected')
  const s = await stats(h)
  t.same(s.transports, { ws: 1, socketio: 1 }, 'one connection per door')
  t.equal(s.connections, 2)
  t.equal(s.users, 1)
  t.equal(s.internals.socketio.sockets, 1)

  // Permissions are the registry's: a viewer on Socket.IO gets neither another user's nor a category its role may not see.
  const viewer = await sio(h, { auth: { token: await h.token('vic', 'viewer') }, transports: ['websocket'] })
  t.teardown(() => viewer.close())
  t.same((await viewer.next('connected')).categories, ['system', 'maintenance'])
  await publish(h, { category: 'dashboard', title: 'not for viewers' })
  await publish(h, { category: 'system', title: 'for fay only', audience: { users: ['fay'] } })
  const forViewers = await publish(h, { category: 'system', title: 'for viewers', audience: { roles: ['viewer'] } })
  t.equal((await viewer.next('notification')).notification.id, forViewers.id, 'the first the viewer gets is the one for its role')
  await c.next('notification')
  await c.next('notification')
  await ws.nextOf('notification')
  await ws.nextOf('notification')
  t.same(await c.ask('mark_read', { all: true }), { unread: 0 })

  const sent = await publish(h, { category: 'user', title: 'both', audience: { users: ['fay'] } })
  const [a, b] = await Promise.all([ws.nextOf('notification'), c.next('notification')])
  t.equal(a.notification.id, sent.id)
  t.equal(b.notification.id, sent.id)
  t.equal(a.notification.seq, b.notification.seq)

  t.same(await c.ask('mark_read', { ids: [sent.id] }), { unread: 0 })
  const viaWs = await ws.request({ type: 'request_notification_history', limit: 1 })
  t.equal(viaWs.result.notifications[0].read, true, 'read on Socket.IO, read on /ws')
  const second = await publish(h, { category: 'user', title: 'second', audience: { users: ['fay'] } })
  await c.next('notification')
  t.equal((await ws.request({ type: 'mark_read', ids: [second.id] })).result.unread, 0)
  const viaSio = await c.ask('request_notification_history', { limit: 1 })
  t.equal(viaSio.notifications[0].read, true, 'read on /ws, read on Socket.IO')

  const gone = c.next('disconnect')
  c.close()
  await gone
  let after = await stats(h)
  for (let i = 0; i < 100 && after.transports.socketio !== 1; i++) {
    await sleep(10)
    after = await stats(h)
  }
  t.same(after.transports, { ws: 1, socketio: 1 }, 'the Socket.IO count falls by one (the viewer is still there)')
  viewer.close()
  for (let i = 0; i < 100 && after.transports.socketio !== 0; i++) {
    await sleep(10)
    after = await stats(h)
  }
  t.same(after.transports, { ws: 1, socketio: 0 }, 'the Socket.IO count falls to zero')
  t.equal(h.app.notifications.sizes().socketio?.sockets, 0)
  ws.close()
})

t.test('token expiry: an error event, then a server disconnect; per-connection request limits apply to events', async t => {
  const h = await buildSio(t, { limits: { requestBurst: 3, requestsPerSecond: 0.001 } })
  // Two seconds at least to connect and be answered before exp, even on a loaded machine.
  const { token, expMs } = await expiringToken('gil', 'user', 2000)
  const c = await sio(h, { auth: { token }, transports: ['websocket'] })
  await c.next('connected')
  const answers = await Promise.all([1, 2, 3, 4].map(() => c.ask('ping')))
  t.equal(answers.filter(a => a.time !== undefined).length, 3, 'the burst is answered')
  t.same(answers[3], { error: { code: 'rate_limited', message: 'Too many requests: slow down' } }, 'the next one is rate_limited')
  const error = await c.next('error', expMs - Date.now() + 3000)
  t.same(error, { type: 'error', code: 'closed', close: 4001, message: 'token expired' })
  t.equal((await c.next('disconnect')).reason, 'io server disconnect', 'a server disconnect: the client does not reconnect with the dead token')
})

t.test('slow consumer: a Socket.IO client that stops reading is dropped; engine.io buffers count', async t => {
  const h = await buildSio(t, { limits: { sendBufferBytes: 64 * 1024 } })
  const reader = await sio(h, { auth: { token: await h.token('reader'), categories: ['dashboard'] }, transports: ['websocket'] })
  const slow = await sio(h, { auth: { token: await h.token('slow'), categories: ['dashboard'] }, transports: ['websocket'] })
  t.teardown(() => { reader.close(); slow.close() })
  await reader.next('connected')
  await slow.next('connected')
  const raw = (slow.socket.io.engine.transport as unknown as { ws: { _socket: { pause (): void } } }).ws._socket
  raw.pause()
  const data = { blob: 'z'.repeat(12 * 1024) }
  let sent = 0
  for (let i = 0; i < 3000 && h.app.notifications.stats().connections > 1; i++) {
    await h.app.notifications.publish({ category: 'dashboard', title: `n${i}`, data })
    sent++
    if (i % 20 === 19) await sleep(1)
  }
  t.equal(h.app.notifications.stats().connections, 1, `the non-reader was dropped after ${sent} notifications`)
  let sizes = h.app.notifications.sizes()
  for (let i = 0; i < 200 && sizes.socketio!.sockets! > 1; i++) {
    await sleep(25)
    sizes = h.app.notifications.sizes()
  }
  t.equal(sizes.socketio!.sockets, 1, 'its socket was cut off after the close grace and released')
  t.equal(sizes.socketio!.closeTimers, 0)
  t.ok((await reader.ask('ping')).time, 'the reader is still served')
})

t.test('shutdown: app.close() with 200 Socket.IO clients (and /ws ones) closes them all in one drain, promptly', async t => {
  const h = await buildSio(t)
  const clients: SioClient[] = []
  for (let i = 0; i < 200; i++) clients.push(await sio(h, { auth: { token: await h.token(`u${i}`) }, transports: ['websocket'] }))
  t.teardown(() => { for (const c of clients) c.close() })
  await Promise.all(clients.map(c => c.next('connected')))
  const ws = await connect(h.ws, { token: await h.token('w1') })
  // A /ws client that stops reading: the /ws drain waits its whole close grace, then terminates it.
  const stuck = await connect(h.ws, { token: await h.token('w2') })
  t.teardown(() => stuck.ws.terminate())
  await ws.next()
  await stuck.next()
  ;(stuck.ws as unknown as { _socket: { pause (): void } })._socket.pause()
  const stuckPort = (stuck.ws as unknown as { _socket: Socket })._socket.localPort
  const stuckServerSide = [...h.upgraded].find(s => (s as Socket).remotePort === stuckPort)!
  const stuckCut = new Promise<number>(resolve => stuckServerSide.once('close', () => resolve(Date.now())))
  t.equal(h.app.notifications.stats().transports.socketio, 200)
  const firstNotice = Promise.race(clients.map(c => c.next('error', 8000))).then(() => Date.now())
  const gone = Promise.all(clients.map(c => c.next('disconnect', 8000)))
  const closing = within(h.app.close(), 8000, 'app.close()')
  await firstNotice
  const late = await refused(h, { auth: { token: await h.token('late') }, transports: ['polling'] })
  t.ok(late instanceof Error, `a handshake during the drain is refused (${late.message})`)
  await closing
  const [first, cut] = await Promise.all([firstNotice, stuckCut])
  t.ok(first < cut, 'Socket.IO clients were being closed while the /ws drain still waited for its stuck client: one drain, not one after the other')
  const reasons = await gone
  t.equal(reasons.length, 200, 'all 200 Socket.IO clients got their disconnect')
  t.ok(reasons.every(r => r.reason === 'transport close'), 'a transport close: socket.io-client reconnects on its own')
  t.equal((await ws.closed).code, 1001, 'the reading /ws client got 1001')
  t.equal(h.app.notifications.stats().connections, 0)
})

t.test('options: socketio off by default, a custom path, and wrong values fail at registration', async t => {
  const off = await build(t)
  const res = await fetch(`${off.http}/socket.io/?EIO=4&transport=polling`)
  t.equal(res.status, 404, 'no Socket.IO unless enabled')
  t.notMatch(await res.text(), /"sid"/, 'no engine.io handshake')

  const custom = await buildSio(t, { socketio: { path: '/legacy-io' } })
  const c = await sio(custom, { path: '/legacy-io', auth: { token: await custom.token('hal') } })
  t.teardown(() => c.close())
  t.equal((await c.next('connected')).type, 'connected')

  const { buildServer, configFromEnv } = await import('../server/index.js')
  t.equal(configFromEnv({ NOTIFY_SOCKETIO: '1' }).socketio, true, 'NOTIFY_SOCKETIO=1 turns it on')
  t.equal(configFromEnv({ NOTIFY_SOCKETIO: '0' }).socketio, undefined)
  t.equal(configFromEnv({}).socketio, undefined, 'off by default')
  t.throws(() => configFromEnv({ NOTIFY_SOCKETIO: 'yes' }), { name: 'ConfigError', message: /NOTIFY_SOCKETIO must be 1 \(on\) or 0 \(off\)/ })
  await t.rejects(buildServer({ jwtSecret: 'x'.repeat(32), store: 'memory', logger: false, socketio: { path: 'io' } }), /socketio.path/)
  await t.rejects(buildServer({ jwtSecret: 'x'.repeat(32), store: 'memory', logger: false, socketio: { path: '/' } }), /socketio.path/)
  await t.rejects(buildServer({ jwtSecret: 'x'.repeat(32), store: 'memory', logger: false, path: '/io/ws', socketio: { path: '/io' } }), /WebSocket route/)
  await t.rejects(buildServer({ jwtSecret: 'x'.repeat(32), store: 'memory', logger: false, authenticate: async () => null, socketio: true }), /authenticate/)
})

t.test('CORS for long-polling: NOTIFY_CORS_ORIGINS reaches engine.io (the Fastify CORS plugin never sees its requests)', async t => {
  const handshake = (h: Harness, origin: string): Promise<Response> =>
    fetch(`${h.http}/socket.io/?EIO=4&transport=polling`, { headers: { origin } })

  const same = await buildSio(t)
  const plain = await handshake(same, 'https://old-page.example.com')
  t.equal(plain.status, 200, 'the handshake itself works')
  t.equal(plain.headers.get('access-control-allow-origin'), null, 'no CORS unless origins are configured')

  const h = await buildSio(t, { corsOrigins: ['https://old-page.example.com'] })
  const allowed = await handshake(h, 'https://old-page.example.com')
  t.equal(allowed.status, 200)
  t.equal(allowed.headers.get('access-control-allow-origin'), 'https://old-page.example.com', 'a configured origin may poll')
  const other = await handshake(h, 'https://elsewhere.example.com')
  t.not(other.headers.get('access-control-allow-origin'), 'https://elsewhere.example.com', 'another origin is not allowed')
  const preflight = await fetch(`${h.http}/socket.io/?EIO=4&transport=polling`, {
    method: 'OPTIONS', headers: { origin: 'https://old-page.example.com', 'access-control-request-method': 'POST' }
  })
  t.ok(preflight.status === 204 || preflight.status === 200, 'the preflight is answered')
  t.match(preflight.headers.get('access-control-allow-methods') ?? '', /POST/)
  const rest = await fetch(`${h.http}/health`, { headers: { origin: 'https://old-page.example.com' } })
  t.equal(rest.headers.get('access-control-allow-origin'), 'https://old-page.example.com', 'the REST API keeps its CORS')

  const any = await buildSio(t, { corsOrigins: ['*'] })
  t.equal((await handshake(any, 'https://anywhere.example.com')).headers.get('access-control-allow-origin'), '*')

  const { buildServer } = await import('../server/index.js')
  await t.rejects(buildServer({ jwtSecret: 'x'.repeat(32), store: 'memory', logger: false, socketio: { corsOrigins: 'https://a' as never } }), /socketio.corsOrigins/)
})
