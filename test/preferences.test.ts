// Per-user category preferences: REST and frame, applied at once to every open
// connection of the user, at later connects, left out of unread counts; locked,
// unknown and invisible categories refused with nothing changed.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import Fastify from 'fastify'
import { configFromEnv } from '../server/config.js'
import { unifiedNotifications } from '../plugins/notifications.js'
import { MemoryStore } from '../src/stores/memory-store.js'
import { API_KEY, HandshakeRaceStore, SECRET, build, connect, publish, type Client, type Harness } from './helper.js'

const auth = (token: string) => ({ authorization: `Bearer ${token}` })

async function getPrefs (h: Harness, token: string) {
  return h.app.inject({ method: 'GET', url: '/api/preferences', headers: auth(token) })
}

async function putPrefs (h: Harness, token: string, payload: unknown) {
  return h.app.inject({ method: 'PUT', url: '/api/preferences', headers: auth(token), payload: payload as Record<string, unknown> })
}

/** Titles each client gets before one marker published to everyone after the action. */
async function titlesBeforeMarker (h: Harness, clients: Client[]): Promise<string[][]> {
  const marker = await publish(h, { category: 'system', title: 'marker' })
  return Promise.all(clients.map(async c => {
    const titles: string[] = []
    for (let i = 0; i < 50; i++) {
      const f = await c.nextOf('notification')
      if (f.notification.id === marker.id) return titles
      titles.push(f.notification.title)
    }
    throw new Error('marker never arrived')
  }))
}

t.test('GET /api/preferences: nothing muted by default, security locked', async t => {
  const h = await build(t)
  const res = await getPrefs(h, await h.token('alice'))
  t.equal(res.statusCode, 200)
  t.strictSame(res.json(), { muted: [], locked: ['security'] })
})

t.test('PUT /api/preferences mutes at once on every connection of that user, and only theirs', async t => {
  const h = await build(t)
  const alice = await h.token('alice')
  const phone = await connect(h.ws, { token: alice })
  const laptop = await connect(h.ws, { token: alice, query: { categories: 'dashboard,maintenance,system' } })
  const bob = await connect(h.ws, { token: await h.token('bob') })
  for (const c of [phone, laptop, bob]) await c.nextOf('connected')

  const phoneFrame = phone.nextOf('preferences')
  const laptopFrame = laptop.nextOf('preferences')
  const res = await putPrefs(h, alice, { muted: ['maintenance'] })
  t.equal(res.statusCode, 200)
  t.strictSame(res.json(), { muted: ['maintenance'], locked: ['security'] })
  t.strictSame(await phoneFrame, { type: 'preferences', muted: ['maintenance'], subscriptions: ['system', 'dashboard', 'user'] })
  t.strictSame(await laptopFrame, { type: 'preferences', muted: ['maintenance'], subscriptions: ['dashboard', 'system'] })

  await publish(h, { category: 'maintenance', title: 'window tonight' })
  await publish(h, { category: 'dashboard', title: 'report ready' })
  const [onPhone, onLaptop, onBob] = await titlesBeforeMarker(h, [phone, laptop, bob])
  t.strictSame(onPhone, ['report ready'], 'the phone no longer gets maintenance')
  t.strictSame(onLaptop, ['report ready'], 'nor the laptop')
  t.strictSame(onBob, ['window tonight', 'report ready'], 'another user is untouched')
  t.notOk(bob.pending().some(f => f.type === 'preferences'), 'bob got no preferences frame')
  t.strictSame((await getPrefs(h, alice)).json(), { muted: ['maintenance'], locked: ['security'] }, 'stored')

  // Unmuting gives back what each connection had asked for, no more.
  const phoneBack = phone.nextOf('preferences')
  const laptopBack = laptop.nextOf('preferences')
  t.equal((await putPrefs(h, alice, { muted: [] })).statusCode, 200)
  t.strictSame((await phoneBack).subscriptions, ['system', 'dashboard', 'user', 'maintenance'])
  t.strictSame((await laptopBack).subscriptions, ['dashboard', 'system', 'maintenance'], 'not user: the laptop never asked for it')
  await publish(h, { category: 'maintenance', title: 'again' })
  t.strictSame(await titlesBeforeMarker(h, [laptop]), [['again']])
  for (const c of [phone, laptop, bob]) c.close()
})

t.test('set_preferences frame: the reply has this connection\'s subscriptions; the other devices get the frame', async t => {
  const h = await build(t)
  const alice = await h.token('alice')
  const a = await connect(h.ws, { token: alice })
  const b = await connect(h.ws, { token: alice })
  await a.nextOf('connected')
  await b.nextOf('connected')
  const onB = b.nextOf('preferences')
  const reply = await a.request({ type: 'set_preferences', id: 'p1', muted: ['maintenance', 'dashboard', 'maintenance'] })
  t.equal(reply.type, 'reply')
  t.equal(reply.id, 'p1')
  t.strictSame(reply.result, { muted: ['maintenance', 'dashboard'], subscriptions: ['system', 'user'] })
  t.strictSame(await onB, { type: 'preferences', muted: ['maintenance', 'dashboard'], subscriptions: ['system', 'user'] })
  const onA = await a.nextOf('preferences')
  t.strictSame(onA.subscriptions, ['system', 'user'], 'the asking connection gets the frame too, after its reply')
  t.strictSame((await getPrefs(h, alice)).json().muted, ['maintenance', 'dashboard'])
  a.close(); b.close()
})

t.test('later connects: muted left out, also when categories= names it; not counted unread; history still lists it', async t => {
  const h = await build(t)
  const alice = await h.token('alice')
  await putPrefs(h, alice, { muted: ['maintenance'] })
  await publish(h, { category: 'maintenance', title: 'm1' })
  await publish(h, { category: 'maintenance', title: 'm2' })
  await publish(h, { category: 'dashboard', title: 'd1' })

  const c = await connect(h.ws, { token: alice, query: { categories: 'maintenance,dashboard' } })
  const connected = await c.nextOf('connected')
  t.strictSame(connected.subscriptions, ['dashboard'], 'categories= naming a muted category leaves it out')
  t.equal(connected.unread, 1, 'muted maintenance is not counted')

  const history = await c.request({ type: 'request_notification_history' })
  t.strictSame(history.result.notifications.map((n: { title: string }) => n.title), ['d1', 'm2', 'm1'], 'history still lists muted ones')

  const rest = await h.app.inject({ method: 'GET', url: '/api/notifications', headers: auth(alice) })
  t.equal(rest.json().unread, 1, 'REST unread leaves muted out')
  t.equal(rest.json().notifications.length, 3)

  const m1 = history.result.notifications[2].id as string
  const marked = await c.request({ type: 'mark_read', ids: [m1] })
  t.strictSame(marked.result, { unread: 1 }, 'unread after mark_read leaves muted out')
  const restRead = await h.app.inject({ method: 'POST', url: '/api/notifications/read', headers: auth(alice), payload: { all: true } })
  t.strictSame(restRead.json(), { unread: 0 })

  const sub = await c.request({ type: 'subscribe_category', categories: ['maintenance', 'system'] })
  t.strictSame(sub.result.subscriptions, ['dashboard', 'system'], 'subscribing to a muted category does not bring it back')
  const un = await putPrefs(h, alice, { muted: [] })
  t.equal(un.statusCode, 200)
  const frame = await c.nextOf('preferences')
  t.strictSame(frame.subscriptions, ['dashboard', 'system', 'maintenance'], 'the muted subscription requested earlier returns on unmute')
  c.close()
})

t.test('muting everything the connection asked for leaves it subscribed to nothing, and unread 0', async t => {
  const h = await build(t)
  const viewer = await h.token('vic', 'viewer')
  t.equal((await putPrefs(h, viewer, { muted: ['system', 'maintenance'] })).statusCode, 200)
  await publish(h, { category: 'system', title: 's' })
  const c = await connect(h.ws, { token: viewer })
  const connected = await c.nextOf('connected')
  t.strictSame(connected.subscriptions, [])
  t.equal(connected.unread, 0)
  c.close()
})

t.test('a locked category cannot be muted: 403 / forbidden, nothing changes', async t => {
  const h = await build(t)
  const mod = await h.token('mia', 'moderator')
  await putPrefs(h, mod, { muted: ['dashboard'] })
  const res = await putPrefs(h, mod, { muted: ['maintenance', 'security'] })
  t.equal(res.statusCode, 403)
  t.equal(res.json().code, 'UN_FORBIDDEN')
  t.match(res.json().message, /security/)
  t.strictSame(Object.keys(res.json()).sort(), ['code', 'error', 'message', 'statusCode'])
  t.strictSame((await getPrefs(h, mod)).json().muted, ['dashboard'], 'the earlier list stands')

  const user = await h.token('alice')
  const userRes = await putPrefs(h, user, { muted: ['security'] })
  t.equal(userRes.statusCode, 403, 'locked is the answer whoever asks')

  const c = await connect(h.ws, { token: mod })
  await c.nextOf('connected')
  const err = await c.request({ type: 'set_preferences', id: 'x', muted: ['security'] })
  t.equal(err.type, 'error')
  t.equal(err.code, 'forbidden')
  t.equal(err.id, 'x')
  const ping = await c.request({ type: 'ping' })
  t.equal(ping.type, 'reply', 'the connection stays open')
  t.notOk(c.pending().some(f => f.type === 'preferences'), 'no preferences frame for a refused change')
  t.strictSame((await getPrefs(h, mod)).json().muted, ['dashboard'])
  c.close()
})

t.test('unknown categories and categories the role may not see: 400 / bad_request, nothing changes', async t => {
  const h = await build(t)
  const alice = await h.token('alice')
  await putPrefs(h, alice, { muted: ['user'] })
  for (const [muted, code] of [[['billing'], 'UN_UNKNOWN_CATEGORY'], [['admin'], 'UN_BAD_REQUEST'], [['health', 'maintenance'], 'UN_BAD_REQUEST'], [['__proto__'], 'UN_UNKNOWN_CATEGORY']] as const) {
    const res = await putPrefs(h, alice, { muted })
    t.equal(res.statusCode, 400, JSON.stringify(muted))
    t.equal(res.json().code, code)
  }
  for (const payload of [{}, { muted: 'maintenance' }, { muted: [1] }, { muted: [''] }, { muted: ['x'.repeat(65)] }, { muted: [], extra: 1 }]) {
    const res = await putPrefs(h, alice, payload)
    t.equal(res.statusCode, 400, JSON.stringify(payload))
  }
  const c = await connect(h.ws, { token: alice })
  await c.nextOf('connected')
  const err = await c.request({ type: 'set_preferences', muted: ['admin'] })
  t.equal(err.code, 'bad_request')
  t.strictSame((await getPrefs(h, alice)).json().muted, ['user'], 'nothing changed')
  c.close()
})

t.test('ADVERSARIAL: a user cannot read or change another user\'s preferences', async t => {
  const h = await build(t)
  const bob = await h.token('bob')
  await putPrefs(h, bob, { muted: ['dashboard'] })
  const alice = await h.token('alice')
  const forged = await putPrefs(h, alice, { muted: ['maintenance'], userId: 'bob' })
  t.equal(forged.statusCode, 400, 'no field names another user')
  const viaQuery = await h.app.inject({ method: 'PUT', url: '/api/preferences?user=bob', headers: auth(alice), payload: { muted: ['maintenance'] } })
  t.equal(viaQuery.statusCode, 200, 'a query parameter is not a way in either')
  t.strictSame((await getPrefs(h, bob)).json().muted, ['dashboard'], "bob's list is untouched")
  t.strictSame((await getPrefs(h, alice)).json().muted, ['maintenance'], 'alice changed her own')
  for (const [headers, status] of [[{}, 401], [auth('not-a-token'), 401], [auth(API_KEY), 403]] as const) {
    const res = await h.app.inject({ method: 'PUT', url: '/api/preferences', headers, payload: { muted: [] } })
    t.equal(res.statusCode, status, 'a user token is required')
  }
  t.strictSame((await getPrefs(h, bob)).json().muted, ['dashboard'])
})

t.test('lockedCategories option: its own list, checked at registration; NOTIFY_LOCKED_CATEGORIES reads it', async t => {
  const h = await build(t, { lockedCategories: ['maintenance', 'system'] })
  const alice = await h.token('alice')
  t.strictSame((await getPrefs(h, alice)).json(), { muted: [], locked: ['maintenance', 'system'] })
  t.equal((await putPrefs(h, alice, { muted: ['maintenance'] })).statusCode, 403)
  t.equal((await putPrefs(h, await h.token('mia', 'moderator'), { muted: ['security'] })).statusCode, 200, 'security is not locked here')

  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await t.rejects(async () => {
    await app.register(unifiedNotifications, { jwtSecret: SECRET, lockedCategories: ['billing'] })
    await app.ready()
  }, /lockedCategories names unknown category 'billing'/)
  t.strictSame(configFromEnv({ NOTIFY_LOCKED_CATEGORIES: 'security, health' }).lockedCategories, ['security', 'health'])
  t.equal(configFromEnv({}).lockedCategories, undefined, 'unset: the default applies')
})

t.test('RACE, SQLite (the handshake reads revocation and muted in one statement): a mute set through setPreferences between the handshake and registration is applied before connected', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'un-mute-race-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // The change is made the real way (stored, and a control message that finds no socket yet) right after alice's handshake read.
  const store = new HandshakeRaceStore(join(dir, 'race.db'), 'alice')
  const h = await build(t, { store })
  const alice = { id: 'alice', role: 'user' }
  store.after = () => h.app.notifications.setPreferences(alice, ['maintenance'])
  await publish(h, { category: 'maintenance', title: 'm' })
  await publish(h, { category: 'system', title: 's' })
  const c = await connect(h.ws, { token: await h.token('alice') })
  const connected = await c.nextOf('connected')
  t.strictSame(connected.subscriptions, ['system', 'dashboard', 'user'])
  t.equal(connected.unread, 1, 'the unread count follows the list read last')
  c.close()
})

t.test('RACE: a mute stored between the handshake and registration is applied before connected', async t => {
  /** Mutes maintenance for alice right after her handshake read her (empty) list: its control message finds no socket yet. */
  class MutingStore extends MemoryStore {
    reads = 0
    override async getMuted (userId: string) {
      const muted = await super.getMuted(userId)
      if (userId === 'alice' && ++this.reads === 1) await this.setMuted('alice', ['maintenance'])
      return muted
    }
  }
  const store = new MutingStore()
  const h = await build(t, { store })
  await publish(h, { category: 'maintenance', title: 'm' })
  await publish(h, { category: 'system', title: 's' })
  const c = await connect(h.ws, { token: await h.token('alice') })
  const connected = await c.nextOf('connected')
  t.equal(store.reads, 2, 'read before the upgrade and again once registered')
  t.strictSame(connected.subscriptions, ['system', 'dashboard', 'user'])
  t.equal(connected.unread, 1, 'the unread count follows the list read last')
  t.notOk(c.pending().some(f => f.type === 'preferences'), 'connected carries it: no separate frame')
  c.close()
})
