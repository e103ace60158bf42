// Two apps in one process on the same Redis (fast, in-process coverage of the
// wiring): the broker follows the store, presence and stats are cluster-wide.
// The child-process suite is test/multi-instance.test.ts.
import t from 'tap'
import { API_KEY, build, connect, countWrites, publish } from './helper.js'
import { REDIS_URL, redisPrefixes } from './redis-helper.js'
import { RedisStore } from '../src/stores/redis-store.js'

const { prefix, admin } = redisPrefixes(t)

t.test('two apps on one Redis: a publish on one reaches a socket on the other; presence and stats span both', async t => {
  const redisPrefix = prefix()
  const one = await build(t, { store: REDIS_URL, redisPrefix, presenceTtlMs: 2000 })
  const two = await build(t, { store: REDIS_URL, redisPrefix, presenceTtlMs: 2000 })
  t.type(one.store, RedisStore)
  t.not(one.app.notifications.instance, two.app.notifications.instance)
  const alice = await connect(two.ws, { token: await two.token('alice') })
  await alice.nextOf('connected')
  const sent = await publish(one, { category: 'dashboard', title: 'across' })
  const got = await alice.nextOf('notification', 10_000)
  t.equal(got.notification.seq, sent.seq)
  const presence = await one.app.inject({ method: 'GET', url: '/api/presence?users=alice,__proto__', headers: { authorization: `Bearer ${API_KEY}` } })
  t.equal(presence.statusCode, 200)
  t.same(presence.json().users.alice.connections, 1, 'alice on the other app')
  t.same(presence.json().users.__proto__, { online: false }, 'an id named __proto__ is an ordinary key')
  const stats = await one.app.inject({ method: 'GET', url: '/api/notifications/stats', headers: { authorization: `Bearer ${API_KEY}` } })
  t.same(stats.json().cluster, { instances: 2, connections: 1, users: 1 })
  t.equal(stats.json().connections, 0, 'this instance alone has none')
  t.same(await one.app.notifications.presence(['alice']), await two.app.notifications.presence(['alice']), 'manager.presence() answers the same on both')
  alice.close()
})

t.test('one app alone keeps presence in its registry', async t => {
  const h = await build(t)
  const bob = await connect(h.ws, { token: await h.token('bob') })
  await bob.nextOf('connected')
  const p = await h.app.notifications.presence(['bob', 'nobody'])
  t.equal(p.bob!.online, true)
  t.same(p.nobody, { online: false })
  t.same(await h.app.notifications.cluster(), { instances: 1, connections: 1, users: 1 })
  bob.close()
})

t.test('Redis lost its data (a new epoch): every live connection on every instance is closed with 1001; resuming says complete:false; the new log is delivered', async t => {
  const redisPrefix = prefix()
  const one = await build(t, { store: REDIS_URL, redisPrefix })
  const two = await build(t, { store: REDIS_URL, redisPrefix })
  const here = await connect(one.ws, { token: await one.token('ann') })
  const there = await connect(two.ws, { token: await two.token('ann') })
  const first = await there.nextOf('connected')
  await here.nextOf('connected')
  for (let k = 0; k < 3; k++) await publish(one, { category: 'dashboard', title: `old ${k}` })
  const lastOld = (await there.nextOf('notification', 10_000)).notification.seq
  for (let k = 0; k < 2; k++) await there.nextOf('notification', 10_000)

  // What a Redis restart without persistence does to this deployment's keys: the counter and the log are gone.
  const keys = await admin.keys(`${(one.store as RedisStore).keyPrefix}*`)
  t.ok(keys.length > 0, 'the deployment had keys')
  await admin.unlink(...keys)
  const fresh = await publish(two, { category: 'dashboard', title: 'new log' })
  t.equal(fresh.seq, 1, 'the new log starts at seq 1')

  const [closedThere, closedHere] = await Promise.all([there.closed, here.closed])
  t.equal(closedThere.code, 1001, 'closed on the instance that appended')
  t.equal(closedHere.code, 1001, 'and on the other one')

  // The client reconnects as after a restart, resuming from the old log.
  const again = await connect(one.ws, { token: await one.token('ann'), query: { since: String(lastOld + 2), epoch: first.epoch } })
  const connected = await again.nextOf('connected')
  t.not(connected.epoch, first.epoch, 'the connected frame names the new log')
  t.equal(connected.lastSeq, 1, 'and its last seq')
  t.same(await again.nextOf('replayed'), { type: 'replayed', count: 0, complete: false }, 'the old cursor is refused: reload')
  const later = await publish(two, { category: 'dashboard', title: 'after' })
  t.equal((await again.nextOf('notification', 10_000)).notification.seq, later.seq, 'live delivery from the new log, seq 2 not dropped')
  again.close()
})

t.test('a batch read from the stream is handed on in one turn: twenty notifications leave a socket on the other instance in two writes', async t => {
  const redisPrefix = prefix()
  const one = await build(t, { store: REDIS_URL, redisPrefix })
  const two = await build(t, { store: REDIS_URL, redisPrefix })
  const c = await connect(two.ws, { token: await two.token('wes') })
  await c.nextOf('connected')
  const [counter] = [...two.upgraded].map(countWrites)
  // One script appends all twenty to the stream, so the other instance reads them in one batch.
  const outcomes = await one.app.notifications.publishMany(Array.from({ length: 20 }, (_, i) => ({ category: 'system', title: `n${i}` })))
  const got = []
  for (let i = 0; i < 20; i++) got.push((await c.nextOf('notification', 10_000)).notification.seq)
  t.same(got, outcomes.map(o => o.notification.seq), 'all twenty, in seq order')
  t.equal(counter!.writes, 2, 'the first at once, the other nineteen together (not one write per stream entry)')
  c.close()
})
