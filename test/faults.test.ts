// Faults: a server restart in the middle of a stream (SQLite), a client that
// drops out in the middle of a burst, a reconnect storm of 1,000 real clients
// resuming at once, and a store that throws. In each, every accepted
// notification reaches every entitled client exactly once, in seq order.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { MemoryStore } from '../src/stores/memory-store.js'
import type { Draft, HistoryQuery } from '../src/stores/history-store.js'
import { API_KEY, build, connect, sleep, within, type Client, type Frame } from './helper.js'

/** Storm size, quoted in docs/protocol.md ("How we test this"). */
const STORM_CLIENTS = 1000
const STORM_BATCH = 100

/** Reads notification seqs (and the replayed frame) until `last` arrives. */
async function seqsUntil (c: Client, last: number, ms = 15_000): Promise<{ seqs: number[], replayed: Frame | undefined }> {
  const seqs: number[] = []
  let replayed: Frame | undefined
  const deadline = Date.now() + ms
  for (let i = 0; i < 20_000; i++) {
    const f = await c.next(Math.max(1, deadline - Date.now()))
    if (f.type === 'replayed') replayed = f
    if (f.type !== 'notification') continue
    seqs.push(f.notification.seq)
    if (f.notification.seq >= last) break
  }
  return { seqs, replayed }
}

const ascendingUnique = (xs: number[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]!)

t.test('SQLite: the server restarts in the middle of a burst; the resuming client gets exactly what it missed', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'un-faults-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = `sqlite:${join(dir, 'n.db')}`
  const first = await build(t, { store })
  const c = await connect(first.ws, { token: await first.token('alice', 'user') })
  const connected = await c.next()
  const epoch = connected.epoch as string

  // A burst of publishes; the server shuts down part-way through it.
  const accepted: number[] = []
  let closing: Promise<void> | undefined
  for (let i = 0; i < 400; i++) {
    if (i === 150) closing = first.app.close()
    try {
      const { notification } = await first.app.notifications.publish({ category: i % 2 === 0 ? 'dashboard' : 'system', title: `burst ${i}` })
      accepted.push(notification.seq)
    } catch (err) {
      t.equal((err as { code?: string }).code, 'UN_UNAVAILABLE', 'a publish during shutdown is refused, not half-done')
      break
    }
  }
  await closing
  const closed = await c.closed
  t.equal(closed.code, 1001, 'the client was told the server is going away')
  const seen = c.pending().filter(f => f.type === 'notification').map(f => f.notification.seq as number)
  t.ok(accepted.length >= 150, `${accepted.length} publishes were accepted before the shutdown`)
  t.ok(ascendingUnique(seen), 'what it saw live was in order, without duplicates')
  const lastSeen = seen.length > 0 ? seen[seen.length - 1]! : connected.lastSeq as number

  const second = await build(t, { store })
  const more: number[] = []
  for (let i = 0; i < 50; i++) more.push((await second.app.notifications.publish({ category: 'user', title: `after restart ${i}` })).notification.seq)
  const resumed = await connect(second.ws, { token: await second.token('alice', 'user'), query: { since: String(lastSeen), epoch } })
  const hello = await resumed.next()
  t.equal(hello.epoch, epoch, 'same log, same epoch after the restart')
  const live: number[] = []
  for (let i = 0; i < 20; i++) live.push((await second.app.notifications.publish({ category: 'maintenance', title: `live ${i}` })).notification.seq)
  const expected = [...accepted, ...more, ...live].filter(s => s > lastSeen)
  const got = await seqsUntil(resumed, expected[expected.length - 1]!)
  t.same(got.seqs, expected, `exactly the ${expected.length} notifications after seq ${lastSeen}, once each, in order`)
  t.same(got.replayed && { count: got.replayed.count, complete: got.replayed.complete }, { count: accepted.filter(s => s > lastSeen).length + more.length, complete: true })
  t.ok(new Set([...seen, ...got.seqs]).size === seen.length + got.seqs.length, 'nothing seen twice across the restart')
  resumed.close()
})

t.test('a client that disconnects in the middle of a burst resumes with exactly the rest, while the burst goes on', async t => {
  const h = await build(t)
  const c = await connect(h.ws, { token: await h.token('bob', 'user') })
  const hello = await c.next()
  const TOTAL = 600
  const published: number[] = []
  const burst = (async () => {
    for (let b = 0; b < TOTAL / 20; b++) {
      const outcomes = await h.app.notifications.publishMany(Array.from({ length: 20 }, (_v, i) => ({ category: 'dashboard', title: `b${b}-${i}` })))
      for (const o of outcomes) published.push(o.notification.seq)
      await sleep(2)
    }
  })()
  // Drop out after the 100th notification, without a close handshake.
  const seen: number[] = []
  for (let i = 0; i < 100; i++) seen.push((await c.nextOf('notification', 5000)).notification.seq)
  c.ws.terminate()
  const since = seen[seen.length - 1]!
  const resumed = await connect(h.ws, { token: await h.token('bob', 'user'), query: { since: String(since), epoch: hello.epoch } })
  await burst
  const last = published[published.length - 1]!
  const got = await seqsUntil(resumed, last)
  t.same(got.seqs, published.filter(s => s > since), `the ${published.filter(s => s > since).length} after the cursor, each once, in order`)
  t.equal(got.replayed?.complete, true)
  t.same([...seen, ...got.seqs], published, `all ${TOTAL} across the two connections, nothing lost, nothing repeated`)
  resumed.close()
})

t.test(`reconnect storm: ${STORM_CLIENTS} clients resume at once, each gets exactly its missed notifications`, async t => {
  const h = await build(t, { limits: { maxConnectionsPerUser: 5 } })
  const users = Array.from({ length: STORM_CLIENTS }, (_v, i) => `storm${i}`)
  const tokens = await Promise.all(users.map(u => h.token(u, 'user')))
  // Everyone connects once and notes the cursor.
  let cursor = 0
  let epoch = ''
  for (let b = 0; b < STORM_CLIENTS; b += STORM_BATCH) {
    const batch = await Promise.all(tokens.slice(b, b + STORM_BATCH).map(token => connect(h.ws, { token })))
    for (const c of batch) {
      const f = await c.next(10_000)
      cursor = f.lastSeq
      epoch = f.epoch
      c.ws.terminate()
    }
  }
  for (let i = 0; i < 200 && h.app.notifications.sizes().registry.connections > 0; i++) await sleep(20)
  t.equal(h.app.notifications.sizes().registry.connections, 0, 'all gone')

  // While they are away: one notification per user, addressed to that user only, plus three for everyone.
  const broadcast: number[] = []
  const mine = new Map<string, number>()
  broadcast.push((await h.app.notifications.publish({ category: 'system', title: 'for all, 1' })).notification.seq)
  for (let b = 0; b < STORM_CLIENTS; b += 100) {
    const outcomes = await h.app.notifications.publishMany(users.slice(b, b + 100).map(u => ({ category: 'user', title: `for ${u}`, audience: { users: [u] } })))
    outcomes.forEach((o, i) => mine.set(users[b + i]!, o.notification.seq))
  }
  broadcast.push((await h.app.notifications.publish({ category: 'dashboard', title: 'for all, 2' })).notification.seq)
  broadcast.push((await h.app.notifications.publish({ category: 'admin', title: 'admins only: nobody here' })).notification.seq)
  const adminOnly = broadcast.pop()!

  // The storm: everyone reconnects with the cursor at once, while more is published.
  const racing: number[] = []
  const connecting = Promise.all(tokens.map(token => connect(h.ws, { token, query: { since: String(cursor), epoch } })))
  for (let i = 0; i < 5; i++) {
    racing.push((await h.app.notifications.publish({ category: 'maintenance', title: `during the storm ${i}` })).notification.seq)
    await sleep(5)
  }
  const clients = await within(connecting, 60_000, 'the storm to connect')
  const final = (await h.app.notifications.publish({ category: 'system', title: 'final' })).notification.seq
  const results = await Promise.all(clients.map(c => seqsUntil(c, final, 60_000)))
  let exact = 0
  let complete = 0
  for (const [i, r] of results.entries()) {
    const expected = [...broadcast, mine.get(users[i]!)!, ...racing, final].sort((a, b) => a - b)
    if (JSON.stringify(r.seqs) === JSON.stringify(expected)) exact++
    else t.same(r.seqs, expected, `${users[i]} got exactly its notifications`)
    if (r.replayed?.complete === true) complete++
  }
  t.equal(exact, STORM_CLIENTS, `all ${STORM_CLIENTS} clients got exactly their ${broadcast.length + 1 + racing.length + 1} notifications, in order`)
  t.equal(complete, STORM_CLIENTS, 'every replay was complete')
  t.notOk(results.some(r => r.seqs.includes(adminOnly)), 'nobody got what their role may not see')
  for (const c of clients) c.ws.terminate()
})

class FlakyStore extends MemoryStore {
  failQuery = false
  failAppend = false
  failMark = false
  override async query (q: HistoryQuery) {
    if (this.failQuery) throw new Error('disk on fire (query)')
    return super.query(q)
  }

  override async unreadCount (...args: Parameters<MemoryStore['unreadCount']>) {
    if (this.failQuery) throw new Error('disk on fire (unreadCount)')
    return super.unreadCount(...args)
  }

  override async append (draft: Draft, idempotencyKey?: string) {
    if (this.failAppend) throw new Error('disk on fire (append)')
    return super.append(draft, idempotencyKey)
  }

  override async appendMany (items: ReadonlyArray<{ draft: Draft, idempotencyKey?: string }>) {
    if (this.failAppend) throw new Error('disk on fire (appendMany)')
    return super.appendMany(items)
  }

  override async markRead (userId: string, ids: readonly string[]) {
    if (this.failMark) throw new Error('disk on fire (markRead)')
    return super.markRead(userId, ids)
  }

  override async markAllRead (userId: string, upTo: number) {
    if (this.failMark) throw new Error('disk on fire (markAllRead)')
    return super.markAllRead(userId, upTo)
  }
}

t.test('a store that throws: error internal, the connection stays open, nothing half-written', async t => {
  const store = new FlakyStore()
  const h = await build(t, { store })
  const c = await connect(h.ws, { token: await h.token('alice', 'user') })
  await c.next()
  const first = await h.app.notifications.publish({ category: 'system', title: 'before the fault' })
  t.equal((await c.nextOf('notification')).notification.id, first.notification.id)

  store.failQuery = true
  const hist = await c.request({ type: 'request_notification_history', id: 'h1' })
  t.same({ type: hist.type, id: hist.id, code: hist.code }, { type: 'error', id: 'h1', code: 'internal' })
  t.notMatch(hist.message, /disk on fire/, 'the store error is not leaked to the client')
  t.equal((await c.request({ type: 'ping', id: 'p1' })).type, 'reply', 'the connection stays open')

  store.failMark = true
  const mark = await c.request({ type: 'mark_read', id: 'm1', all: true })
  t.same({ type: mark.type, id: mark.id, code: mark.code }, { type: 'error', id: 'm1', code: 'internal' })

  store.failAppend = true
  const rest = await h.app.inject({ method: 'POST', url: '/api/notifications', headers: { authorization: `Bearer ${API_KEY}` }, payload: { category: 'system', title: 'lost?' } })
  t.equal(rest.statusCode, 500, 'a publish the store refused is a 500')
  t.equal(rest.json().statusCode, 500)
  const batch = await h.app.inject({ method: 'POST', url: '/api/notifications/batch', headers: { authorization: `Bearer ${API_KEY}` }, payload: { notifications: [{ category: 'system', title: 'a' }, { category: 'system', title: 'b' }] } })
  t.equal(batch.statusCode, 500)
  await t.rejects(h.app.notifications.publish({ category: 'system', title: 'in-process' }), /disk on fire/)
  t.equal(c.ws.readyState, c.ws.OPEN, 'the open connection survived every failure')
  // A new connection cannot be started without the store: 1011.
  const during = await connect(h.ws, { token: await h.token('bob', 'user') })
  t.equal((await within(during.closed, 3000, 'close')).code, 1011, 'a session that cannot start closes with 1011')

  store.failQuery = false
  store.failMark = false
  store.failAppend = false
  t.equal(await store.lastSeq(), 1, 'nothing was stored by the failed publishes')
  const after = await h.app.notifications.publish({ category: 'system', title: 'after the fault' })
  t.equal(after.notification.seq, 2, 'seq continues without a gap')
  const next = await c.nextOf('notification')
  t.equal(next.notification.id, after.notification.id, 'the next notification the client sees is the one after the fault: nothing half-published')
  const ok = await c.request({ type: 'request_notification_history', id: 'h2' })
  t.same(ok.result.notifications.map((n: { title: string }) => n.title), ['after the fault', 'before the fault'])
  const unread = await c.request({ type: 'mark_read', id: 'm2', all: true })
  t.same(unread.result, { unread: 0 })
  c.close()
})

t.test('retention by age (on a timer) and by count: a cursor it no longer covers resumes with complete:false', async t => {
  const aged = await build(t, { retention: { maxAgeMs: 200 } })
  await aged.app.notifications.publish({ category: 'system', title: 'old' })
  await aged.app.notifications.publish({ category: 'system', title: 'old too' })
  // The retention timer's run is the event: wait for what it does, not for a guessed time.
  const pruned = new Promise<void>(resolve => {
    const prune = aged.store.prune.bind(aged.store)
    aged.store.prune = async now => {
      await prune(now)
      if (await aged.store.prunedThrough() >= 2) resolve()
    }
  })
  await within(pruned, 5000, 'the age-based retention run')
  t.equal(await aged.store.prunedThrough(), 2, 'the age limit pruned a quiet log')
  const a = await connect(aged.ws, { token: await aged.token('alice') })
  const helloA = await a.next()
  const late = await connect(aged.ws, { token: await aged.token('alice'), query: { since: '1', epoch: helloA.epoch } })
  await late.next()
  t.same(await late.nextOf('replayed'), { type: 'replayed', count: 0, complete: false })
  a.close(); late.close()

  const counted = await build(t, { retention: { maxCount: 5 } })
  for (let i = 0; i < 8; i++) await counted.app.notifications.publish({ category: 'system', title: `n${i}` })
  const gone = await connect(counted.ws, { token: await counted.token('bob'), query: { since: '2' } })
  await gone.next()
  const partial = await seqsUntil(gone, 8)
  t.same(partial.seqs, [4, 5, 6, 7, 8], 'what is left is replayed')
  t.same(await gone.nextOf('replayed'), { type: 'replayed', count: 5, complete: false }, 'but flagged incomplete: seq 3 is gone')
  const covered = await connect(counted.ws, { token: await counted.token('bob'), query: { since: '3' } })
  await covered.next()
  const full = await seqsUntil(covered, 8)
  t.same(full.seqs, [4, 5, 6, 7, 8])
  t.same(await covered.nextOf('replayed'), { type: 'replayed', count: 5, complete: true }, 'a cursor retention still covers is complete')
  gone.close(); covered.close()
})
