// Preferences and revocations set on one instance take effect on another: two
// apps sharing one store and one broker that fans out to both (test/cluster-broker.ts).
import t, { type Test } from 'tap'
import { MemoryStore } from '../src/stores/memory-store.js'
import { TestCluster } from './cluster-broker.js'
import { API_KEY, build, connect, publish, refusedUpgrade, within, type Harness } from './helper.js'

const auth = (token: string) => ({ authorization: `Bearer ${token}` })

async function twoInstances (t: Test): Promise<[Harness, Harness]> {
  const store = new MemoryStore()
  const cluster = new TestCluster()
  const a = await build(t, { store, broker: cluster.member() })
  const b = await build(t, { store, broker: cluster.member() })
  return [a, b]
}

t.test('a preference set on instance A applies at once to the user\'s connection on instance B', async t => {
  const [a, b] = await twoInstances(t)
  const alice = await a.token('alice')
  const laptop = await connect(b.ws, { token: alice })
  await laptop.nextOf('connected')
  const frame = laptop.nextOf('preferences')
  const res = await a.app.inject({ method: 'PUT', url: '/api/preferences', headers: auth(alice), payload: { muted: ['maintenance'] } })
  t.equal(res.statusCode, 200)
  t.strictSame(await frame, { type: 'preferences', muted: ['maintenance'], subscriptions: ['system', 'dashboard', 'user'] })

  // Published on A, delivered on B through the shared broker: maintenance no longer reaches the laptop.
  await publish(a, { category: 'maintenance', title: 'tonight' })
  const marker = await publish(a, { category: 'system', title: 'marker' })
  const next = await laptop.nextOf('notification')
  t.equal(next.notification.id, marker.id, 'the muted one never arrived')

  const phone = await connect(a.ws, { token: alice })
  const onLaptop = laptop.nextOf('preferences')
  const reply = await phone.request({ type: 'set_preferences', muted: [] })
  t.strictSame(reply.result.muted, [])
  t.strictSame((await onLaptop).subscriptions, ['system', 'dashboard', 'user', 'maintenance'], 'unmuted by frame on A, restored on B')
  phone.close(); laptop.close()
})

t.test('a disconnect on instance A closes the user\'s sockets on B with 4003; its revocation is refused on B', async t => {
  const [a, b] = await twoInstances(t)
  const oldToken = await a.token('alice')
  const onA = await connect(a.ws, { token: oldToken })
  const onB = await connect(b.ws, { token: oldToken })
  const bob = await connect(b.ws, { token: await b.token('bob') })
  for (const c of [onA, onB, bob]) await c.nextOf('connected')
  const res = await a.app.inject({ method: 'POST', url: '/api/users/alice/disconnect', headers: auth(API_KEY), payload: { revokeTokens: true } })
  t.strictSame(res.json(), { closed: 1 }, "closed counts this instance's connections")
  t.equal((await within(onA.closed, 2000, 'close on A')).code, 4003)
  t.equal((await within(onB.closed, 2000, 'close on B')).code, 4003, 'closed on the other instance too')
  t.equal((await bob.request({ type: 'ping' })).type, 'reply')
  t.equal((await refusedUpgrade(b.ws, { token: oldToken })).statusCode, 401, 'the old token is refused on B as well')
  t.equal((await b.app.inject({ method: 'GET', url: '/api/notifications', headers: auth(oldToken) })).statusCode, 401)
  bob.close()
})
