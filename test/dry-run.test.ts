// Dry run: POST /api/notifications?dryRun=true validates as a publish does and
// says who would get it now, and why not, without storing, delivering or
// counting anything; a caller who may not publish learns nothing.
import t from 'tap'
import { MemoryStore } from '../src/stores/memory-store.js'
import { API_KEY, build, connect, publish, type Harness } from './helper.js'

const auth = (token: string) => ({ authorization: `Bearer ${token}` })

async function dryRun (h: Harness, payload: unknown, headers: Record<string, string> = auth(API_KEY), query = 'dryRun=true') {
  return h.app.inject({ method: 'POST', url: `/api/notifications?${query}`, headers, payload: payload as Record<string, unknown> })
}

/** A memory store that counts the reads a dry run makes. */
class CountingStore extends MemoryStore {
  calls: Record<string, number> = {}
  #count (name: string): void { this.calls[name] = (this.calls[name] ?? 0) + 1 }
  override async getMuted (userId: string) { this.#count('getMuted'); return super.getMuted(userId) }
  override async getMutedMany (userIds: readonly string[]) { this.#count('getMutedMany'); return super.getMutedMany(userIds) }
  override async idOfIdempotencyKey (key: string) { this.#count('idOfIdempotencyKey'); return super.idOfIdempotencyKey(key) }
  override async idOfCollapseKey (key: string) { this.#count('idOfCollapseKey'); return super.idOfCollapseKey(key) }
}

t.test('who would get it now: connections and users; for each named user, online, offline, muted or not entitled', async t => {
  const h = await build(t)
  const alice = await h.token('alice')
  await h.app.inject({ method: 'PUT', url: '/api/preferences', headers: auth(await h.token('bob')), payload: { muted: ['dashboard'] } })
  const a1 = await connect(h.ws, { token: alice })
  const a2 = await connect(h.ws, { token: alice })
  const bob = await connect(h.ws, { token: await h.token('bob') })
  const vic = await connect(h.ws, { token: await h.token('vic', 'viewer') })
  const mia = await connect(h.ws, { token: await h.token('mia', 'moderator') })
  for (const c of [a1, a2, bob, vic, mia]) await c.nextOf('connected')

  const everyone = await dryRun(h, { category: 'dashboard', title: 'report' })
  t.equal(everyone.statusCode, 200)
  t.strictSame(everyone.json(), {
    dryRun: true,
    duplicateOf: null,
    collapses: null,
    recipients: { connections: 3, users: 2 },
    audience: {}
  }, 'alice twice and mia; bob muted it, the viewer may not see it; no audience named, so no per-user answer')

  const named = await dryRun(h, { category: 'dashboard', title: 'report', audience: { users: ['alice', 'bob', 'vic', 'dave'] } })
  t.strictSame(named.json(), {
    dryRun: true,
    duplicateOf: null,
    collapses: null,
    recipients: { connections: 2, users: 1 },
    audience: { alice: 'online', bob: 'muted', vic: 'not_entitled', dave: 'offline' }
  })

  const byRole = await dryRun(h, { category: 'system', title: 's', audience: { roles: ['viewer'], users: ['mia'] } })
  t.strictSame(byRole.json().recipients, { connections: 2, users: 2 }, 'the viewer by role, mia by name')
  t.strictSame(byRole.json().audience, { mia: 'online' })

  // An unsubscribed connection would not get it live: offline, for what a publish would do now.
  await a1.request({ type: 'unsubscribe_category', categories: ['user'] })
  await a2.request({ type: 'unsubscribe_category', categories: ['user'] })
  t.strictSame((await dryRun(h, { category: 'user', title: 'u', audience: { users: ['alice'] } })).json().audience, { alice: 'offline' })
  for (const c of [a1, a2, bob, vic, mia]) c.close()
})

t.test('it stores nothing, delivers nothing and is not counted as a publish', async t => {
  const h = await build(t)
  const c = await connect(h.ws, { token: await h.token('alice') })
  await c.nextOf('connected')
  const before = await h.store.lastSeq()
  const res = await dryRun(h, { category: 'system', title: 'only a rehearsal', idempotencyKey: 'k-dry', collapseKey: 'op:dry' })
  t.equal(res.statusCode, 200)
  t.equal(res.json().recipients.connections, 1)
  t.equal(await h.store.lastSeq(), before, 'nothing stored')
  t.equal(await h.store.idOfIdempotencyKey('k-dry'), null, 'its idempotency key is not taken')
  t.equal(await h.store.idOfCollapseKey('op:dry'), null, 'nor its collapse key')
  const marker = await publish(h, { category: 'system', title: 'marker', idempotencyKey: 'k-dry' })
  t.equal(marker.duplicate, false, 'a real publish with the same key is not a duplicate')
  const first = await c.nextOf('notification')
  t.equal(first.notification.title, 'marker', 'the dry run delivered nothing before it')
  const stats = (await h.app.inject({ method: 'GET', url: '/api/notifications/stats', headers: auth(API_KEY) })).json()
  t.equal(stats.published, 1, 'only the real publish is counted')
  t.equal(stats.duplicates, 0)
  c.close()
})

t.test('duplicateOf and collapses name the earlier notifications; a duplicate would reach nobody', async t => {
  const h = await build(t)
  const c = await connect(h.ws, { token: await h.token('alice') })
  await c.nextOf('connected')
  const first = await publish(h, { category: 'maintenance', title: 'started', idempotencyKey: 'op-1-start', collapseKey: 'maintenance:op-1' })
  const dup = await dryRun(h, { category: 'maintenance', title: 'started', idempotencyKey: 'op-1-start', audience: { users: ['alice'] } })
  t.equal(dup.json().duplicateOf, first.id)
  t.strictSame(dup.json().recipients, { connections: 0, users: 0 }, 'a repeated key delivers nothing')
  t.strictSame(dup.json().audience, { alice: 'online' }, 'the audience still says where each named user stands')
  const col = await dryRun(h, { category: 'maintenance', title: '50%', collapseKey: 'maintenance:op-1' })
  t.equal(col.json().collapses, first.id)
  t.equal(col.json().duplicateOf, null)
  t.strictSame(col.json().recipients, { connections: 1, users: 1 })
  t.equal((await dryRun(h, { category: 'maintenance', title: 'x', collapseKey: 'maintenance:op-2', idempotencyKey: 'other' })).json().collapses, null)
  c.close()
})

t.test('same validation and same errors as a publish', async t => {
  const h = await build(t)
  const past = new Date(Date.now() - 60_000).toISOString()
  const bad: unknown[] = [
    { category: 'billing', title: 'x' },
    { category: 'system' },
    { category: 'system', title: '' },
    { category: 'system', title: 'x', extra: 1 },
    { category: 'system', title: 'x', expiresAt: past },
    { category: 'system', title: 'x', data: { blob: 'x'.repeat(17 * 1024) } },
    { category: 'system', title: 'x', audience: { roles: ['ghost'] } },
    { category: 'system', title: 'x', audience: { users: Array.from({ length: 1001 }, (_, i) => `u${i}`) } },
    { category: 'system', title: 'x', audience: { users: ['a', 'a'] } }
  ]
  for (const payload of bad) {
    const real = await h.app.inject({ method: 'POST', url: '/api/notifications', headers: auth(API_KEY), payload: payload as Record<string, unknown> })
    const dry = await dryRun(h, payload)
    t.equal(dry.statusCode, real.statusCode, JSON.stringify(payload).slice(0, 60))
    t.equal(dry.statusCode, 400)
    t.strictSame(dry.json(), real.json(), 'the same error body')
  }
  t.equal(await h.store.lastSeq(), 0)
  t.equal((await dryRun(h, { category: 'system', title: 'x' }, auth(API_KEY), 'dryRun=maybe')).statusCode, 400, 'dryRun must be a boolean')
  t.equal((await dryRun(h, { category: 'system', title: 'x' }, auth(API_KEY), 'dryRun=true&debug=1')).statusCode, 400, 'unknown query parameters are refused')
  const real = await dryRun(h, { category: 'system', title: 'x' }, auth(API_KEY), 'dryRun=false')
  t.equal(real.statusCode, 202, 'dryRun=false is a publish')
  t.equal(await h.store.lastSeq(), 1)
})

t.test('ADVERSARIAL: a caller who may not publish gets 401/403 and nothing is computed', async t => {
  const store = new CountingStore()
  const h = await build(t, { store })
  const manager = h.app.notifications
  let computed = 0
  const original = manager.dryRun.bind(manager)
  manager.dryRun = async (...args) => { computed++; return original(...args) }
  const probe = { category: 'admin', title: 'x', audience: { users: ['alice', 'root'] } }
  for (const [headers, status] of [
    [{}, 401], [auth('wrong-key'), 401], [auth(await h.token('alice')), 403], [auth(await h.token('mia', 'moderator')), 403]
  ] as const) {
    const res = await dryRun(h, probe, headers)
    t.equal(res.statusCode, status)
    t.notMatch(res.body, /audience|recipients|online|offline/, 'the answer says nothing about anyone')
    const invalid = await dryRun(h, { category: 'billing' }, headers)
    t.equal(invalid.statusCode, status, 'credentials are checked before the body is even validated')
  }
  t.equal(computed, 0, 'the dry run never ran')
  t.strictSame(store.calls, {}, 'no store read was made for them')
  const admin = await dryRun(h, probe, auth(await h.token('root', 'admin')))
  t.equal(admin.statusCode, 200, 'an admin token may')
  t.equal(computed, 1)
})

t.test('an audience of 1,000 users is answered with one batched store read, quickly', async t => {
  const store = new CountingStore()
  const h = await build(t, { store })
  const users = Array.from({ length: 1000 }, (_, i) => `user-${i}`)
  for (const u of users.slice(0, 10)) await store.setMuted(u, ['maintenance'])
  const clients = await Promise.all(users.slice(10, 20).map(async u => connect(h.ws, { token: await h.token(u) })))
  for (const c of clients) await c.nextOf('connected')
  store.calls = {}
  // CPU time, not wall time: a loaded machine can deschedule this process for longer than the whole answer takes.
  const started = process.cpuUsage()
  const res = await dryRun(h, { category: 'maintenance', title: 'tonight', audience: { users } })
  const used = process.cpuUsage(started)
  const ms = (used.user + used.system) / 1000
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.equal(Object.keys(body.audience).length, 1000, 'every named user is answered')
  t.equal(body.audience['user-0'], 'muted')
  t.equal(body.audience['user-15'], 'online')
  t.equal(body.audience['user-500'], 'offline')
  t.strictSame(body.recipients, { connections: 10, users: 10 })
  t.strictSame(store.calls, { getMutedMany: 1 }, 'one batched read of muted lists, no per-user query')
  t.ok(ms < 500, `answered in ${ms.toFixed(1)} ms of CPU`)
  for (const c of clients) c.close()
})
