// The RedisStore: the shared store contract, unchanged, against the Redis on
// this machine (a fresh key prefix per test), plus what only Redis has: keys
// under one hash tag, a stream entry per append, the epoch kept in Redis.
import t, { type Test } from 'tap'
import { RedisStore } from '../src/stores/redis-store.js'
import { draft, historyStoreContract } from './store-contract.js'
import { REDIS_URL, redisPrefixes } from './redis-helper.js'

const { prefix, admin } = redisPrefixes(t)

historyStoreContract(t, 'RedisStore', async (retention) => {
  const store = new RedisStore({ redis: REDIS_URL, prefix: prefix(), ...(retention ? { retention } : {}) })
  await store.init()
  return store
})

const open = async (t: Test, p = prefix()) => {
  const store = new RedisStore({ redis: REDIS_URL, prefix: p })
  await store.init()
  t.teardown(() => store.close())
  return store
}

t.test('RedisStore: every key of a deployment is under its one hash tag', async t => {
  const p = prefix()
  const store = await open(t, p)
  await store.append(draft({ audience: { users: ['alice'] } }), 'k1')
  await store.markRead('alice', ['x'])
  const tag = `{${p.replace(/:$/, '')}}:`
  t.equal(store.keyPrefix, tag)
  const keys = await admin.keys(`*${p.replace(/:$/, '')}*`)
  t.ok(keys.length > 5, `${keys.length} keys`)
  t.ok(keys.every(k => k.startsWith(tag)), 'all keys start with the hash tag')
})

t.test('RedisStore: each append adds one stream entry carrying its seq and the stored notification', async t => {
  const store = await open(t)
  const a = await store.append(draft({ title: 'a' }))
  await store.append(draft({ title: 'dup' }), 'k')
  await store.append(draft({ title: 'dup again' }), 'k')
  const entries = await admin.xrange(store.fanout.stream, '-', '+')
  t.equal(entries.length, 2, 'a duplicate adds nothing')
  const fields = Object.fromEntries(chunk(entries[0]![1]))
  t.equal(fields.s, '1')
  t.equal(fields.e, store.epoch)
  t.same(JSON.parse(fields.n!), a.notification)
})

t.test('RedisStore: instances on one prefix share one log and one epoch; a lost counter is a new epoch', async t => {
  const p = prefix()
  const one = await open(t, p)
  const two = await open(t, p)
  t.equal(one.epoch, two.epoch)
  await one.append(draft())
  t.equal((await two.append(draft())).notification.seq, 2, 'one seq across instances')
  const before = one.epoch
  await admin.del(one.keyPrefix + 'meta')
  const after = await one.append(draft())
  t.equal(after.notification.seq, 1, 'a new counter')
  t.not(one.epoch, before, 'a new epoch')
  await two.ping()
  t.equal(two.epoch, one.epoch, 'the other instance sees it on its next health check')
})

t.test('RedisStore: retention bounds the stream too', async t => {
  const store = new RedisStore({ redis: REDIS_URL, prefix: prefix(), streamMaxLen: 10 })
  await store.init()
  t.teardown(() => store.close())
  await store.appendMany(Array.from({ length: 500 }, () => ({ draft: draft() })))
  const len = await admin.xlen(store.fanout.stream)
  t.ok(len < 200, `the stream is trimmed (MAXLEN ~): ${len} entries`)
})

t.test('RedisStore: range() reads stored notifications between two seqs (gap fills)', async t => {
  const store = await open(t)
  await store.append(draft({ title: 'a' }))
  await store.append(draft({ title: 'k1', collapseKey: 'k' }))
  await store.append(draft({ title: 'b' }))
  await store.append(draft({ title: 'k2', collapseKey: 'k' }))
  t.same((await store.fanout.range(0, 5)).map(n => [n.seq, n.title]), [[1, 'a'], [3, 'b'], [4, 'k2']])
  t.same((await store.fanout.range(1, 4)).map(n => n.seq), [3])
})

t.test('RedisStore: unreachable Redis fails init with a clear error, and a publish later with UN_UNAVAILABLE', async t => {
  await t.rejects(new RedisStore({ redis: 'redis://127.0.0.1:1', prefix: prefix(), connectTimeoutMs: 200 }).init(), /Redis is not reachable/)
  const store = await open(t)
  store.fanout.client.disconnect()
  await t.rejects(store.append(draft()), { code: 'UN_UNAVAILABLE', statusCode: 503 })
})

function chunk (flat: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!])
  return out
}
