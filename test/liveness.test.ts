// Liveness and token expiry at the edges: a client that stops answering pings
// is terminated and removed from every index; a token is honoured up to its
// exp and not after; refresh just before exp extends the session.
import t from 'tap'
import WebSocket from 'ws'
import { SignJWT } from 'jose'
import { build, connect, expiringToken, sleep, within, SECRET } from './helper.js'

const ZERO_WS = { sockets: 0, starting: 0, expiryTimers: 0, closeTimers: 0, pendingFrames: 0, wsClients: 0 }

t.test('heartbeat: a client that does not answer pings is terminated after two missed pongs; one that answers stays', async t => {
  const HEARTBEAT = 100
  const h = await build(t, { heartbeatMs: HEARTBEAT })
  const answering = await connect(h.ws, { token: await h.token('alice', 'user') })
  await answering.next()
  const silent = new WebSocket(h.ws, { headers: { authorization: `Bearer ${await h.token('bob', 'admin')}` }, autoPong: false })
  let pings = 0
  silent.on('ping', () => { pings++ })
  const silentClosed = new Promise<number>(resolve => silent.on('close', code => resolve(code)))
  await new Promise(resolve => silent.once('open', resolve))
  await within(new Promise<void>(resolve => {
    const check = setInterval(() => { if (h.app.notifications.sizes().registry.connections === 2) { clearInterval(check); resolve() } }, 5)
  }), 2000, 'registration')
  const started = Date.now()
  const code = await within(silentClosed, 3000, 'termination of the silent client')
  t.equal(code, 1006, 'terminated without a close frame (1006 on the client)')
  t.ok(pings >= 2, `it was pinged at least twice (${pings})`)
  t.ok(Date.now() - started >= HEARTBEAT, 'not before a heartbeat interval passed')
  // The server sees its own side close a moment after the client does.
  for (let i = 0; i < 100 && h.app.notifications.sizes().registry.connections > 1; i++) await sleep(10)
  const sizes = h.app.notifications.sizes()
  t.same(sizes.registry, { connections: 1, users: 1, roles: 1, categories: 4, indexed: 1, subscriptions: 4 }, 'removed from the user, role and category indexes')
  t.equal(sizes.websocket!.sockets, 1)
  t.equal(sizes.websocket!.expiryTimers, 1, 'its expiry timer is gone')
  // The answering client outlives many heartbeats.
  await sleep(HEARTBEAT * 5)
  t.equal(answering.ws.readyState, WebSocket.OPEN, 'a client that answers pings stays connected')
  t.equal((await answering.request({ type: 'ping' })).type, 'reply')
  answering.close()
  await answering.closed
  for (let i = 0; i < 100 && h.app.notifications.sizes().websocket!.sockets! > 0; i++) await sleep(10)
  t.same(h.app.notifications.sizes().websocket, ZERO_WS)
})

t.test('expiry at the edge: exp a second ago is 401; exp in a second is accepted, then closed 4001 not before exp', async t => {
  const h = await build(t)
  const sign = (exp: number, sub = 'alice') => new SignJWT({ role: 'user' }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub)
    .setExpirationTime(exp).sign(new TextEncoder().encode(SECRET))
  const now = Math.floor(Date.now() / 1000)
  const past = await connect(h.ws, { token: await sign(now - 1) }).catch((err: { statusCode?: number }) => err)
  t.equal((past as { statusCode?: number }).statusCode, 401, 'an exp already passed is refused before the upgrade')

  const exp = Math.floor(Date.now() / 1000) + 2
  const edge = await connect(h.ws, { token: await sign(exp) })
  t.equal((await edge.next()).type, 'connected')
  t.equal((await edge.request({ type: 'ping' })).type, 'reply', 'served before exp')
  const closed = await within(edge.closed, 4000, 'close at exp')
  t.equal(closed.code, 4001)
  t.ok(Date.now() >= exp * 1000 - 20, 'closed at exp, not before')
  t.equal(h.app.notifications.sizes().websocket!.expiryTimers, 0, 'no expiry timer left')
})

t.test('refresh just before exp extends the session; a refresh with an expired token is bad_request and the close still comes', async t => {
  const h = await build(t)
  const sign = (exp: number, role = 'user') => new SignJWT({ role }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice')
    .setExpirationTime(exp).sign(new TextEncoder().encode(SECRET))
  const exp = Math.ceil((Date.now() + 2500) / 1000)
  const a = await connect(h.ws, { token: await sign(exp) })
  const b = await connect(h.ws, { token: await sign(exp) })
  await a.next(); await b.next()
  // Signed beforehand, and the last second before exp (not less): both refreshes must be answered before it, on a loaded machine too.
  const later = Math.floor(Date.now() / 1000) + 3600
  const laterToken = await sign(later)
  const staleToken = await sign(Math.floor(Date.now() / 1000) - 5)
  const wait = exp * 1000 - 1000 - Date.now()
  if (wait > 0) await sleep(wait)
  const r = await a.request({ type: 'refresh', token: laterToken })
  t.equal(r.type, 'reply')
  t.equal(r.result.expiresAt, new Date(later * 1000).toISOString())
  const stale = await b.request({ type: 'refresh', token: staleToken })
  t.equal(stale.type, 'error')
  t.equal(stale.code, 'bad_request', 'an expired refresh token is refused')
  const roleChange = await a.request({ type: 'refresh', id: 'same-user-other-role', token: await sign(later, 'admin') }).catch(() => undefined)
  t.equal(roleChange, undefined, 'a refresh that changes the role gets no reply')
  t.equal((await a.closed).code, 4001, 'and closes with 4001')
  t.equal((await within(b.closed, 3000, 'b expiry')).code, 4001, 'the unrefreshed connection closes at exp')
})

t.test('refresh keeps a connection past its first exp', async t => {
  const h = await build(t)
  // Two seconds at least to connect and refresh before the first exp, even on a loaded machine.
  const first = await expiringToken('carol', 'user', 2000)
  const c = await connect(h.ws, { token: first.token })
  await c.next()
  const r = await c.request({ type: 'refresh', token: await h.token('carol', 'user', '1h') })
  t.equal(r.type, 'reply')
  await sleep(first.expMs + 500 - Date.now())
  t.equal(c.ws.readyState, WebSocket.OPEN)
  t.equal(h.app.notifications.sizes().websocket!.expiryTimers, 1, 'one expiry timer, re-armed')
  c.close()
})
