// WebSocket protocol v1 on real sockets: a real port on 127.0.0.1 and real `ws`
// clients, for what injectWS cannot show (ordering, resume races, limits,
// pre-upgrade HTTP refusals, close codes).
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { SignJWT } from 'jose'
import { MemoryStore } from '../src/stores/memory-store.js'
import type { Draft, HistoryQuery, HistoryStore } from '../src/stores/history-store.js'
import type { User } from '../src/schemas.js'
import {
  build, connect, publish, publishHttp, refusedUpgrade, sleep, within, SECRET,
  type Client, type Frame, type Harness
} from './helper.js'

const USER_CATEGORIES = ['system', 'dashboard', 'maintenance', 'user']

/** Publishes a marker to everyone and returns the ids of the notifications a client got before it. */
async function idsBefore (h: Harness, clients: Client[]): Promise<string[][]> {
  const marker = await publish(h, { category: 'system', title: 'marker' })
  return Promise.all(clients.map(async c => {
    const ids: string[] = []
    for (let i = 0; i < 100; i++) {
      const f = await c.nextOf('notification')
      if (f.notification.id === marker.id) return ids
      ids.push(f.notification.id)
    }
    throw new Error('marker never arrived')
  }))
}

/** Collects notification seqs after `connected` until `last` is seen; also returns every frame in order. */
async function collectUntil (c: Client, last: number, ms = 10_000): Promise<Frame[]> {
  const frames: Frame[] = []
  const deadline = Date.now() + ms
  for (let i = 0; i < 5000; i++) {
    const f = await c.next(Math.max(1, deadline - Date.now()))
    frames.push(f)
    if (f.type === 'notification' && f.notification.seq >= last) return frames
  }
  throw new Error('too many frames')
}

t.test('connected is the first frame, with the documented fields', async t => {
  const h = await build(t)
  await publish(h, { category: 'dashboard', title: 'one' })
  await publish(h, { category: 'admin', title: 'not for users' })
  await publish(h, { category: 'system', title: 'for bob only', audience: { users: ['bob'] } })
  const c = await connect(h.ws, { token: await h.token('alice', 'user') })
  const f = await c.next()
  t.equal(f.type, 'connected')
  t.equal(f.protocol, 1)
  t.type(f.sessionId, 'string')
  t.ok(f.sessionId.length > 0)
  t.same(f.user, { id: 'alice', role: 'user' })
  t.strictSame(f.categories, USER_CATEGORIES, 'categories: what the role may see')
  t.strictSame(f.subscriptions, USER_CATEGORIES, 'subscribed to everything it may see by default')
  t.equal(f.unread, 1, 'unread counts only what alice is entitled to')
  t.equal(f.lastSeq, 3)
  t.type(f.epoch, 'string')
  t.ok(f.epoch.length > 0)

  const viewer = await connect(h.ws, { token: await h.token('vic', 'viewer') })
  const vf = await viewer.next()
  t.strictSame(vf.categories, ['system', 'maintenance'])
  t.equal(vf.epoch, f.epoch, 'one log, one epoch')
  const admin = await connect(h.ws, { token: await h.token('ada', 'admin') })
  const af = await admin.next()
  t.strictSame(af.categories, ['system', 'dashboard', 'admin', 'health', 'maintenance', 'security', 'user'])
  t.equal(af.unread, 2)
  t.not(af.sessionId, f.sessionId)
  c.close(); viewer.close(); admin.close()
})

t.test('credentials: Authorization header and ?token= both work', async t => {
  const h = await build(t)
  const viaHeader = await connect(h.ws, { token: await h.token('alice') })
  t.same((await viaHeader.next()).user, { id: 'alice', role: 'user' })
  const viaQuery = await connect(h.ws, { query: { token: await h.token('bob', 'moderator') } })
  t.same((await viaQuery.next()).user, { id: 'bob', role: 'moderator' })
  viaHeader.close(); viaQuery.close()
})

t.test('?categories= sets the initial subscriptions; unknown → 400, forbidden → 403, before any upgrade', async t => {
  const h = await build(t)
  const token = await h.token('alice')
  const c = await connect(h.ws, { token, query: { categories: 'dashboard,maintenance' } })
  const f = await c.next()
  t.strictSame(f.subscriptions, ['dashboard', 'maintenance'])
  t.strictSame(f.categories, USER_CATEGORIES, 'categories still lists everything the role may see')
  await publish(h, { category: 'system', title: 'not subscribed' })
  const d = await publish(h, { category: 'dashboard', title: 'subscribed' })
  t.equal((await c.nextOf('notification')).notification.id, d.id, 'system (not subscribed) skipped, dashboard delivered')

  const unknown = await refusedUpgrade(h.ws, { token, query: { categories: 'dashboard,nope' } })
  t.equal(unknown.statusCode, 400)
  t.equal(unknown.body.statusCode, 400)
  t.equal(unknown.body.error, 'Bad Request')
  t.type(unknown.body.code, 'string')
  t.match(unknown.body.message, /nope/)
  t.notOk(unknown.opened)

  const forbidden = await refusedUpgrade(h.ws, { token, query: { categories: 'dashboard,admin' } })
  t.equal(forbidden.statusCode, 403)
  t.equal(forbidden.body.statusCode, 403)
  t.equal(forbidden.body.error, 'Forbidden')
  t.type(forbidden.body.code, 'string')
  t.match(forbidden.body.message, /admin/)
  t.notOk(forbidden.opened)
  t.equal(h.app.notifications.stats().connections, 1, 'only the first connection was ever registered')
  c.close()
})

t.test('subscribe / unsubscribe reply with the subscriptions, and live delivery follows', async t => {
  const h = await build(t)
  const c = await connect(h.ws, { token: await h.token('alice'), query: { categories: 'system' } })
  await c.next()
  const before = await publish(h, { category: 'dashboard', title: 'not yet subscribed' })
  t.strictSame((await idsBefore(h, [c]))[0], [], 'dashboard not delivered before subscribing')

  const sub = await c.request({ type: 'subscribe_category', id: 'sub-1', categories: ['dashboard'] })
  t.equal(sub.type, 'reply')
  t.equal(sub.id, 'sub-1', 'the reply echoes the request id')
  t.strictSame(sub.result, { subscriptions: ['system', 'dashboard'] })
  const live = await publish(h, { category: 'dashboard', title: 'now subscribed' })
  t.strictSame((await idsBefore(h, [c]))[0], [live.id], 'dashboard delivered after subscribing')
  t.not(live.id, before.id)

  const unsub = await c.request({ type: 'unsubscribe_category', id: 'unsub-1', categories: ['dashboard'] })
  t.equal(unsub.id, 'unsub-1')
  t.strictSame(unsub.result, { subscriptions: ['system'] })
  await publish(h, { category: 'dashboard', title: 'unsubscribed again' })
  t.strictSame((await idsBefore(h, [c]))[0], [], 'dashboard not delivered after unsubscribing')
  c.close()
})

t.test('subscribing to a forbidden category: error forbidden, subscriptions unchanged', async t => {
  const h = await build(t)
  const c = await connect(h.ws, { token: await h.token('alice'), query: { categories: 'system' } })
  await c.next()
  const err = await c.request({ type: 'subscribe_category', id: 'f1', categories: ['dashboard', 'admin'] })
  t.equal(err.type, 'error')
  t.equal(err.id, 'f1')
  t.equal(err.code, 'forbidden')
  // dashboard came first in the refused list: it must not have been added either.
  await publish(h, { category: 'dashboard', title: 'd' })
  await publish(h, { category: 'admin', title: 'a' })
  t.strictSame((await idsBefore(h, [c]))[0], [], 'neither dashboard nor admin is delivered')
  const unknown = await c.request({ type: 'subscribe_category', id: 'f2', categories: ['nope'] })
  t.equal(unknown.type, 'error')
  t.equal(unknown.code, 'bad_request')
  const same = await c.request({ type: 'subscribe_category', id: 'f3', categories: ['system'] })
  t.strictSame(same.result, { subscriptions: ['system'] }, 'subscriptions unchanged')
  c.close()
})

t.test('history: entitled only, newest first, with read; limit, before, categories, unreadOnly; mark_read', async t => {
  const h = await build(t)
  const n1 = await publish(h, { category: 'dashboard', title: 'n1' })
  const n2 = await publish(h, { category: 'system', title: 'n2' })
  await publish(h, { category: 'dashboard', title: 'for bob', audience: { users: ['bob'] } })
  await publish(h, { category: 'admin', title: 'admins only by category' })
  const n5 = await publish(h, { category: 'maintenance', title: 'n5', audience: { roles: ['user'] } })
  const n6 = await publish(h, { category: 'user', title: 'n6', audience: { users: ['alice'] } })
  await publish(h, { category: 'dashboard', title: 'admins only by audience', audience: { roles: ['admin'] } })

  // Subscribed to system only: history still covers everything alice may see.
  const c = await connect(h.ws, { token: await h.token('alice'), query: { categories: 'system' } })
  const connected = await c.next()
  t.equal(connected.unread, 4)

  const all = await c.request({ type: 'request_notification_history', id: 'h1' })
  t.equal(all.id, 'h1')
  t.strictSame(all.result.notifications.map((n: any) => n.id), [n6.id, n5.id, n2.id, n1.id], 'entitled, newest first')
  t.ok(all.result.notifications.every((n: any) => n.read === false), 'each with read:false')
  t.ok(all.result.notifications.every((n: any) => !('audience' in n)), 'no audience in history')
  t.equal(all.result.hasMore, false)

  const page1 = await c.request({ type: 'request_notification_history', limit: 2 })
  t.strictSame(page1.result.notifications.map((n: any) => n.id), [n6.id, n5.id])
  t.equal(page1.result.hasMore, true)
  const page2 = await c.request({ type: 'request_notification_history', limit: 2, before: n5.seq })
  t.strictSame(page2.result.notifications.map((n: any) => n.id), [n2.id, n1.id])
  t.equal(page2.result.hasMore, false)

  const dash = await c.request({ type: 'request_notification_history', categories: ['dashboard'] })
  t.strictSame(dash.result.notifications.map((n: any) => n.id), [n1.id], 'category filter, still entitled only')
  const forbidden = await c.request({ type: 'request_notification_history', id: 'hf', categories: ['admin'] })
  t.equal(forbidden.type, 'error')
  t.equal(forbidden.code, 'forbidden')

  const read1 = await c.request({ type: 'mark_read', id: 'm1', ids: [n1.id] })
  t.equal(read1.id, 'm1')
  t.strictSame(read1.result, { unread: 3 })
  const unreadOnly = await c.request({ type: 'request_notification_history', unreadOnly: true })
  t.strictSame(unreadOnly.result.notifications.map((n: any) => n.id), [n6.id, n5.id, n2.id])
  const withRead = await c.request({ type: 'request_notification_history' })
  t.strictSame(withRead.result.notifications.map((n: any) => n.read), [false, false, false, true])

  const readAll = await c.request({ type: 'mark_read', id: 'm2', all: true })
  t.strictSame(readAll.result, { unread: 0 })
  const after = await c.request({ type: 'request_notification_history' })
  t.ok(after.result.notifications.every((n: any) => n.read === true))
  const none = await c.request({ type: 'request_notification_history', unreadOnly: true })
  t.strictSame(none.result.notifications, [])
  c.close()
})

t.test('ping replies with an ISO time and echoes the id', async t => {
  const h = await build(t)
  const c = await connect(h.ws, { token: await h.token('alice') })
  await c.next()
  const r = await c.request({ type: 'ping', id: 'p-42' })
  t.equal(r.type, 'reply')
  t.equal(r.id, 'p-42')
  t.type(r.result.time, 'string')
  t.equal(new Date(r.result.time).toISOString(), r.result.time)
  c.send({ type: 'ping' })
  const noId = await c.nextOf('reply')
  t.notOk('id' in noId, 'no id in, no id out')
  c.close()
})

t.test('targeting: users, roles, everyone who may see the category; two connections of one user', async t => {
  const h = await build(t)
  const alice1 = await connect(h.ws, { token: await h.token('alice', 'user') })
  const alice2 = await connect(h.ws, { token: await h.token('alice', 'user') })
  const bob = await connect(h.ws, { token: await h.token('bob', 'user') })
  const mod = await connect(h.ws, { token: await h.token('mo', 'moderator') })
  const admin = await connect(h.ws, { token: await h.token('ada', 'admin') })
  const viewer = await connect(h.ws, { token: await h.token('vic', 'viewer') })
  const all = [alice1, alice2, bob, mod, admin, viewer]
  for (const c of all) t.equal((await c.next()).type, 'connected')

  const toAlice = await publish(h, { category: 'dashboard', title: 'alice', audience: { users: ['alice'] } })
  t.strictSame(await idsBefore(h, all), [[toAlice.id], [toAlice.id], [], [], [], []], 'audience users: only alice, on both connections')

  const toMods = await publish(h, { category: 'dashboard', title: 'mods', audience: { roles: ['moderator'] } })
  t.strictSame(await idsBefore(h, all), [[], [], [], [toMods.id], [], []], 'audience roles: only moderators')

  const everyone = await publish(h, { category: 'dashboard', title: 'everyone' })
  t.strictSame(await idsBefore(h, all), [[everyone.id], [everyone.id], [everyone.id], [everyone.id], [everyone.id], []],
    'no audience: every role that may see dashboard; never the viewer')

  const security = await publish(h, { category: 'security', title: 'sec' })
  t.strictSame(await idsBefore(h, all), [[], [], [], [security.id], [security.id], []], 'security: moderators and admins')

  const both = await publish(h, { category: 'maintenance', title: 'both', audience: { users: ['bob'], roles: ['viewer'] } })
  t.strictSame(await idsBefore(h, all), [[], [], [both.id], [], [], [both.id]], 'users and roles: the union, once each')

  const emptyAudience = await publish(h, { category: 'system', title: 'empty', audience: { users: [], roles: [] } })
  t.strictSame(await idsBefore(h, all), Array(6).fill([emptyAudience.id]), 'empty lists mean everyone')

  // Notification frames never carry the audience, checked on the raw text.
  const raw = new Promise<string>(resolve => alice1.ws.once('message', d => resolve(d.toString())))
  await publish(h, { category: 'dashboard', title: 'targeted', audience: { users: ['alice', 'bob'], roles: ['admin'] } })
  const text = await raw
  t.match(text, /"type":"notification"/)
  t.notMatch(text, /"audience"/)
  t.notMatch(text, /"bob"/)
  for (const c of all) c.close()
})

t.test('idempotencyKey: the second publish delivers nothing', async t => {
  const h = await build(t)
  const c = await connect(h.ws, { token: await h.token('alice') })
  await c.next()
  const first = await publish(h, { category: 'dashboard', title: 'once', idempotencyKey: 'k-1' })
  const again = await publish(h, { category: 'dashboard', title: 'once', idempotencyKey: 'k-1' })
  t.equal(again.duplicate, true)
  t.equal(again.id, first.id)
  t.strictSame((await idsBefore(h, [c]))[0], [first.id], 'delivered exactly once')
  const hist = await c.request({ type: 'request_notification_history', categories: ['dashboard'] })
  t.equal(hist.result.notifications.length, 1)
  c.close()
})

t.test('collapseKey: history shows only the newest', async t => {
  const h = await build(t)
  await publish(h, { category: 'maintenance', type: 'progress', title: 'job 10%', collapseKey: 'job:1', data: { progress: 10 } })
  await publish(h, { category: 'maintenance', type: 'progress', title: 'job 50%', collapseKey: 'job:1', data: { progress: 50 } })
  const other = await publish(h, { category: 'maintenance', title: 'other job', collapseKey: 'job:2' })
  const last = await publish(h, { category: 'maintenance', type: 'success', title: 'job done', collapseKey: 'job:1' })
  const c = await connect(h.ws, { token: await h.token('alice') })
  await c.next()
  const hist = await c.request({ type: 'request_notification_history' })
  t.strictSame(hist.result.notifications.map((n: any) => n.id), [last.id, other.id])
  t.equal(hist.result.notifications[0].collapseKey, 'job:1')
  c.close()
})

t.test('expiresAt: listed before expiry, neither listed nor replayed after it', async t => {
  const h = await build(t)
  const keep = await publish(h, { category: 'dashboard', title: 'stays' })
  const short = await publish(h, { category: 'dashboard', title: 'short-lived', expiresAt: new Date(Date.now() + 800).toISOString() })
  const c = await connect(h.ws, { token: await h.token('alice') })
  const connected = await c.next()
  t.equal(connected.unread, 2)
  const before = await c.request({ type: 'request_notification_history' })
  t.strictSame(before.result.notifications.map((n: any) => n.id), [short.id, keep.id])
  t.type(before.result.notifications[0].expiresAt, 'string')
  await sleep(1000)
  const after = await c.request({ type: 'request_notification_history' })
  t.strictSame(after.result.notifications.map((n: any) => n.id), [keep.id], 'expired: no longer listed')
  const unread = await c.request({ type: 'mark_read', ids: ['nothing-such'] })
  t.strictSame(unread.result, { unread: 1 }, 'expired: not counted unread')
  const resumed = await connect(h.ws, { token: await h.token('alice'), query: { since: '0' } })
  await resumed.nextOf('connected')
  t.equal((await resumed.next()).notification.id, keep.id)
  t.same(await resumed.next(), { type: 'replayed', count: 1, complete: true }, 'expired: not replayed')
  c.close(); resumed.close()
})

t.test('resume: connected, entitled replay oldest first, replayed, then live', async t => {
  const h = await build(t)
  const sent = []
  for (let i = 1; i <= 6; i++) {
    sent.push(await publish(h, i === 4
      ? { category: 'dashboard', title: `n${i}`, audience: { users: ['bob'] } }
      : { category: 'dashboard', title: `n${i}` }))
  }
  const c = await connect(h.ws, { token: await h.token('alice'), query: { since: String(sent[1]!.seq) } })
  const connected = await c.next()
  t.equal(connected.type, 'connected', 'connected first')
  t.equal(connected.lastSeq, sent[5]!.seq)
  const replay = [await c.next(), await c.next(), await c.next()]
  t.strictSame(replay.map(f => f.type), ['notification', 'notification', 'notification'])
  t.strictSame(replay.map(f => f.notification.seq), [sent[2]!.seq, sent[4]!.seq, sent[5]!.seq], 'after since, oldest first, entitled only')
  t.ok(replay.every(f => f.notification.read === false && !('audience' in f.notification)))
  t.same(await c.next(), { type: 'replayed', count: 3, complete: true })
  const live = await publish(h, { category: 'dashboard', title: 'live' })
  const lf = await c.next()
  t.equal(lf.type, 'notification')
  t.equal(lf.notification.id, live.id)

  const fromZero = await connect(h.ws, { token: await h.token('alice'), query: { since: '0', categories: 'dashboard' } })
  await fromZero.nextOf('connected')
  const frames = await collectUntil(fromZero, live.seq)
  t.equal(frames.filter(f => f.type === 'notification').length, 6, 'since=0 replays the whole entitled log')
  fromZero.close()
  c.close()
})

t.test('resume: complete:false when since is beyond lastSeq, or the epoch is another log', async t => {
  const h = await build(t)
  for (let i = 0; i < 3; i++) await publish(h, { category: 'dashboard', title: `n${i}` })
  const token = await h.token('alice')
  const ahead = await connect(h.ws, { token, query: { since: '10' } })
  const connected = await ahead.next()
  t.equal(connected.lastSeq, 3)
  t.same(await ahead.next(), { type: 'replayed', count: 0, complete: false })

  const other = await connect(h.ws, { token, query: { since: '1', epoch: 'some-other-log' } })
  t.equal((await other.next()).type, 'connected')
  t.same(await other.next(), { type: 'replayed', count: 0, complete: false }, 'nothing replayed from a foreign cursor')

  const same = await connect(h.ws, { token, query: { since: '1', epoch: connected.epoch } })
  await same.next()
  t.equal((await same.next()).notification.seq, 2)
  t.equal((await same.next()).notification.seq, 3)
  t.same(await same.next(), { type: 'replayed', count: 2, complete: true })
  ahead.close(); other.close(); same.close()
})

/** Asserts the frames after `connected` are: every seq in (since, last] exactly once, increasing, and one replayed frame. */
function assertGapless (t: Test, frames: Frame[], since: number, last: number): void {
  const seqs = frames.filter(f => f.type === 'notification').map(f => f.notification.seq as number)
  const expected = Array.from({ length: last - since }, (_, i) => since + 1 + i)
  const missing = expected.filter(s => !seqs.includes(s))
  const dupes = seqs.filter((s, i) => seqs.indexOf(s) !== i)
  t.strictSame(missing, [], 'no gap')
  t.strictSame(dupes, [], 'no duplicate')
  t.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), 'increasing order')
  t.equal(seqs.length, expected.length, 'exactly once each')
  const replayed = frames.filter(f => f.type === 'replayed')
  t.equal(replayed.length, 1, 'one replayed frame')
  const at = frames.findIndex(f => f.type === 'replayed')
  t.equal(replayed[0]?.count, frames.slice(0, at).filter(f => f.type === 'notification').length, 'replayed.count = notifications before it')
  t.equal(replayed[0]?.complete, true)
}

t.test('RACE: resume while publishes keep coming (in-process loop) loses and repeats nothing', async t => {
  const h = await build(t)
  const token = await h.token('alice')
  const since = 60
  let connectedSeen = false
  let publishedAfterConnected = 0
  const inFlight: Promise<unknown>[] = []
  let client: Promise<Client> | undefined
  // Publish without awaiting each, yielding to the event loop every few, until
  // at least 300 are out and at least 50 of them after the client's connected frame.
  for (let i = 1; i <= 3000; i++) {
    inFlight.push(h.app.notifications.publish({ category: 'dashboard', title: `race ${i}` }))
    if (connectedSeen) publishedAfterConnected++
    if (i === 120) {
      client = connect(h.ws, { token, query: { since: String(since) } })
      client.then(c => c.ws.once('message', () => { connectedSeen = true }), () => {})
    }
    if (i >= 300 && publishedAfterConnected >= 50) break
    if (i % 4 === 0) await sleep(1)
  }
  await Promise.all(inFlight)
  const last = await h.store.lastSeq()
  t.ok(publishedAfterConnected >= 50, 'publishes raced the resume')
  const c = await client!
  const connected = await c.next()
  t.equal(connected.type, 'connected')
  t.ok(connected.lastSeq > since && connected.lastSeq < last, `connected.lastSeq ${connected.lastSeq} is mid-stream`)
  const frames = await collectUntil(c, last)
  assertGapless(t, frames, since, last)
  await sleep(50)
  t.strictSame(c.pending().filter(f => f.type === 'notification'), [], 'nothing after the last')
  c.close()
})

t.test('RACE: resume while concurrent REST batches publish over HTTP', async t => {
  const h = await build(t)
  const token = await h.token('alice')
  const since = 40
  const stop = { now: false }
  let total = 0
  // Warm up the log so the replay has work to do.
  for (let i = 0; i < 80; i++) await h.app.notifications.publish({ category: 'dashboard', title: `warm ${i}` })
  total = 80
  const worker = async (w: number) => {
    for (let i = 0; i < 200 && !stop.now; i++) {
      await publishHttp(h, { category: i % 5 === 0 ? 'maintenance' : 'dashboard', title: `w${w} #${i}` })
      total++
    }
  }
  const workers = Promise.all([0, 1, 2, 3, 4, 5].map(worker))
  await sleep(5)
  const c = await connect(h.ws, { token, query: { since: String(since) } })
  const connected = await c.next()
  // Let the workers run on after the resume: 300 in all and 30 after connected (bounded by 80 + 6 × 200).
  const target = Math.max(300, total + 30)
  for (let i = 0; i < 1000 && total < target; i++) await sleep(5)
  stop.now = true
  await workers
  const last = await h.store.lastSeq()
  t.ok(connected.lastSeq < last, 'publishes continued after connected')
  const frames = await collectUntil(c, last)
  assertGapless(t, frames, since, last)
  c.close()
})

/** A memory store whose reads take a couple of event-loop turns, as a networked store's would: it widens every window of the resume. */
class SlowReadStore implements HistoryStore {
  readonly #inner = new MemoryStore()
  get epoch (): string { return this.#inner.epoch }
  async #slow<T> (read: () => Promise<T>): Promise<T> {
    await sleep(1)
    const result = await read()
    await sleep(1)
    return result
  }

  init () { return this.#inner.init() }
  append (draft: Draft, key?: string) { return this.#inner.append(draft, key) }
  appendMany (items: ReadonlyArray<{ draft: Draft, idempotencyKey?: string }>) { return this.#inner.appendMany(items) }
  lastSeq () { return this.#slow(() => this.#inner.lastSeq()) }
  prunedThrough () { return this.#slow(() => this.#inner.prunedThrough()) }
  query (q: HistoryQuery) { return this.#slow(() => this.#inner.query(q)) }
  unreadCount (user: User, categories: readonly string[], now: number) { return this.#slow(() => this.#inner.unreadCount(user, categories, now)) }
  markRead (userId: string, ids: readonly string[]) { return this.#inner.markRead(userId, ids) }
  markAllRead (userId: string, upTo: number) { return this.#inner.markAllRead(userId, upTo) }
  getMuted (userId: string) { return this.#slow(() => this.#inner.getMuted(userId)) }
  setMuted (userId: string, muted: readonly string[]) { return this.#inner.setMuted(userId, muted) }
  getMutedMany (userIds: readonly string[]) { return this.#slow(() => this.#inner.getMutedMany(userIds)) }
  idOfIdempotencyKey (key: string) { return this.#inner.idOfIdempotencyKey(key) }
  idOfCollapseKey (key: string) { return this.#inner.idOfCollapseKey(key) }
  revokeTokens (userId: string, cut: number, until: number) { return this.#inner.revokeTokens(userId, cut, until) }
  revokedThrough (userId: string, now: number) { return this.#slow(() => this.#inner.revokedThrough(userId, now)) }
  prune (now: number) { return this.#inner.prune(now) }
  ping () { return this.#inner.ping() }
  close () { return this.#inner.close() }
}

t.test('RACE: resume against a store with slow reads: publishes land between registration, query and replay', async t => {
  const h = await build(t, { store: new SlowReadStore() })
  const token = await h.token('alice')
  const since = 30
  for (let i = 0; i < 100; i++) await h.app.notifications.publish({ category: 'dashboard', title: `warm ${i}` })
  let stop = false
  const producer = (async () => {
    // Bounded: at most 2000 more, two per event-loop turn, until told to stop.
    for (let i = 0; i < 2000 && !stop; i++) {
      void h.app.notifications.publish({ category: i % 3 === 0 ? 'system' : 'dashboard', title: `live ${i}` })
      if (i % 2 === 1) await new Promise(resolve => setImmediate(resolve))
    }
  })()
  const c = await connect(h.ws, { token, query: { since: String(since) } })
  const frames: Frame[] = []
  const connected = await c.next(5000)
  t.equal(connected.type, 'connected')
  for (let i = 0; i < 5000; i++) {
    const f = await c.next(5000)
    frames.push(f)
    if (f.type === 'replayed') break
  }
  await sleep(20)
  stop = true
  await producer
  const last = await h.store.lastSeq()
  frames.push(...await collectUntil(c, last))
  const replayed = frames.find(f => f.type === 'replayed')!
  t.ok(since + replayed.count > connected.lastSeq, 'the replay reached past connected.lastSeq: publishes landed while it ran')
  t.ok(connected.lastSeq < last, 'and live ones followed')
  assertGapless(t, frames, since, last)
  c.close()
})

t.test('bad input: exact error code, and the connection stays open', async t => {
  const h = await build(t)
  const c = await connect(h.ws, { token: await h.token('alice') })
  await c.next()
  const stillOpen = async (label: string) => {
    const pong = await c.request({ type: 'ping' })
    t.equal(pong.type, 'reply', `${label}: a ping afterwards is answered`)
  }
  const expectError = async (label: string, send: () => void, code: string, id?: string) => {
    send()
    const err = await c.nextOf('error')
    t.equal(err.code, code, `${label}: ${code}`)
    if (id === undefined) t.notOk('id' in err, `${label}: no id`)
    else t.equal(err.id, id, `${label}: echoes the id`)
    t.type(err.message, 'string')
    await stillOpen(label)
  }
  await expectError('not JSON', () => c.send('{not json'), 'bad_request')
  await expectError('binary frame', () => c.ws.send(Buffer.from(JSON.stringify({ type: 'ping', id: 'b' })), { binary: true }), 'bad_request')
  await expectError('unknown type', () => c.send({ type: 'launch_missiles', id: 'u1' }), 'unknown_type', 'u1')
  await expectError('type __proto__', () => c.send('{"type":"__proto__","id":"u2"}'), 'unknown_type', 'u2')
  await expectError('type toString', () => c.send({ type: 'toString', id: 'u3' }), 'unknown_type', 'u3')
  await expectError('type constructor', () => c.send({ type: 'constructor', id: 'u4' }), 'unknown_type', 'u4')
  await expectError('wrong field type', () => c.send({ type: 'subscribe_category', id: 'w1', categories: 'dashboard' }), 'bad_request', 'w1')
  await expectError('history limit 0', () => c.send({ type: 'request_notification_history', id: 'l0', limit: 0 }), 'bad_request', 'l0')
  await expectError('history limit 101', () => c.send({ type: 'request_notification_history', id: 'l101', limit: 101 }), 'bad_request', 'l101')
  await expectError('__proto__ key', () => c.send('{"type":"ping","id":"pk","__proto__":{"polluted":true}}'), 'bad_request')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution')
  await expectError('constructor key', () => c.send('{"type":"ping","id":"ck","constructor":{"prototype":{"polluted":true}}}'), 'bad_request')
  await expectError('over-long id', () => c.send({ type: 'ping', id: 'x'.repeat(65) }), 'bad_request')
  await expectError('extra field', () => c.send({ type: 'ping', id: 'e1', extra: 1 }), 'bad_request', 'e1')
  await expectError('not an object', () => c.send('[1,2]'), 'bad_request')
  const ok = await c.request({ type: 'ping', id: 'x'.repeat(64) })
  t.equal(ok.id, 'x'.repeat(64), 'a 64-char id is fine')
  c.close()
})

t.test('a frame over 64 KiB closes the connection with 1009', async t => {
  const h = await build(t)
  const c = await connect(h.ws, { token: await h.token('alice') })
  await c.next()
  const small = await c.request({ type: 'ping', id: 'fits' })
  t.equal(small.type, 'reply')
  c.send(JSON.stringify({ type: 'ping', id: 'big', pad: 'x'.repeat(64 * 1024) }))
  const closed = await within(c.closed, 3000, 'close')
  t.equal(closed.code, 1009)
})

t.test('auth before upgrade: 401 / 403 with Fastify JSON errors, no socket opened', async t => {
  const h = await build(t)
  const check = async (label: string, opts: Parameters<typeof refusedUpgrade>[1], status: number, error: string) => {
    const r = await refusedUpgrade(h.ws, opts)
    t.equal(r.statusCode, status, `${label}: HTTP ${status}`)
    t.equal(r.body.statusCode, status, `${label}: body statusCode`)
    t.equal(r.body.error, error, `${label}: body error`)
    t.type(r.body.code, 'string', `${label}: body code`)
    t.type(r.body.message, 'string', `${label}: body message`)
    t.notOk(r.opened, `${label}: no socket`)
    return r
  }
  await check('no token', {}, 401, 'Unauthorized')
  await check('empty ?token=', { query: { token: '' } }, 401, 'Unauthorized')
  const wrongSecret = await new SignJWT({ role: 'user' }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice')
    .setExpirationTime('1h').sign(new TextEncoder().encode('another-secret-0123456789'))
  await check('bad signature', { token: wrongSecret }, 401, 'Unauthorized')
  await check('bad signature via ?token=', { query: { token: wrongSecret } }, 401, 'Unauthorized')
  await check('expired', { token: await h.token('alice', 'user', -60) }, 401, 'Unauthorized')
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'alice', role: 'admin', exp: Math.floor(Date.now() / 1000) + 3600 })}.`
  await check('alg none', { token: none }, 401, 'Unauthorized')
  const hs512 = await new SignJWT({ role: 'user' }).setProtectedHeader({ alg: 'HS512' }).setSubject('alice')
    .setExpirationTime('1h').sign(new TextEncoder().encode(SECRET))
  await check('alg HS512 with the right secret', { token: hs512 }, 401, 'Unauthorized')
  await check('garbage', { token: 'not.a.jwt' }, 401, 'Unauthorized')
  const role = await check('role outside the policy', { token: await h.token('mallory', 'superuser') }, 403, 'Forbidden')
  t.match(role.body.message, /superuser/)
  t.equal(h.app.notifications.stats().connections, 0, 'no session was ever registered')
})

t.test('token expiry: close 4001 at exp; refresh extends it; a refresh for another user closes 4001', async t => {
  const h = await build(t)
  const expOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()).exp as number
  const tokenE = await h.token('alice', 'user', 2)
  const expiring = await connect(h.ws, { token: tokenE })
  await expiring.next()

  const tokenA = await h.token('alice', 'user', 2)
  const expA = expOf(tokenA)
  const refreshed = await connect(h.ws, { token: tokenA })
  await refreshed.next()
  const longer = await h.token('alice', 'user', '1h')
  const longerExp = expOf(longer)
  const r = await refreshed.request({ type: 'refresh', id: 'rf', token: longer })
  t.equal(r.type, 'reply')
  t.equal(r.id, 'rf')
  t.equal(r.result.expiresAt, new Date(longerExp * 1000).toISOString())

  const hijack = await connect(h.ws, { token: await h.token('alice', 'user', '1h') })
  await hijack.next()
  hijack.send({ type: 'refresh', id: 'other', token: await h.token('bob', 'user', '1h') })
  const hijackClosed = await within(hijack.closed, 3000, 'close')
  t.equal(hijackClosed.code, 4001, 'a refresh token for another user closes with 4001')
  t.notOk(hijack.pending().some(f => f.type === 'reply'), 'and gets no reply')

  const closed = await within(expiring.closed, 4000, 'close at expiry')
  t.equal(closed.code, 4001, 'closed with 4001')
  t.ok(Date.now() >= expOf(tokenE) * 1000 - 20, 'not before the token expired')

  // The refreshed connection outlives the first token's expiry.
  const wait = expA * 1000 + 400 - Date.now()
  if (wait > 0) await sleep(wait)
  const pong = await refreshed.request({ type: 'ping', id: 'alive' })
  t.equal(pong.type, 'reply', 'refreshed connection still answers after the first expiry')
  t.equal(refreshed.ws.readyState, WebSocket.OPEN)

  const bad = await refreshed.request({ type: 'refresh', id: 'bad', token: 'not.a.jwt' })
  t.equal(bad.type, 'error')
  t.equal(bad.code, 'bad_request', 'an invalid refresh token is a bad request, the connection stays')
  t.equal((await refreshed.request({ type: 'ping' })).type, 'reply')
  refreshed.close()
})

t.test('shutdown: app.close() closes open connections with 1001 and resolves', async t => {
  const h = await build(t)
  const a = await connect(h.ws, { token: await h.token('alice') })
  const b = await connect(h.ws, { token: await h.token('bob', 'admin') })
  await a.next(); await b.next()
  const closing = h.app.close()
  await within(closing, 5000, 'app.close()')
  t.pass('app.close() resolves')
  t.equal((await a.closed).code, 1001)
  t.equal((await b.closed).code, 1001)
  t.equal(h.app.notifications.stats().connections, 0)
})
