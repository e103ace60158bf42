// Three standalone instances on one Redis (a redis-server of this test's own),
// as child processes: clients on one, publishes on another, and the faults
// (an instance killed, a Redis connection killed, Redis restarted) in the middle
// of a stream of publishes. Checked for no loss, no duplicates, seq order.
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { signToken } from '../src/tokens.js'
import { API_KEY, SECRET, connect, type Client, type Frame } from './helper.js'
import { ownRedis, START_MS, startInstance, type Instance } from './instances.js'

const PRESENCE_TTL_MS = 1500
const REDIS_TIMEOUT_MS = 1000

// Three server processes start at once, each transpiling its entry point (see START_MS).
t.setTimeout(START_MS + 120_000)
const redis = await ownRedis(t)
const prefix = `mi-${randomBytes(3).toString('hex')}:`
const admin = new Redis(redis.url, { maxRetriesPerRequest: 1, lazyConnect: true })
admin.on('error', () => {})
t.teardown(() => admin.disconnect())
const env = {
  NOTIFY_STORE: redis.url,
  NOTIFY_REDIS_PREFIX: prefix,
  NOTIFY_PRESENCE_TTL_MS: String(PRESENCE_TTL_MS),
  NOTIFY_REDIS_TIMEOUT_MS: String(REDIS_TIMEOUT_MS),
  NOTIFY_LEGACY_ADAPTERS: 'dashboard'
}
// Started together: each compiles the server on its own.
const [a, b, c] = await Promise.all([startInstance(t, env), startInstance(t, env), startInstance(t, env)]) as [Instance, Instance, Instance]

const token = (sub: string, role = 'user') => signToken(SECRET, { sub, role })
const auth = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }
async function post (i: Instance, path: string, body: unknown): Promise<{ status: number, json: Record<string, any> }> {
  const res = await fetch(i.http + path, { method: 'POST', headers: auth, body: JSON.stringify(body) })
  return { status: res.status, json: await res.json() as Record<string, any> }
}
async function get (i: Instance, path: string, bearer = API_KEY): Promise<{ status: number, json: Record<string, any> }> {
  const res = await fetch(i.http + path, { headers: { authorization: `Bearer ${bearer}` } })
  return { status: res.status, json: await res.json() as Record<string, any> }
}
async function open (t: Test, i: Instance, user: string, role = 'user', query: Record<string, string> = {}): Promise<{ client: Client, connected: Frame }> {
  const client = await connect(i.ws, { token: await token(user, role), query })
  t.teardown(() => client.close())
  return { client, connected: await client.nextOf('connected', 10_000) }
}
/** The next n notification frames' seqs and titles. */
async function notifications (client: Client, n: number, ms = 10_000): Promise<Frame[]> {
  const out: Frame[] = []
  for (let k = 0; k < n; k++) out.push((await client.nextOf('notification', ms)).notification)
  return out
}

t.test('one seq, one history: a publish on B reaches sockets on A and C, targeted by user and by role, in seq order', async t => {
  const alice = await open(t, a, 'alice')
  const root = await open(t, c, 'root', 'admin')
  const bob = await open(t, c, 'bob')
  const sent: Array<Record<string, any>> = []
  sent.push((await post(b, '/api/notifications', { category: 'dashboard', title: 'everyone' })).json)
  sent.push((await post(b, '/api/notifications', { category: 'dashboard', title: 'alice only', audience: { users: ['alice'] } })).json)
  sent.push((await post(a, '/api/notifications', { category: 'admin', title: 'admins', audience: { roles: ['admin'] } })).json)
  sent.push((await post(c, '/api/notifications', { category: 'system', title: 'last' })).json)
  t.same(sent.map(s => s.seq), [1, 2, 3, 4].map(n => n + sent[0]!.seq - 1), 'one increasing seq across instances')
  t.same((await notifications(alice.client, 3)).map(n => n.title), ['everyone', 'alice only', 'last'])
  t.same((await notifications(root.client, 3)).map(n => n.title), ['everyone', 'admins', 'last'])
  t.same((await notifications(bob.client, 2)).map(n => n.title), ['everyone', 'last'])
  const ping = await bob.client.request({ type: 'ping' }, 5000)
  t.equal(ping.type, 'reply')
  t.notOk(bob.client.pending().some(f => f.type === 'notification'), 'bob got nothing targeted at others')
})

t.test('history paging, read state, unread, idempotency and collapse are the same on every instance', async t => {
  const user = `reader-${randomBytes(3).toString('hex')}`
  const first = await post(a, '/api/notifications', { category: 'user', title: 'k', idempotencyKey: `idem-${user}`, audience: { users: [user] } })
  t.equal(first.status, 202)
  const again = await post(b, '/api/notifications', { category: 'user', title: 'k again', idempotencyKey: `idem-${user}`, audience: { users: [user] } })
  t.equal(again.status, 200)
  t.same([again.json.id, again.json.duplicate], [first.json.id, true], 'the key seen on A is a duplicate on B')
  for (let p = 10; p <= 50; p += 20) await post(p === 30 ? b : a, '/api/notifications', { category: 'user', title: `op ${p}%`, collapseKey: `op-${user}`, audience: { users: [user] } })
  const tok = await token(user)
  const page1 = await get(c, '/api/notifications?limit=1&category=user', tok)
  t.same(page1.json.notifications.map((n: Frame) => n.title), ['op 50%'], 'collapsed across instances: only the newest')
  t.equal(page1.json.hasMore, true)
  const unread = page1.json.unread as number
  const page2 = await get(a, `/api/notifications?limit=5&category=user&before=${page1.json.notifications[0].seq}`, tok)
  t.same(page2.json.notifications.map((n: Frame) => n.title), ['k'], 'the next page, read on A')
  const read = await fetch(`${b.http}/api/notifications/read`, { method: 'POST', headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' }, body: JSON.stringify({ ids: [first.json.id] }) })
  t.same(await read.json(), { unread: unread - 1 }, 'marked read on B')
  const after = await get(c, '/api/notifications?category=user', tok)
  t.equal(after.json.unread, unread - 1, 'one fewer unread on C')
  t.same(after.json.notifications.map((n: Frame) => [n.title, n.read]), [['op 50%', false], ['k', true]], 'the read flag on C')
})

t.test('a client that reconnects to another instance with since gets exactly what it missed', async t => {
  const first = await open(t, a, 'carol')
  const { seq } = (await post(b, '/api/notifications', { category: 'dashboard', title: 'seen' })).json
  t.equal((await notifications(first.client, 1))[0]!.seq, seq)
  first.client.close()
  const missed = []
  for (let k = 0; k < 3; k++) missed.push((await post(k % 2 ? a : b, '/api/notifications', { category: 'dashboard', title: `missed ${k}` })).json.seq)
  const again = await open(t, c, 'carol', 'user', { since: String(seq), epoch: first.connected.epoch })
  t.equal(again.connected.epoch, first.connected.epoch, 'one log, one epoch on every instance')
  t.same((await notifications(again.client, 3)).map(n => n.seq), missed)
  t.same(await again.client.nextOf('replayed', 5000), { type: 'replayed', count: 3, complete: true })
})

t.test('a legacy emitter fed on B reaches a legacy=1 socket on A', async t => {
  const dave = await open(t, a, 'dave', 'user', { legacy: '1' })
  const res = await post(b, '/api/legacy/dashboard/user_notification', { user_id: 'dave', message: 'from the old system' })
  t.equal(res.status, 202)
  t.equal((await dave.client.nextOf('notification', 10_000)).notification.message, 'from the old system')
  t.same((await dave.client.nextOf('legacy', 10_000)).event, 'user_notification')
})

t.test('presence and cluster stats across instances', async t => {
  await open(t, a, 'erin')
  await open(t, c, 'erin')
  const res = await get(b, '/api/presence?users=erin,nobody')
  t.equal(res.status, 200)
  t.equal(res.json.users.erin.online, true)
  t.equal(res.json.users.erin.connections, 2, 'one on A, one on C')
  t.ok(Date.parse(res.json.users.erin.since) <= Date.now())
  t.same(res.json.users.nobody, { online: false })
  const stats = await get(a, '/api/notifications/stats')
  t.equal(stats.json.instance, a.id)
  t.equal(stats.json.cluster.instances, 3)
  t.ok(stats.json.cluster.connections >= 2)
  t.equal((await get(a, '/api/presence?users=')).status, 400, 'no ids: 400')
  t.equal((await get(a, `/api/presence?users=${Array.from({ length: 101 }, (_, k) => `u${k}`).join(',')}`)).status, 400, '101 ids: 400')
  t.equal((await get(a, '/api/presence?users=erin', await token('erin'))).status, 403, 'a user token: 403')
})

t.test('an instance killed with SIGKILL: its users go offline within the presence TTL, the others carry on', async t => {
  await open(t, c, 'frank')
  t.equal((await get(a, '/api/presence?users=frank')).json.users.frank.online, true)
  const gina = await open(t, a, 'gina')
  c.child.kill('SIGKILL')
  await c.exited
  const killedAt = Date.now()
  // Polled until offline, and at least once at the deadline. What counts is when a question was asked, not when
  // its answer came back: a loaded machine can take a second to answer, and a question asked before the TTL ran out
  // is rightly answered online.
  const deadline = killedAt + PRESENCE_TTL_MS * 2
  let online = true
  let askedAt = killedAt
  while (online && askedAt < deadline) {
    askedAt = Date.now()
    online = (await get(b, '/api/presence?users=frank')).json.users.frank.online
  }
  t.equal(online, false, `offline within the TTL (and one heartbeat): asked ${askedAt - killedAt} ms after the kill`)
  const sent = await post(b, '/api/notifications', { category: 'dashboard', title: 'after the crash' })
  t.equal(sent.status, 202)
  t.equal((await notifications(gina.client, 1))[0]!.seq, sent.json.seq)
  t.equal((await get(a, '/api/notifications/stats')).json.cluster.instances, 2)
})

/** Publishes n notifications on `on` one after another; returns the seqs answered 202 (others were refused). */
async function stream (on: Instance, n: number, title: string, during?: (k: number) => Promise<void>): Promise<{ accepted: number[], refused: Array<{ status: number, code: string }> }> {
  const accepted: number[] = []
  const refused: Array<{ status: number, code: string }> = []
  for (let k = 0; k < n; k++) {
    await during?.(k)
    const started = Date.now()
    const res = await post(on, '/api/notifications', { category: 'dashboard', title: `${title} ${k}` }).catch(() => ({ status: 0, json: {} as Record<string, any> }))
    if (res.status === 202) accepted.push(res.json.seq)
    else {
      refused.push({ status: res.status, code: res.json.code })
      if (Date.now() - started > REDIS_TIMEOUT_MS + 1500) throw new Error(`a refused publish took ${Date.now() - started} ms`)
    }
  }
  return { accepted, refused }
}

/** Every seq of `accepted` reaches the client exactly once, in increasing order; returns what arrived. */
async function receivedAll (t: Test, client: Client, accepted: number[]): Promise<void> {
  const last = Math.max(...accepted)
  const seen: number[] = []
  while (seen.length === 0 || seen[seen.length - 1]! < last) seen.push((await client.nextOf('notification', 20_000)).notification.seq)
  t.same(seen.filter(s => accepted.includes(s)), accepted, 'every accepted notification arrived, in order')
  t.ok(seen.every((s, k) => k === 0 || s > seen[k - 1]!), 'strictly increasing: no duplicate, no reordering')
}

t.test('a Redis connection killed (CLIENT KILL) in the middle of a stream of publishes: no loss, no duplicates', async t => {
  const hank = await open(t, a, 'hank')
  const { accepted } = await stream(b, 60, 'kill', async k => {
    if (k === 20 || k === 40) {
      const list = await admin.client('LIST') as string
      for (const line of list.split('\n').filter(l => l.includes(` name=${a.id}:reader `))) await admin.client('KILL', 'ID', /id=(\d+)/.exec(line)![1]!)
    }
  })
  t.equal(accepted.length, 60, 'the publisher on B was not affected')
  await receivedAll(t, hank.client, accepted)
})

t.test('Redis restarted in the middle of a stream of publishes: 503 while away, sockets stay open, nothing accepted lost or doubled', async t => {
  const ivy = await open(t, a, 'ivy')
  let down = false
  const outage = async (k: number) => {
    if (k === 15) {
      await redis.stop()
      down = true
      const health = await fetch(`${a.http}/health`)
      t.equal(health.status, 503, '/health 503 while Redis is away')
    }
    if (k === 25) {
      await redis.start()
      down = false
      // The instances reconnect by themselves (backoff up to a second): the publisher waits for B's health.
      const until = Date.now() + 15_000
      while ((await fetch(`${b.http}/health`)).status !== 200 && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 50))
    }
  }
  const { accepted, refused } = await stream(b, 45, 'restart', outage)
  t.notOk(down)
  t.ok(refused.length >= 1, `${refused.length} publishes refused while Redis was away`)
  t.ok(refused.every(r => r.status === 503 && r.code === 'UN_UNAVAILABLE'), 'each refusal is 503 UN_UNAVAILABLE')
  t.ok(accepted.length >= 20, `${accepted.length} accepted`)
  t.equal(ivy.client.ws.readyState, ivy.client.ws.OPEN, 'the socket stayed open')
  await receivedAll(t, ivy.client, accepted)
  let health = 0
  for (let k = 0; k < 50 && health !== 200; k++) health = (await fetch(`${a.http}/health`)).status
  t.equal(health, 200, '/health 200 again')
})
