// The Broker contract, written once and run against every broker
// (test/local-broker.test.ts, test/redis-broker.test.ts). Not a .test.ts file.
import { EventEmitter, once } from 'node:events'
import type { Test } from 'tap'
import type { Broker, BrokerMessage, ControlMessage } from '../src/brokers/broker.js'
import type { StoredNotification } from '../src/schemas.js'

export interface BrokerCluster {
  /** How many instances can share this fan-out (1 for an in-process broker). */
  size: number
  /** A new, not yet started instance on the shared fan-out; the suite starts and closes it. */
  instance (): Broker
  /** Cuts an instance's connection to the fan-out (it reconnects by itself); absent for in-process brokers. */
  interrupt?: (broker: Broker) => Promise<void>
}

export type BrokerFactory = (t: Test) => Promise<BrokerCluster>

export const message = (seq: number): BrokerMessage => ({
  notification: {
    id: `n${seq}`, seq, category: 'system', type: 'info', priority: 'normal', title: `t${seq}`, message: '',
    createdAt: new Date().toISOString(), source: 'app'
  } satisfies StoredNotification
})

/** What one started instance received, in order; `until(n)` waits (on events, not sleeps) for n items. */
class Receiver {
  readonly items: Array<number | string> = []
  readonly #events = new EventEmitter()
  take (item: number | string): void {
    this.items.push(item)
    this.#events.emit('item')
  }

  async until (n: number, ms = 10_000): Promise<Array<number | string>> {
    const timer = setTimeout(() => this.#events.emit('timeout'), ms)
    try {
      while (this.items.length < n) {
        const [what] = await Promise.race([once(this.#events, 'item').then(() => ['item']), once(this.#events, 'timeout').then(() => ['timeout'])])
        if (what === 'timeout') throw new Error(`timed out with ${this.items.length} of ${n}: ${JSON.stringify(this.items)}`)
      }
    } finally {
      clearTimeout(timer)
    }
    return this.items
  }
}

/** `networked`: instances have a connection to the fan-out that can be cut (the reconnect case applies). */
export function brokerContract (t: Test, name: string, factory: BrokerFactory, opts: { networked: boolean }): void {
  const startAll = async (t: Test, cluster: BrokerCluster, n: number) => {
    const out: Array<{ broker: Broker, got: Receiver }> = []
    for (let i = 0; i < n; i++) {
      const broker = cluster.instance()
      const got = new Receiver()
      await broker.start(m => got.take(m.notification.seq), (c: ControlMessage) => got.take(`${c.type}:${String(c.n)}`))
      t.teardown(() => broker.close())
      out.push({ broker, got })
    }
    return out
  }

  t.test(`${name}: every instance, the publisher included, receives each message exactly once and in seq order`, async t => {
    const cluster = await factory(t)
    const all = await startAll(t, cluster, Math.min(3, cluster.size))
    // Each instance publishes in turn: the order is the publishing order, across instances.
    for (let seq = 1; seq <= 30; seq++) await all[seq % all.length]!.broker.publish(message(seq))
    const expected = Array.from({ length: 30 }, (_, i) => i + 1)
    for (const { got } of all) t.same(await got.until(30), expected)
    await Promise.all(all.map(({ broker }) => broker.ping()))
    for (const { got } of all) t.equal(got.items.length, 30, 'nothing more arrived')
  })

  t.test(`${name}: control messages reach every instance, in order with notifications`, async t => {
    const cluster = await factory(t)
    const all = await startAll(t, cluster, Math.min(2, cluster.size))
    await all[0]!.broker.publish(message(1))
    await all[all.length - 1]!.broker.publishControl({ type: 'disconnect', n: 1 })
    await all[0]!.broker.publish(message(2))
    for (const { got } of all) t.same(await got.until(3), [1, 'disconnect:1', 2])
  })

  t.test(`${name}: a handler that throws does not cost the messages behind it`, async t => {
    const cluster = await factory(t)
    const broker = cluster.instance()
    const got = new Receiver()
    await broker.start(m => {
      if (m.notification.seq === 1) throw new Error('boom')
      got.take(m.notification.seq)
    })
    t.teardown(() => broker.close())
    await broker.publish(message(1))
    await broker.publish(message(2))
    t.same(await got.until(1), [2])
  })

  t.test(`${name}: close drains: what was published before close() is delivered before it resolves`, async t => {
    const cluster = await factory(t)
    const broker = cluster.instance()
    const seen: number[] = []
    await broker.start(m => { seen.push(m.notification.seq) })
    for (let seq = 1; seq <= 20; seq++) await broker.publish(message(seq))
    await broker.close()
    t.same(seen, Array.from({ length: 20 }, (_, i) => i + 1))
    await broker.publish(message(21)).catch(() => {})
    t.equal(seen.length, 20, 'nothing is handed over after close')
  })

  if (!opts.networked) return
  t.test(`${name}: messages published while an instance's connection is down arrive after it reconnects, once, in order`, async t => {
    const cluster = await factory(t)
    if (!cluster.interrupt) throw new Error('a networked broker cluster must be able to cut a connection')
    const [a, b] = await startAll(t, cluster, 2)
    await a!.broker.publish(message(1))
    await b!.got.until(1)
    await cluster.interrupt(b!.broker)
    for (let seq = 2; seq <= 40; seq++) await a!.broker.publish(message(seq))
    t.same(await b!.got.until(40), Array.from({ length: 40 }, (_, i) => i + 1))
    t.same(await a!.got.until(40), Array.from({ length: 40 }, (_, i) => i + 1))
  })
}
