import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { pino } from 'pino'
import t from 'tap'
import { LocalBroker } from '../src/brokers/local-broker.js'
import { NotificationManager } from '../src/manager.js'
import { copyDraft, dataJson, keepPieces, liveFrame, stamp, storedBody } from '../src/notification-json.js'
import { notificationFrame } from '../src/protocol.js'
import type { Connection } from '../src/registry.js'
import type { PublishInput, StoredNotification } from '../src/schemas.js'
import { toClient, type Draft } from '../src/stores/history-store.js'
import { MemoryStore } from '../src/stores/memory-store.js'
import { SqliteStore } from '../src/stores/sqlite-store.js'

// What the stored body and the live frame were before they were cut from shared pieces.
const bodyBefore = (d: Draft): string => {
  const { audience: _audience, ...pub } = d
  return JSON.stringify(pub)
}
const frameBefore = (n: StoredNotification): string => notificationFrame(toClient(n, false))

/** Whose toJSON depends on its key, as JSON.stringify calls it inside an object. */
class Keyed {
  toJSON (key: string) { return `member ${key}` }
}

const inputs: Array<[string, PublishInput]> = [
  ['bare', { category: 'system', title: 'hello' }],
  ['every optional field', {
    category: 'system',
    type: 'warning',
    priority: 'high',
    title: 'disk',
    message: 'almost full',
    data: { used: 0.97, path: '/var', nested: { list: [1, 'two', null, { three: true }], empty: {} } },
    action: { label: 'Open', url: 'https://example.com/a?b=c&d="e"' },
    expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    collapseKey: 'disk-var',
    audience: { users: ['alice'] }
  }],
  ['unicode and escapes', {
    category: 'system',
    title: 'Grüße 😀 "quoted" \\ back\nslash\t\u2028',
    message: 'lone \ud800 surrogate, control \u0001',
    data: { 'ключ 🔑': 'значение', '"k"': '\u0000', emoji: '👩‍👩‍👧' }
  }],
  ['data with toJSON values', {
    category: 'system',
    title: 'dates',
    data: { at: new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)), keyed: new Keyed(), gone: undefined, fn: () => 1 } as unknown as Record<string, unknown>
  }],
  ['only action', { category: 'system', title: 'x', action: { label: 'Go', url: 'https://example.com/' } }],
  ['only expiresAt', { category: 'system', title: 'x', expiresAt: new Date(Date.now() + 60_000).toISOString() }],
  ['only collapseKey', { category: 'system', title: 'x', collapseKey: 'k1', audience: { users: ['alice', 'bob'], roles: ['admin'] } }],
  ['empty data', { category: 'system', title: 'x', data: {}, audience: { roles: ['user'] } }]
]

const dir = mkdtempSync(join(tmpdir(), 'un-notification-json-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

t.test('a published notification: the stored body and the frame are byte for byte what JSON.stringify gave', async t => {
  const path = join(dir, 'bodies.db')
  const store = new SqliteStore(path)
  const manager = new NotificationManager({ store, broker: new LocalBroker(), logger: pino({ level: 'silent' }) })
  await manager.start()
  t.teardown(() => manager.close())
  const frames = new Map<number, string>()
  const conn: Connection = {
    id: 'c1',
    user: { id: 'alice', role: 'user' },
    subscriptions: new Set(['system']),
    legacy: false,
    deliver (seq, frame) { frames.set(seq, frame.text) },
    deliverLegacy () {},
    deliverFrame () {},
    applyMuted () {},
    close () {}
  }
  manager.registry.add(conn)
  const published: StoredNotification[] = []
  for (const [, input] of inputs) published.push((await manager.publish(input)).notification)
  // The same through the batch route's path, in one transaction.
  // (Other collapse keys: the first round's rows stay.)
  const many = await manager.publishMany(inputs.map(([, input]) => input.collapseKey === undefined ? input : { ...input, collapseKey: `${input.collapseKey}-2` }))
  published.push(...many.map(r => r.notification))
  await new Promise<void>(resolve => setImmediate(resolve))

  const db = new Database(path, { readonly: true })
  t.teardown(() => db.close())
  const body = db.prepare('SELECT body FROM notifications WHERE seq = ?').pluck()
  for (const [i, n] of published.entries()) {
    const name = inputs[i % inputs.length]![0]
    // The notification the store returned has the keys of { ...draft, seq }, in that order.
    const { seq, ...draft } = n
    t.same(Object.keys(n), [...Object.keys(draft), 'seq'], `${name}: keys of the stored notification`)
    t.equal(body.get(seq), bodyBefore(draft), `${name}: stored body`)
    if (frames.has(seq)) t.equal(frames.get(seq), frameBefore(n), `${name}: frame`)
  }
  // Every notification whose audience admits alice reached her, each with its frame checked above.
  t.equal(frames.size, 16)
  // The stored body still reads back as the same notification (replay and history parse it).
  const page = await store.query({ user: { id: 'alice', role: 'user' }, categories: ['system'], order: 'asc', limit: 100, now: Date.now() })
  const first = page.find(p => p.seq === published[1]!.seq)!
  t.same(first, toClient(published[1]!, false))
})

t.test('through the memory store (which copies a batch\'s drafts first) the frames are the same bytes', async t => {
  const manager = new NotificationManager({ store: new MemoryStore(), broker: new LocalBroker(), logger: pino({ level: 'silent' }) })
  await manager.start()
  t.teardown(() => manager.close())
  const frames = new Map<number, string>()
  manager.registry.add({
    id: 'c1', user: { id: 'alice', role: 'user' }, subscriptions: new Set(['system']), legacy: false,
    deliver (seq, frame) { frames.set(seq, frame.text) }, deliverLegacy () {}, deliverFrame () {}, applyMuted () {}, close () {}
  })
  const published = [
    ...(await manager.publishMany(inputs.map(([, input]) => input))).map(r => r.notification),
    (await manager.publish(inputs[1]![1])).notification
  ]
  await new Promise<void>(resolve => setImmediate(resolve))
  t.equal(frames.size, 9)
  for (const n of published) t.equal(frames.get(n.seq), frameBefore(n), `frame of ${n.seq}`)
})

t.test('pieces: each shape against JSON.stringify, and the same without them', async t => {
  for (const [name, input] of inputs) {
    // A draft as the manager builds it: required fields, then the optional ones present, then the audience.
    const draft: Draft = {
      id: '0190c0de-0000-7000-8000-000000000000',
      category: input.category,
      type: input.type ?? 'info',
      priority: input.priority ?? 'normal',
      title: input.title,
      message: input.message ?? '',
      createdAt: new Date().toISOString(),
      source: 'api'
    }
    if (input.data !== undefined) draft.data = input.data
    if (input.action !== undefined) draft.action = input.action
    if (input.expiresAt !== undefined) draft.expiresAt = input.expiresAt
    if (input.collapseKey !== undefined) draft.collapseKey = input.collapseKey
    if (input.audience !== undefined) draft.audience = input.audience
    const plain = structuredClone({ ...draft, data: draft.data === undefined ? undefined : JSON.parse(JSON.stringify(draft.data)) as Record<string, unknown> })
    if (plain.data === undefined) delete plain.data

    keepPieces(draft, input.data === undefined ? undefined : dataJson(input.data))
    const expectedBody = bodyBefore(draft)
    t.equal(storedBody(draft), expectedBody, `${name}: body`)
    const n = stamp(draft, 12345)
    t.equal(n, draft, `${name}: a prepared draft becomes the stored notification`)
    t.same(Object.keys(n), [...Object.keys(draft).filter(k => k !== 'seq'), 'seq'], `${name}: seq last`)
    t.equal(liveFrame(n), frameBefore(n), `${name}: frame`)

    // A draft the manager did not prepare (another caller, a message read back from Redis): JSON.stringify itself.
    t.equal(storedBody(plain as Draft), bodyBefore(plain as Draft), `${name}: body without pieces`)
    const copy = stamp(plain as Draft, 7)
    t.not(copy, plain, `${name}: an unprepared draft is copied`)
    t.notOk('seq' in plain, `${name}: and left as it was`)
    t.equal(liveFrame(copy), frameBefore(copy), `${name}: frame without pieces`)
  }
})

t.test('dataJson is the member as it sits in the object, or undefined when JSON leaves it out', async t => {
  t.equal(dataJson({ a: 1 }), '{"a":1}')
  t.equal(dataJson(new Keyed()), '"member data"')
  t.equal(dataJson(() => 1), undefined)
  t.equal(dataJson(undefined), undefined)
  // No pieces for a draft whose data JSON leaves out: both outputs fall back to JSON.stringify.
  const draft = { id: 'x', category: 'system', type: 'info', priority: 'normal', title: 't', message: '', createdAt: 'c', source: 's', data: (() => 1) as unknown as Record<string, unknown> } satisfies Draft
  keepPieces(draft, undefined)
  t.equal(storedBody(draft), bodyBefore(draft))
  t.not(stamp(draft, 1), draft)
  // A copy of a prepared draft keeps its pieces; a copy of another stays without.
  const prepared: Draft = { id: 'y', category: 'system', type: 'info', priority: 'normal', title: 't', message: '', createdAt: 'c', source: 's' }
  keepPieces(prepared, undefined)
  const copy = copyDraft(prepared)
  t.not(copy, prepared)
  t.equal(stamp(copy, 2), copy, 'the copy is prepared too')
  t.not(stamp(copyDraft(draft), 3), draft)
})
