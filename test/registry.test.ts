import t from 'tap'
import type { SharedFrame } from '../src/protocol.js'
import { ConnectionRegistry, type Connection } from '../src/registry.js'

let counter = 0

interface FakeConnection extends Connection {
  subscriptions: Set<string>
  frames: string[]
}

function fake (userId: string, role: string, subscriptions: string[] = ['system', 'dashboard'], id = `c${++counter}`): FakeConnection {
  const frames: string[] = []
  return {
    id,
    user: { id: userId, role },
    subscriptions: new Set(subscriptions),
    legacy: false,
    frames,
    deliver (_seq: number, frame: SharedFrame) { frames.push(frame.text) },
    deliverLegacy (frame: SharedFrame) { frames.push(frame.text) },
    applyMuted () {},
    close () {},
    deliverFrame (frame: SharedFrame) { frames.push(frame.text) }
  }
}

const ids = (conns: Connection[]) => conns.map(c => c.id).sort()

t.test('recipients: a broadcast reaches every subscriber of the category, and only them', async t => {
  const r = new ConnectionRegistry()
  const a = fake('alice', 'user', ['dashboard'])
  const b = fake('bob', 'user', ['dashboard', 'system'])
  const c = fake('carol', 'viewer', ['system'])
  for (const x of [a, b, c]) r.add(x)
  t.same(ids(r.recipients({ category: 'dashboard' })), ids([a, b]))
  t.same(ids(r.recipients({ category: 'system' })), ids([b, c]))
  t.same(r.recipients({ category: 'security' }), [], 'nobody subscribed')
  t.same(ids(r.recipients({ category: 'dashboard', audience: {} })), ids([a, b]), 'an empty audience is a broadcast')
  t.same(ids(r.recipients({ category: 'dashboard', audience: { users: [], roles: [] } })), ids([a, b]), 'empty lists are a broadcast')
})

t.test('recipients: a user audience reaches that user, every connection of it, and no one else', async t => {
  const r = new ConnectionRegistry()
  const a1 = fake('alice', 'user')
  const a2 = fake('alice', 'user')
  const b = fake('bob', 'user')
  for (const x of [a1, a2, b]) r.add(x)
  t.same(ids(r.recipients({ category: 'dashboard', audience: { users: ['alice'] } })), ids([a1, a2]))
  t.same(ids(r.recipients({ category: 'dashboard', audience: { users: ['alice', 'bob'] } })), ids([a1, a2, b]))
  t.same(r.recipients({ category: 'dashboard', audience: { users: ['nobody'] } }), [])
})

t.test('recipients: a user audience still needs the category subscription', async t => {
  const r = new ConnectionRegistry()
  const a = fake('alice', 'viewer', ['system'])
  r.add(a)
  t.same(r.recipients({ category: 'dashboard', audience: { users: ['alice'] } }), [])
})

t.test('recipients: a role audience reaches the connections of that role', async t => {
  const r = new ConnectionRegistry()
  const admin = fake('root', 'admin', ['health', 'system'])
  const mod = fake('mo', 'moderator', ['system'])
  const user = fake('u', 'user', ['system'])
  for (const x of [admin, mod, user]) r.add(x)
  t.same(ids(r.recipients({ category: 'system', audience: { roles: ['admin'] } })), ids([admin]))
  t.same(ids(r.recipients({ category: 'system', audience: { roles: ['admin', 'moderator'] } })), ids([admin, mod]))
  t.same(r.recipients({ category: 'health', audience: { roles: ['user'] } }), [], 'role matches but not subscribed')
})

t.test('recipients: users + roles without duplicates', async t => {
  const r = new ConnectionRegistry()
  const alice = fake('alice', 'admin')
  const bob = fake('bob', 'admin')
  const carol = fake('carol', 'user')
  const dave = fake('dave', 'user')
  for (const x of [alice, bob, carol, dave]) r.add(x)
  const out = r.recipients({ category: 'dashboard', audience: { users: ['alice', 'carol'], roles: ['admin'] } })
  t.equal(out.length, 3, 'alice is named and has the role, yet appears once')
  t.equal(new Set(out).size, out.length, 'no connection twice')
  t.same(ids(out), ids([alice, bob, carol]))
})

t.test('recipients: unsubscribed connections are excluded', async t => {
  const r = new ConnectionRegistry()
  const a = fake('alice', 'user', ['dashboard', 'system'])
  const b = fake('bob', 'user', ['dashboard'])
  r.add(a)
  r.add(b)
  r.unsubscribe(a, ['dashboard'])
  t.same(ids(r.recipients({ category: 'dashboard' })), ids([b]))
  t.same(r.recipients({ category: 'dashboard', audience: { users: ['alice'] } }), [])
  t.same(r.recipients({ category: 'dashboard', audience: { roles: ['user'] } }).map(c => c.id), [b.id])
  t.same(ids(r.recipients({ category: 'system' })), ids([a]), 'the other subscription stays')
})

t.test('subscribe and unsubscribe update the category index', async t => {
  const r = new ConnectionRegistry()
  const a = fake('alice', 'user', [])
  r.add(a)
  t.same(r.sizes().subscriptions, {})
  r.subscribe(a, ['maintenance', 'system'])
  t.same(r.sizes().subscriptions, { maintenance: 1, system: 1 })
  t.same(ids(r.recipients({ category: 'maintenance' })), [a.id])
  r.subscribe(a, ['maintenance'])
  t.same(r.sizes().subscriptions, { maintenance: 1, system: 1 }, 'subscribing twice counts once')
  r.unsubscribe(a, ['maintenance'])
  t.same(r.sizes().subscriptions, { system: 1 }, 'an emptied category is deleted')
  t.same(r.recipients({ category: 'maintenance' }), [])
  r.unsubscribe(a, ['maintenance', 'never'])
  t.same(r.sizes().subscriptions, { system: 1 }, 'unsubscribing what is not subscribed changes nothing')
})

t.test('subscribe on a connection that is not registered does nothing', async t => {
  const r = new ConnectionRegistry()
  const a = fake('alice', 'user')
  r.subscribe(a, ['system'])
  r.unsubscribe(a, ['system'])
  t.same(r.sizes(), { connections: 0, users: 0, roles: 0, categories: 0, indexed: 0, subscriptions: {} })
  t.same(r.recipients({ category: 'system' }), [])
})

t.test('remove() deletes the connection from every index and deletes empty sets', async t => {
  const r = new ConnectionRegistry()
  const a = fake('alice', 'user', ['dashboard'])
  const b = fake('bob', 'viewer', ['system'])
  r.add(a)
  r.add(b)
  t.same(r.sizes(), { connections: 2, users: 2, roles: 2, categories: 2, indexed: 2, subscriptions: { dashboard: 1, system: 1 } })
  t.equal(r.has(a), true)
  t.equal(r.get(a.id), a)
  r.remove(a)
  t.equal(r.has(a), false)
  t.equal(r.get(a.id), undefined)
  t.equal(r.ofUser('alice').size, 0)
  t.same(r.sizes(), { connections: 1, users: 1, roles: 1, categories: 1, indexed: 1, subscriptions: { system: 1 } })
  t.same(r.recipients({ category: 'dashboard', audience: { users: ['alice'] } }), [])
  r.remove(a)
  t.same(r.sizes().connections, 1, 'removing twice is harmless')
})

t.test('add() twice with the same id keeps the first connection', async t => {
  const r = new ConnectionRegistry()
  const a = fake('alice', 'user', ['system'], 'same')
  const other = fake('mallory', 'admin', ['system'], 'same')
  r.add(a)
  r.add(a)
  r.add(other)
  t.equal(r.sizes().connections, 1)
  t.equal(r.get('same'), a)
  r.remove(other)
  t.equal(r.has(a), true, 'removing a different object with the same id does not remove the registered one')
  t.same(r.sizes().subscriptions, { system: 1 })
})

t.test('all() and ofUser() list live connections', async t => {
  const r = new ConnectionRegistry()
  const a1 = fake('alice', 'user')
  const a2 = fake('alice', 'user')
  const b = fake('bob', 'user')
  for (const x of [a1, a2, b]) r.add(x)
  t.same([...r.all()].map(c => c.id).sort(), ids([a1, a2, b]))
  t.same([...r.ofUser('alice')].map(c => c.id).sort(), ids([a1, a2]))
  t.equal(r.ofUser('nobody').size, 0)
})

t.test('sizes() returns to zero after add/subscribe/unsubscribe/remove churn of 200 connections', async t => {
  const r = new ConnectionRegistry()
  const roles = ['admin', 'moderator', 'user', 'viewer']
  const categories = ['system', 'dashboard', 'admin', 'health', 'maintenance', 'security', 'user']
  const conns: FakeConnection[] = []
  for (let i = 0; i < 200; i++) {
    const c = fake(`u${i % 37}`, roles[i % roles.length]!, categories.filter((_, j) => (i + j) % 3 === 0))
    conns.push(c)
    r.add(c)
  }
  t.equal(r.sizes().connections, 200)
  t.equal(r.sizes().users, 37)
  t.equal(r.sizes().roles, 4)
  for (const [i, c] of conns.entries()) {
    r.subscribe(c, [categories[i % categories.length]!])
    if (i % 2 === 0) r.unsubscribe(c, [categories[(i + 1) % categories.length]!])
  }
  // Remove half, re-add some, then remove everything.
  for (const c of conns.filter((_, i) => i % 2 === 0)) r.remove(c)
  t.equal(r.sizes().connections, 100)
  for (const c of conns.filter((_, i) => i % 4 === 0)) r.add(c)
  t.equal(r.sizes().connections, 150)
  for (const c of conns) r.remove(c)
  t.same(r.sizes(), { connections: 0, users: 0, roles: 0, categories: 0, indexed: 0, subscriptions: {} })
  t.same([...r.all()], [])
  for (const c of categories) t.same(r.recipients({ category: c }), [])
})

t.test('transports: open connections per door, kept at 0 once a door has had one', async t => {
  const r = new ConnectionRegistry()
  t.same(r.transports(), {})
  const ws = fake('alice', 'user')
  const sio = { ...fake('alice', 'user'), transport: 'socketio' }
  r.add(ws)
  r.add(sio)
  r.add(sio)
  t.same(r.transports(), { ws: 1, socketio: 1 }, 'a connection without a transport counts as ws; adding twice counts once')
  r.remove(sio)
  r.remove(sio)
  t.same(r.transports(), { ws: 1, socketio: 0 }, 'the Socket.IO count falls to zero and stays listed')
})

t.test('a user with one connection, then two, then one again: ofUser, presence, recipients and removal follow', async t => {
  const r = new ConnectionRegistry()
  const first = { ...fake('alice', 'user', ['system']), openedAt: 1000 }
  const second = { ...fake('alice', 'user', ['system']), openedAt: 2000 }
  const third = { ...fake('alice', 'user', ['system']), openedAt: 3000 }
  const toAlice = { category: 'system', audience: { users: ['alice'] } }

  r.add(first)
  t.same([...r.ofUser('alice')], [first], 'one connection')
  t.same(r.presenceOf('alice'), { connections: 1, since: 1000 })
  t.same(ids(r.recipients(toAlice)), [first.id])

  r.add(second)
  t.same([...r.ofUser('alice')].map(c => c.id).sort(), ids([first, second]), 'two connections')
  t.same(r.presenceOf('alice'), { connections: 2, since: 1000 })
  t.same(ids(r.recipients(toAlice)), ids([first, second]))

  r.remove(first)
  t.same([...r.ofUser('alice')], [second], 'back to one: the one left')
  t.same(r.presenceOf('alice'), { connections: 1, since: 2000 })
  t.same(ids(r.recipients(toAlice)), [second.id])
  t.same(ids(r.recipients({ category: 'system', audience: { users: ['alice'], roles: ['user'] } })), [second.id], 'named and by role: once')

  r.add(third)
  t.same(r.presenceOf('alice'), { connections: 2, since: 2000 }, 'and two again')
  r.remove(third)
  r.remove(third)
  t.same([...r.ofUser('alice')], [second], 'removing twice leaves the other connection')
  t.same(r.sizes(), { connections: 1, users: 1, roles: 1, categories: 1, indexed: 1, subscriptions: { system: 1 } })

  r.remove(second)
  t.equal(r.ofUser('alice').size, 0)
  t.equal(r.presenceOf('alice'), undefined)
  t.same(r.recipients(toAlice), [])
  t.same([...r.presence()], [])
  t.same(r.sizes(), { connections: 0, users: 0, roles: 0, categories: 0, indexed: 0, subscriptions: {} })
})

t.test('removing a user entry that is not this connection leaves it alone', async t => {
  const r = new ConnectionRegistry()
  const a = fake('alice', 'user', ['system'], 'same')
  const impostor = fake('alice', 'user', ['system'], 'same')
  r.add(a)
  r.remove(impostor)
  t.same([...r.ofUser('alice')], [a])
  t.same(r.sizes().indexed, 1)
})

t.test('remove() clears the category index even when the connection changed its own subscriptions first', async t => {
  const r = new ConnectionRegistry()
  const a = fake('alice', 'user', ['system', 'dashboard'])
  const b = fake('bob', 'user', ['system'])
  r.add(a)
  r.add(b)
  // A session edits its own set, then tells the registry; a close can come in between.
  a.subscriptions.clear()
  a.subscriptions.add('maintenance')
  r.remove(a)
  t.same(r.sizes().subscriptions, { system: 1 })
  t.same(ids(r.recipients({ category: 'system' })), [b.id])
  t.same(r.recipients({ category: 'dashboard' }), [])
})
