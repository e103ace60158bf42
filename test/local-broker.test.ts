import t from 'tap'
import { pino } from 'pino'
import type { BrokerMessage } from '../src/brokers/broker.js'
import { LocalBroker } from '../src/brokers/local-broker.js'
import { NotificationManager } from '../src/manager.js'
import type { StoredNotification } from '../src/schemas.js'
import { MemoryStore } from '../src/stores/memory-store.js'
import { brokerContract } from './broker-contract.js'

brokerContract(t, 'LocalBroker', async () => ({ size: 1, instance: () => new LocalBroker() }), { networked: false })

const message = (seq: number): BrokerMessage => ({
  notification: {
    id: `n${seq}`, seq, category: 'system', type: 'info', priority: 'normal', title: `t${seq}`, message: '',
    createdAt: new Date().toISOString(), source: 'app'
  } satisfies StoredNotification
})

t.test('publish returns before the handler runs; the queue is delivered on the next turn, in order', async t => {
  const broker = new LocalBroker()
  const seen: number[] = []
  await broker.start(m => { seen.push(m.notification.seq) })
  await broker.publish(message(1))
  await broker.publish(message(2))
  t.same(seen, [], 'nothing delivered while the publisher still runs')
  await new Promise(resolve => setImmediate(resolve))
  t.same(seen, [1, 2])
  await broker.publish(message(3))
  await new Promise(resolve => setImmediate(resolve))
  t.same(seen, [1, 2, 3], 'a later turn delivers the later messages')
  await broker.close()
})

t.test('a handler that throws does not cost the messages queued behind it', async t => {
  const broker = new LocalBroker()
  const seen: number[] = []
  await broker.start(m => {
    if (m.notification.seq === 1) throw new Error('boom')
    seen.push(m.notification.seq)
  })
  await broker.publish(message(1))
  await broker.publish(message(2))
  await new Promise(resolve => setImmediate(resolve))
  t.same(seen, [2])
  await broker.close()
})

t.test('close delivers what was accepted, then nothing more', async t => {
  const broker = new LocalBroker()
  const seen: number[] = []
  await broker.start(m => { seen.push(m.notification.seq) })
  await broker.publish(message(1))
  await broker.close()
  t.same(seen, [1], 'the queued message was handed over at close')
  await broker.publish(message(2))
  await new Promise(resolve => setImmediate(resolve))
  t.same(seen, [1], 'nothing after close')
})

t.test('the manager logs a delivery that throws, and keeps delivering', async t => {
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'error' }, { write: (s: string) => { lines.push(JSON.parse(s)) } })
  const manager = new NotificationManager({ store: new MemoryStore(), broker: new LocalBroker(), logger })
  await manager.start()
  t.teardown(() => manager.close())
  const got: string[] = []
  manager.registry.add({
    id: 'c1',
    user: { id: 'alice', role: 'user' },
    subscriptions: new Set(['system']),
    legacy: false,
    deliver (_seq, frame) {
      const title = JSON.parse(frame.text).notification.title as string
      if (title === 'bad') throw new Error('socket exploded')
      got.push(title)
    },
    deliverLegacy () {},
    applyMuted () {},
    close () {},
    deliverFrame () {}
  })
  await manager.publish({ category: 'system', title: 'bad' })
  await manager.publish({ category: 'system', title: 'good' })
  await new Promise(resolve => setImmediate(resolve))
  t.same(got, ['good'])
  t.match(lines, [{ msg: 'delivery failed', seq: 1, err: { message: 'socket exploded' } }])
})

t.test('control messages reach the control handler in order with notifications, on the next turn', async t => {
  const broker = new LocalBroker()
  const seen: string[] = []
  await broker.start(m => { seen.push(`n${m.notification.seq}`) }, c => { seen.push(`c:${c.type}`) })
  await broker.publish(message(1))
  await broker.publishControl({ type: 'preferences', userId: 'alice' })
  await broker.publish(message(2))
  t.same(seen, [], 'nothing handed over while the publisher still runs')
  await new Promise(resolve => setImmediate(resolve))
  t.same(seen, ['n1', 'c:preferences', 'n2'])
  await broker.close()
})
