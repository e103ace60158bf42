// The RedisBroker: the shared broker contract against the Redis on this machine,
// alone (publish adds to the stream) and paired with the RedisStore (the append
// script adds to the stream); gaps filled from history; the same order everywhere.
import { randomUUID } from 'node:crypto'
import t, { type Test } from 'tap'
import type { Redis } from 'ioredis'
import type { Broker } from '../src/brokers/broker.js'
import { RedisBroker } from '../src/brokers/redis-broker.js'
import { createBroker } from '../src/brokers/index.js'
import { LocalBroker } from '../src/brokers/local-broker.js'
import { MemoryStore } from '../src/stores/memory-store.js'
import { RedisStore } from '../src/stores/redis-store.js'
import { APPEND } from '../src/stores/redis-scripts.js'
import { brokerContract } from './broker-contract.js'
import { draft } from './store-contract.js'
import { REDIS_URL, redisPrefixes } from './redis-helper.js'

const { prefix, admin } = redisPrefixes(t)

/** Cuts the reading connection of one broker (CLIENT KILL by its name); ioredis reconnects it. */
async function killReader (redis: Redis, name: string): Promise<void> {
  const list = await redis.client('LIST') as string
  const ids = list.split('\n').filter(l => l.includes(` name=${name}:reader `)).map(l => /id=(\d+)/.exec(l)![1]!)
  if (ids.length === 0) throw new Error(`no reader named ${name}`)
  for (const id of ids) await redis.client('KILL', 'ID', id)
}

const names = new WeakMap<Broker, string>()
brokerContract(t, 'RedisBroker', async () => {
  const p = prefix()
  return {
    size: 3,
    instance: () => {
      const name = `test-${randomUUID()}`
      const broker = new RedisBroker({ redis: REDIS_URL, prefix: p, name, blockMs: 1000 })
      names.set(broker, name)
      return broker
    },
    interrupt: async broker => { await killReader(admin, names.get(broker)!) }
  }
}, { networked: true })

async function pairedInstance (t: Test, p: string) {
  const store = new RedisStore({ redis: REDIS_URL, prefix: p })
  await store.init()
  const name = `test-${randomUUID()}`
  const broker = new RedisBroker({ fanout: () => store.fanout, name, blockMs: 1000 })
  const seen: number[] = []
  let wake: (() => void) | undefined
  await broker.start(m => { seen.push(m.notification.seq); wake?.() })
  t.teardown(async () => { await broker.close(); await store.close() })
  const until = async (n: number) => {
    const deadline = setTimeout(() => wake?.(), 10_000)
    while (seen.length < n) {
      const before = seen.length
      await new Promise<void>(resolve => { wake = resolve })
      if (seen.length === before) break
    }
    clearTimeout(deadline)
    return seen
  }
  return { store, broker, seen, until, name }
}

t.test('paired with the RedisStore: appends on one instance reach every instance in seq order; publish() adds nothing', async t => {
  const p = prefix()
  const a = await pairedInstance(t, p)
  const b = await pairedInstance(t, p)
  t.equal(a.broker.paired, true)
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).store.append(draft())))
  for (const r of results) await (r.notification.seq % 2 === 0 ? a : b).broker.publish({ notification: r.notification })
  const expected = Array.from({ length: 20 }, (_, i) => i + 1)
  t.same(await a.until(20), expected, 'concurrent appends from two instances arrive in seq order')
  t.same(await b.until(20), expected)
  t.equal(await admin.xlen(a.store.fanout.stream), 20, 'one stream entry per append, none from publish()')
})

t.test('paired: a gap in the stream (trimmed past an instance) is filled from history, in order', async t => {
  const p = prefix()
  const a = await pairedInstance(t, p)
  await a.store.append(draft())
  t.same(await a.until(1), [1])
  // Three appends and a trim in one atomic step: the reader sees seq 1, then only seq 4.
  const trimming = APPEND.replace(/return out\s*$/, "redis.call('XTRIM', K .. 'stream', 'MAXLEN', 1)\nreturn out")
  const items = [2, 3, 4].flatMap(() => {
    const d = draft()
    return [JSON.stringify({ id: d.id, c: d.category, t: String(Date.now()), u: [], r: [] }), JSON.stringify(d)]
  })
  await admin.eval(trimming, 1, a.store.keyPrefix + 'meta', a.store.keyPrefix, Date.now(), 1000, 0, 10_000, randomUUID(), 1000, ...items)
  await a.store.append(draft({ collapseKey: 'x' }))
  t.same(await a.until(5), [1, 2, 3, 4, 5], 'seq 2 and 3 came from history')
})

t.test('paired: an instance starts at the stream\'s end and does not replay older entries', async t => {
  const p = prefix()
  const a = await pairedInstance(t, p)
  await a.store.append(draft())
  await a.store.append(draft())
  t.same(await a.until(2), [1, 2])
  const b = await pairedInstance(t, p)
  await a.store.append(draft())
  t.same(await b.until(1), [3])
})

t.test('paired: after Redis lost the log (a new epoch), the new log\'s first seqs are delivered, not dropped as duplicates', async t => {
  const p = prefix()
  const a = await pairedInstance(t, p)
  for (let k = 0; k < 3; k++) await a.store.append(draft())
  t.same(await a.until(3), [1, 2, 3])
  await admin.unlink(a.store.keyPrefix + 'meta')
  await a.store.append(draft())
  await a.store.append(draft())
  t.same(await a.until(5), [1, 2, 3, 1, 2], 'seq 1 and 2 of the new log')
})

t.test('createBroker: the broker follows a Redis store (paired), unless told otherwise', async t => {
  const store = new RedisStore({ redis: REDIS_URL, prefix: prefix() })
  const followed = createBroker(undefined, { store })
  t.type(followed, RedisBroker)
  t.equal((followed as RedisBroker).paired, true, 'reads the stream the store writes')
  t.equal((createBroker(REDIS_URL, { store }) as RedisBroker).paired, true, 'the same URL: paired')
  t.type(createBroker('local', { store }), LocalBroker, "'local' overrides it")
  const other = createBroker('redis://127.0.0.1:6379/1', { store })
  t.equal((other as RedisBroker).paired, false, 'another Redis: publish adds to its stream')
  t.type(createBroker(undefined, { store: new MemoryStore() }), LocalBroker, 'no Redis store: local')
  t.throws(() => createBroker('kafka://x', { store }), TypeError)
})
