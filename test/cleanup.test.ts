// Cleanup is exact: after connect/subscribe/disconnect churn, including clients
// that go away while the server is still authenticating or starting them, every
// index, timer and per-connection table returns to its baseline size. Judged by
// the sizes the manager exposes (also under `internals` in the stats route),
// not by process memory.
import t from 'tap'
import WebSocket from 'ws'
import type { FastifyRequest } from 'fastify'
import { MemoryStore } from '../src/stores/memory-store.js'
import { API_KEY, build, connect, publish, sleep, type Harness } from './helper.js'

/** Churn sizes, quoted in docs/protocol.md ("How we test this"). */
const CHURNED = 300
const ABORTED_DURING_AUTH = 100
const ABORTED_DURING_START = 100
const BATCH = 50

const ROLES = ['admin', 'moderator', 'user', 'viewer'] as const
const VISIBLE: Record<string, string[]> = {
  admin: ['system', 'dashboard', 'admin', 'health', 'maintenance', 'security', 'user'],
  moderator: ['system', 'dashboard', 'maintenance', 'security', 'user'],
  user: ['system', 'dashboard', 'maintenance', 'user'],
  viewer: ['system', 'maintenance']
}

type Sizes = ReturnType<Harness['app']['notifications']['sizes']>

const ZERO = {
  registry: { connections: 0, users: 0, roles: 0, categories: 0, indexed: 0, subscriptions: 0 },
  websocket: { sockets: 0, starting: 0, expiryTimers: 0, closeTimers: 0, pendingFrames: 0, wsClients: 0 }
}

/** Polls until the sizes equal `want` (sockets close asynchronously); returns the last sizes seen. */
async function settle (h: Harness, want: Sizes, ms = 8000): Promise<Sizes> {
  const deadline = Date.now() + ms
  let sizes = h.app.notifications.sizes()
  while (JSON.stringify(sizes) !== JSON.stringify(want) && Date.now() < deadline) {
    await sleep(25)
    sizes = h.app.notifications.sizes()
  }
  return sizes
}

t.test('the sizes start at zero and are in the stats route under internals', async t => {
  const h = await build(t)
  t.same(h.app.notifications.sizes(), ZERO)
  const c = await connect(h.ws, { token: await h.token('alice', 'user') })
  await c.next()
  const open = h.app.notifications.sizes()
  t.same(open.registry, { connections: 1, users: 1, roles: 1, categories: 4, indexed: 1, subscriptions: 4 })
  t.same(open.websocket, { sockets: 1, starting: 0, expiryTimers: 1, closeTimers: 0, pendingFrames: 0, wsClients: 1 })
  const res = await h.app.inject({ method: 'GET', url: '/api/notifications/stats', headers: { authorization: `Bearer ${API_KEY}` } })
  t.equal(res.statusCode, 200)
  t.same(res.json().internals, open, 'the stats route shows the same sizes')
  c.close()
  t.same(await settle(h, ZERO), ZERO, 'back to zero after the close')
})

t.test(`churn: ${CHURNED} connections connect, subscribe, request and disconnect; every size returns to baseline`, async t => {
  const h = await build(t)
  const baseline = h.app.notifications.sizes()
  t.same(baseline, ZERO)
  await publish(h, { category: 'system', title: 'something to replay' })
  let n = 0
  for (let b = 0; b < CHURNED / BATCH; b++) {
    await Promise.all(Array.from({ length: BATCH }, async () => {
      const i = n++
      const role = ROLES[i % ROLES.length]!
      const query: Record<string, string> = {}
      if (i % 3 === 0) query.since = '0'
      if (i % 5 === 0) query.legacy = '1'
      const c = await connect(h.ws, { token: await h.token(`u${i % 37}`, role), query })
      await c.nextOf('connected', 5000)
      const visible = VISIBLE[role]!
      const sub = await c.request({ type: 'subscribe_category', categories: visible.slice(0, 2) }, 5000)
      t.equal(sub.type, 'reply')
      const unsub = await c.request({ type: 'unsubscribe_category', categories: [visible[0]!] }, 5000)
      t.equal(unsub.type, 'reply')
      if (i % 4 === 0) await c.request({ type: 'request_notification_history', limit: 5 }, 5000)
      // Half close cleanly, half vanish without a close handshake.
      if (i % 2 === 0) c.close()
      else c.ws.terminate()
      await c.closed
    }))
  }
  t.equal(n, CHURNED)
  t.same(await settle(h, baseline), baseline, 'registry indexes, sockets, timers and held frames are back to baseline')
  // The server still works after the churn.
  const c = await connect(h.ws, { token: await h.token('after', 'user') })
  t.equal((await c.next()).type, 'connected')
  c.close()
  t.same(await settle(h, baseline), baseline)
})

t.test(`${ABORTED_DURING_AUTH} clients that go away while the server is still authenticating leave nothing behind`, async t => {
  let started = 0
  let finished = 0
  /** Per client: leaves as soon as the server is authenticating it. */
  const leave = new Map<string, () => void>()
  let allFinished!: () => void
  const authenticated = new Promise<void>(resolve => { allFinished = resolve })
  const h = await build(t, {
    // A slow authenticate keeps each upgrade inside preValidation long enough for the client to leave.
    authenticate: async (request: FastifyRequest) => {
      started++
      const id = request.headers['x-user']
      if (typeof id === 'string') leave.get(id)?.()
      await sleep(150)
      if (id !== 'stays' && ++finished === ABORTED_DURING_AUTH) allFinished()
      return typeof id === 'string' ? { id, role: 'user' } : null
    }
  })
  const baseline = h.app.notifications.sizes()
  const attempts: Array<Promise<void>> = []
  for (let i = 0; i < ABORTED_DURING_AUTH; i++) {
    attempts.push(new Promise<void>(resolve => {
      const ws = new WebSocket(h.ws, { headers: { 'x-user': `gone${i}` } })
      ws.on('error', () => {})
      ws.on('close', () => resolve())
      // Leave once the server is checking this client, before the 150 ms check ends.
      leave.set(`gone${i}`, () => ws.terminate())
    }))
  }
  await Promise.all(attempts)
  // Every authenticate finished; settle() then waits for the (now dead) upgrades to be abandoned.
  await authenticated
  t.equal(started, ABORTED_DURING_AUTH, 'authenticate ran for every client that left')
  t.same(await settle(h, baseline), baseline, 'no session, socket or index entry for a client that left during authentication')
  const c = await connect(h.ws, { headers: { 'x-user': 'stays' } })
  t.equal((await c.next()).type, 'connected', 'a later client connects normally')
  c.close()
  t.same(await settle(h, baseline), baseline)
})

t.test(`${ABORTED_DURING_START} clients that go away while their session is starting (connected/replay not yet written)`, async t => {
  let gate: () => void = () => {}
  let gated = true
  const opened = new Promise<void>(resolve => { gate = resolve })
  class SlowStartStore extends MemoryStore {
    override async lastSeq (): Promise<number> {
      // While gated, every starting session waits here: registered, not yet connected.
      if (gated) await opened
      return super.lastSeq()
    }
  }
  const h = await build(t, { store: new SlowStartStore() })
  const baseline = h.app.notifications.sizes()
  const clients = await Promise.all(Array.from({ length: ABORTED_DURING_START }, async (_v, i) =>
    connect(h.ws, { token: await h.token(`s${i}`, 'user', 60), query: i % 2 === 0 ? { since: '0' } : {} })))
  // Every session is registered and starting, holding live frames until connected is written.
  let sizes = h.app.notifications.sizes()
  for (let i = 0; i < 200 && sizes.websocket!.starting! < ABORTED_DURING_START; i++) {
    await sleep(10)
    sizes = h.app.notifications.sizes()
  }
  t.equal(sizes.websocket!.starting, ABORTED_DURING_START, 'all sessions are starting')
  t.equal(sizes.registry.connections, ABORTED_DURING_START, 'and registered')
  t.equal(sizes.websocket!.expiryTimers, ABORTED_DURING_START, 'each with an expiry timer')
  await h.app.notifications.publish({ category: 'system', title: 'held while starting' })
  // The local broker hands over on the next turn (setImmediate, queued before this one): the live frame reaches the sessions.
  await new Promise(resolve => setImmediate(resolve))
  t.equal(h.app.notifications.sizes().websocket!.pendingFrames, ABORTED_DURING_START, 'one held frame each')
  for (const [i, c] of clients.entries()) {
    if (i % 2 === 0) c.ws.terminate()
    else c.close()
  }
  await Promise.all(clients.map(c => c.closed))
  gated = false
  gate()
  t.same(await settle(h, baseline), baseline, 'registry, sockets, starting sessions, timers and held frames are back to baseline')
  t.notOk(clients.some(c => c.pending().some(f => f.type === 'notification')), 'nothing was written to a client that left')
})

t.test('closes the server initiates (4001, 4008) and terminations also return to baseline', async t => {
  const h = await build(t, { limits: { badFramesPerMinute: 2 }, heartbeatMs: 60_000 })
  const baseline = h.app.notifications.sizes()
  const expiring = await Promise.all(Array.from({ length: 20 }, async (_v, i) => connect(h.ws, { token: await h.token(`e${i}`, 'user', 3) })))
  const noisy = await Promise.all(Array.from({ length: 20 }, async (_v, i) => connect(h.ws, { token: await h.token(`n${i}`, 'viewer') })))
  for (const c of noisy) await c.next()
  for (const c of noisy) for (let k = 0; k < 3; k++) c.send('{bad')
  const codes = await Promise.all([...expiring, ...noisy].map(c => c.closed))
  t.same([...new Set(codes.slice(0, 20).map(c => c.code))], [4001], 'expired tokens: 4001')
  t.same([...new Set(codes.slice(20).map(c => c.code))], [4008], 'bad frames: 4008')
  t.same(await settle(h, baseline), baseline)
})
