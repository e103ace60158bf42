// The event seam, without a server: the manager and a session report each
// event on its channel, with what a subscriber (metrics, tracing) needs.
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { LocalBroker } from '../src/brokers/local-broker.js'
import { events, preciseNow, type EventChannel } from '../src/events.js'
import { NotificationManager } from '../src/manager.js'
import { Session, type SocketLike } from '../src/session.js'
import { MemoryStore } from '../src/stores/memory-store.js'

const log = pino({ level: 'silent' })

/** Every message published on the channel while the test runs. */
function record<T> (t: Test, channel: EventChannel<T>): T[] {
  const seen: T[] = []
  const listener = (m: unknown): void => { seen.push(m as T) }
  subscribe(String(channel.name), listener)
  t.teardown(() => { unsubscribe(String(channel.name), listener) })
  return seen
}

function socket (): SocketLike & { sent: string[], closedWith?: number } {
  const s: SocketLike & { sent: string[], closedWith?: number } = {
    sent: [],
    bufferedAmount: 0,
    send (data: string) { s.sent.push(data) },
    close (code: number) { s.closedWith = code }
  }
  return s
}

const brokerTurn = () => new Promise<void>(resolve => setImmediate(resolve))

t.test('nobody listens by default: every channel reports no subscriber', async t => {
  for (const [name, channel] of Object.entries(events)) t.equal(channel.hasSubscribers, false, name)
  t.ok(Math.abs(preciseNow() - Date.now()) < 1000, 'preciseNow is epoch milliseconds')
})

t.test('manager and session events carry what a subscriber needs', async t => {
  const manager = new NotificationManager({ store: new MemoryStore(), broker: new LocalBroker(), logger: log, instance: 'test-1' })
  await manager.start()
  t.teardown(() => manager.close())
  t.equal(manager.instance, 'test-1')
  const opened = record(t, events.connectionOpened)
  const closed = record(t, events.connectionClosed)
  const published = record(t, events.published)
  const delivered = record(t, events.delivered)
  const rejected = record(t, events.frameRejected)
  const replayed = record(t, events.replayed)
  const failed = record(t, events.publishFailed)

  const s = socket()
  const session = new Session({ manager, socket: s, user: { id: 'alice', role: 'user' }, subscriptions: ['system'], log })
  await session.start()
  t.same(opened.map(e => [e.origin === manager, e.sessionId, e.user.id]), [[true, session.id, 'alice']])

  const before = preciseNow()
  const { notification } = await manager.publish({ category: 'system', title: 'hi' }, { source: 'api', requestId: 'req-7' })
  t.equal(published.length, 1)
  t.equal(published[0]!.notification.id, notification.id)
  t.equal(published[0]!.requestId, 'req-7')
  await brokerTurn()
  t.equal(delivered.length, 1)
  t.equal(delivered[0]!.recipients, 1)
  t.equal(delivered[0]!.requestId, 'req-7', 'the request id crosses the broker')
  t.ok(delivered[0]!.publishedAt! >= before && delivered[0]!.publishedAt! <= preciseNow(), 'publish time crosses the broker')

  await t.rejects(manager.publish({ category: 'nope', title: 'x' }, { source: 'api' }))
  t.same(failed.map(e => [e.code, e.source]), [['UN_UNKNOWN_CATEGORY', 'api']])
  await t.rejects(manager.publishMany([{ category: 'system', title: 'x', unknownField: 1 } as never]))
  t.same(failed.map(e => e.code), ['UN_UNKNOWN_CATEGORY', 'UN_INVALID_NOTIFICATION'])

  session.onMessage('{"type":"nope"}', false)
  session.onMessage('{"type":"ping","id":"p"}', false)
  await brokerTurn()
  t.same(rejected.map(e => [e.code, e.user.id]), [['unknown_type', 'alice']])

  const resumed = new Session({ manager, socket: socket(), user: { id: 'bob', role: 'user' }, subscriptions: ['system'], since: 0, log })
  await resumed.start()
  t.same(replayed.map(e => [e.user.id, e.count, e.complete]), [['bob', 1, true]])

  session.dispose(1000)
  session.dispose(1006)
  t.equal(closed.length, 1, 'reported once')
  t.equal(closed[0]!.code, 1000, "the peer's code")
  t.equal(closed[0]!.framesIn, 2)
  t.equal(closed[0]!.framesOut, 4, 'connected, the notification, the error, the reply')
  t.equal(s.sent.length, 4)
  t.ok(closed[0]!.durationMs >= 0)

  resumed.close(4009, 'slow consumer')
  t.equal(closed[1]!.code, 4009, "the server's code wins over the peer's")
  resumed.dispose(1006)
  t.equal(closed.length, 2)
})
