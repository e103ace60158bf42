// Session against a stand-in socket and a hand-driven clock: token expiry,
// close grace, heartbeat and rate limits without waiting real seconds. The
// real-socket tests (ws-protocol, limits, liveness) keep ordering and resume.
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { HandClock } from './hand-clock.js'
import { LocalBroker } from '../src/brokers/local-broker.js'
import type { Limits } from '../src/limits.js'
import { NotificationManager } from '../src/manager.js'
import { CLOSE_GRACE_MS, Session, type SessionOptions, type SocketLike } from '../src/session.js'
import { MemoryStore } from '../src/stores/memory-store.js'
import type { TokenVerifier } from '../src/tokens.js'

const START = Date.parse('2026-01-01T00:00:00Z')

type Frame = Record<string, any> & { type: string }

/** The socket a session writes to, recording everything; `next()` waits for the next frame written. */
class StandInSocket implements SocketLike {
  readonly frames: Frame[] = []
  readonly closes: Array<{ code: number, reason?: string }> = []
  terminated = 0
  pings = 0
  bufferedAmount = 0
  failSends = false
  #waiters: Array<(f: Frame) => void> = []

  send (data: string): void {
    if (this.failSends) throw new Error('socket write failed')
    const frame = JSON.parse(data) as Frame
    this.frames.push(frame)
    this.#waiters.shift()?.(frame)
  }

  #onClose: Array<() => void> = []
  close (code: number, reason?: string): void {
    this.closes.push({ code, reason })
    for (const resolve of this.#onClose.splice(0)) resolve()
  }

  /** Resolves once the session has closed this socket. */
  closed (): Promise<void> {
    return this.closes.length > 0 ? Promise.resolve() : new Promise(resolve => this.#onClose.push(resolve))
  }

  terminate (): void { this.terminated++ }
  ping (): void { this.pings++ }
  next (): Promise<Frame> { return new Promise(resolve => this.#waiters.push(resolve)) }
}

const silent = pino({ level: 'silent' })

async function setup (t: Test, opts: { limits?: Partial<Limits>, session?: Partial<SessionOptions> } = {}) {
  const manager = new NotificationManager({ store: new MemoryStore(), broker: new LocalBroker(), logger: silent, ...(opts.limits ? { limits: opts.limits } : {}) })
  await manager.start()
  t.teardown(() => manager.close())
  const clock = new HandClock(START)
  const socket = new StandInSocket()
  const session = new Session({
    manager, socket, clock, log: silent, user: { id: 'alice', role: 'user' }, subscriptions: ['system'], ...opts.session
  })
  const connected = socket.next()
  await session.start()
  t.equal((await connected).type, 'connected')
  return { manager, clock, socket, session }
}

/** Sends a client frame and resolves with the frame the session writes next. */
function request (socket: StandInSocket, session: Session, frame: Record<string, unknown>): Promise<Frame> {
  const answer = socket.next()
  session.onMessage(JSON.stringify(frame), false)
  return answer
}

t.test('the token expires on the clock: closed 4001 at exp, not a millisecond before', async t => {
  const { clock, socket, session } = await setup(t, { session: { expiresAt: START + 60_000 } })
  clock.advance(59_999)
  t.same(socket.closes, [])
  t.same(session.held.expiryTimers, 1)
  clock.advance(1)
  t.same(socket.closes, [{ code: 4001, reason: 'token expired' }])
  t.equal(session.closed, true)
  t.equal(session.held.expiryTimers, 0, 'the expiry timer is released')
})

t.test('an expiry beyond setTimeout\'s ceiling re-arms instead of firing early', async t => {
  const far = 2 ** 31 + 5_000
  const { clock, socket } = await setup(t, { session: { expiresAt: START + far } })
  clock.advance(2 ** 31 - 1)
  t.same(socket.closes, [], 'still open after the first timer')
  clock.advance(far - (2 ** 31 - 1))
  t.same(socket.closes, [{ code: 4001, reason: 'token expired' }])
})

t.test('a refresh before exp moves the deadline to the new token\'s', async t => {
  const verifyToken: TokenVerifier = async () => ({ user: { id: 'alice', role: 'user' }, expiresAt: START + 120_000 })
  const { clock, socket, session } = await setup(t, { session: { expiresAt: START + 60_000, verifyToken } })
  clock.advance(30_000)
  const reply = await request(socket, session, { type: 'refresh', id: 'r1', token: 'new' })
  t.same(reply, { type: 'reply', id: 'r1', result: { expiresAt: new Date(START + 120_000).toISOString() } })
  clock.advance(60_000)
  t.same(socket.closes, [], 'the old exp passed without a close')
  clock.advance(30_000)
  t.same(socket.closes, [{ code: 4001, reason: 'token expired' }])
})

t.test('a token already expired at start closes at once', async t => {
  const manager = new NotificationManager({ store: new MemoryStore(), broker: new LocalBroker(), logger: silent })
  await manager.start()
  t.teardown(() => manager.close())
  const socket = new StandInSocket()
  const session = new Session({ manager, socket, clock: new HandClock(START), log: silent, user: { id: 'a', role: 'user' }, subscriptions: [], expiresAt: START })
  await session.start()
  t.same(socket.closes, [{ code: 4001, reason: 'token expired' }])
  t.same(socket.frames, [], 'not even connected is written')
})

t.test('after close, the peer has CLOSE_GRACE_MS to answer before the socket is terminated', async t => {
  const { clock, socket, session } = await setup(t)
  session.close(4008, 'policy')
  t.same(socket.closes, [{ code: 4008, reason: 'policy' }])
  clock.advance(CLOSE_GRACE_MS - 1)
  t.equal(socket.terminated, 0)
  clock.advance(1)
  t.equal(socket.terminated, 1, 'terminated when the grace is over')
  t.equal(session.held.closeTimers, 0)
})

t.test('a peer that answers the close within the grace is not terminated', async t => {
  const { clock, socket, session } = await setup(t)
  session.close(1000, 'bye')
  t.equal(session.held.closeTimers, 1)
  session.dispose()
  t.equal(session.held.closeTimers, 0)
  clock.advance(CLOSE_GRACE_MS * 2)
  t.equal(socket.terminated, 0)
  t.equal(clock.timers, 0, 'no timer left behind')
})

t.test('heartbeat: pinged each interval, terminated after two missed pongs, kept while it answers', async t => {
  const { socket, session } = await setup(t)
  session.heartbeat()
  session.heartbeat()
  t.equal(socket.pings, 2)
  t.equal(socket.terminated, 0)
  session.onPong()
  session.heartbeat()
  session.heartbeat()
  t.equal(socket.terminated, 0, 'a pong resets the count')
  session.heartbeat()
  t.equal(socket.terminated, 1, 'two intervals without a pong: dropped')
  t.equal(socket.pings, 4)
})

t.test('requests over the rate get rate_limited, refill with time, and too many in a row close 4008', async t => {
  const { clock, socket, session } = await setup(t, { limits: { requestsPerSecond: 2, requestBurst: 2, rateLimitedBeforeClose: 2 } })
  t.equal((await request(socket, session, { type: 'ping', id: 'a' })).type, 'reply')
  t.equal((await request(socket, session, { type: 'ping', id: 'b' })).type, 'reply')
  t.match(await request(socket, session, { type: 'ping', id: 'c' }), { type: 'error', code: 'rate_limited' })
  clock.advance(500)
  t.match(await request(socket, session, { type: 'ping', id: 'd' }), { type: 'reply', id: 'd', result: { time: new Date(START + 500).toISOString() } }, 'one token back after half a second, and the time is the clock\'s')
  t.match(await request(socket, session, { type: 'ping', id: 'e' }), { type: 'error', code: 'rate_limited' })
  // A third refusal in a row is over the limit of two: closed once the answers owed are written.
  session.onMessage('{"type":"ping"}', false)
  session.onMessage('{"type":"ping"}', false)
  await socket.closed()
  t.same(socket.closes, [{ code: 4008, reason: 'request rate limit exceeded' }])
})

t.test('bad frames are answered up to the per-minute budget, then the connection closes 4008', async t => {
  const { clock, socket, session } = await setup(t, { limits: { badFramesPerMinute: 3 } })
  for (let i = 0; i < 3; i++) t.match(await request(socket, session, { type: 'nope', id: `b${i}` }), { type: 'error', code: 'unknown_type' })
  clock.advance(20_000)
  t.match(await request(socket, session, { type: 'nope', id: 'b3' }), { type: 'error', code: 'unknown_type' }, 'a token back after 20 s')
  session.onMessage('not json', false)
  await socket.closed()
  t.same(socket.closes, [{ code: 4008, reason: 'too many bad frames' }])
})

t.test('a socket whose send throws is closed 1011 by the manager; the other session still gets the notification', async t => {
  const { manager, socket: faulty, session } = await setup(t)
  const healthy = new StandInSocket()
  const other = new Session({ manager, socket: healthy, clock: new HandClock(START), log: silent, user: { id: 'bob', role: 'user' }, subscriptions: ['system'] })
  await other.start()
  faulty.failSends = true
  const arrived = healthy.next()
  await manager.publish({ category: 'system', title: 'for both' })
  t.match(await arrived, { type: 'notification', notification: { title: 'for both' } })
  t.same(faulty.closes, [{ code: 1011, reason: 'internal error' }])
  t.equal(session.closed, true)
  t.equal(manager.stats().connections, 1, 'the faulty session left the registry')
})

t.test('connections with the same subscriptions change them independently', async t => {
  const both = { subscriptions: ['system', 'maintenance'] }
  const a = await setup(t, { session: both })
  const b = await setup(t, { session: both })
  const c = await setup(t, { session: both })
  t.same((await request(a.socket, a.session, { type: 'unsubscribe_category', id: 'u', categories: ['maintenance'] })).result, { subscriptions: ['system'] })
  t.same([...b.session.subscriptions], ['system', 'maintenance'], 'the other connection keeps its subscriptions')
  t.same((await request(b.socket, b.session, { type: 'subscribe_category', id: 's', categories: ['dashboard'] })).result, { subscriptions: ['system', 'maintenance', 'dashboard'] })
  b.session.applyMuted(['system'])
  t.same([...a.session.subscriptions], ['system'])
  t.same([...b.session.subscriptions], ['maintenance', 'dashboard'])
  t.same([...c.session.subscriptions], ['system', 'maintenance'], 'an untouched connection sees none of it')
  t.same(c.manager.registry.recipients({ category: 'maintenance' }), [c.session])
  t.same(a.manager.registry.recipients({ category: 'maintenance' }), [])
})
