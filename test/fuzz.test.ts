// Property-based fuzz of client frames (fast-check): whatever a client sends,
// the process stays up, every frame the server sends back is a valid server
// frame, and a valid request still works afterwards.
import t from 'tap'
import fc from 'fast-check'
import { CLIENT_FRAME_TYPES, SERVER_FRAME_TYPES } from '../src/protocol.js'
import { build, connect, type Client, type Frame } from './helper.js'

/** Frames fuzzed per run, quoted in docs/protocol.md ("How we test this"). */
const FRAMES = 600
const ERROR_CODES = new Set(['bad_request', 'unknown_type', 'forbidden', 'rate_limited', 'internal'])
const CATEGORIES = ['system', 'dashboard', 'admin', 'health', 'maintenance', 'security', 'user', 'billing', '__proto__']

function isValidServerFrame (f: Frame): boolean {
  if (!(SERVER_FRAME_TYPES as readonly string[]).includes(f.type)) return false
  if (f.type === 'reply') return typeof f.result === 'object' && f.result !== null && (f.id === undefined || typeof f.id === 'string')
  if (f.type === 'error') return ERROR_CODES.has(f.code) && typeof f.message === 'string' && (f.id === undefined || typeof f.id === 'string')
  if (f.type === 'notification') return typeof f.notification?.seq === 'number' && !('audience' in f.notification)
  return true
}

const anyValue = fc.oneof(
  fc.constant(null), fc.boolean(), fc.integer(), fc.double(), fc.string({ maxLength: 80 }),
  fc.array(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom(...CATEGORIES), fc.integer()), { maxLength: 80 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 4 })
)
const fieldName = fc.constantFrom('id', 'categories', 'limit', 'before', 'unreadOnly', 'ids', 'all', 'token', 'muted', 'type', '__proto__', 'constructor', 'extra')

/** A frame shaped like a client frame, with random fields and values. */
const shapedFrame = fc.record({
  type: fc.oneof(fc.constantFrom(...CLIENT_FRAME_TYPES), fc.constantFrom('__proto__', 'toString', 'constructor', 'connected', 'error'), fc.string({ maxLength: 20 })),
  fields: fc.dictionary(fieldName, anyValue, { maxKeys: 5 })
}).map(({ type, fields }) => {
  // Build the text by hand so that __proto__ and constructor really appear as keys.
  const parts = [`"type":${JSON.stringify(type)}`, ...Object.entries(fields).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`)]
  return `{${parts.join(',')}}`
})

/** A valid frame with one byte changed, cut short, or duplicated. */
const validFrames = [
  '{"type":"subscribe_category","id":"a","categories":["system"]}',
  '{"type":"unsubscribe_category","id":"b","categories":["dashboard"]}',
  '{"type":"request_notification_history","id":"c","limit":3,"categories":["system"]}',
  '{"type":"mark_read","id":"d","all":true}',
  '{"type":"ping","id":"e"}',
  '{"type":"refresh","id":"f","token":"a.b.c"}',
  '{"type":"set_preferences","id":"g","muted":["maintenance"]}'
]
const mutatedFrame = fc.record({
  base: fc.constantFrom(...validFrames),
  at: fc.nat(),
  ch: fc.string({ minLength: 1, maxLength: 3 }),
  how: fc.constantFrom('replace', 'truncate', 'insert', 'double')
}).map(({ base, at, ch, how }) => {
  const i = at % base.length
  if (how === 'truncate') return base.slice(0, i)
  if (how === 'insert') return base.slice(0, i) + ch + base.slice(i)
  if (how === 'double') return base + base
  return base.slice(0, i) + ch + base.slice(i + 1)
})

const clientFrame = fc.oneof(
  { weight: 4, arbitrary: shapedFrame },
  { weight: 3, arbitrary: mutatedFrame },
  { weight: 2, arbitrary: fc.json({ maxDepth: 4 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) }
)

/** Sends `raw`, then a ping with a fresh id; returns every frame that arrived before the ping's reply. */
async function roundTrip (c: Client, raw: string, n: number): Promise<Frame[]> {
  c.send(raw)
  const id = `fuzz-ping-${n}`
  c.send({ type: 'ping', id })
  const out: Frame[] = []
  for (let i = 0; i < 50; i++) {
    const f = await c.next(5000)
    if (f.type === 'reply' && f.id === id) return out
    out.push(f)
  }
  throw new Error('no ping reply')
}

t.test(`fuzz: ${FRAMES} random client frames; every reply is a valid server frame and the connection keeps working`, async t => {
  const h = await build(t, { limits: { badFramesPerMinute: 1_000_000, requestsPerSecond: 1_000_000, requestBurst: 1_000_000 } })
  const token = await h.token('fuzzer', 'user')
  const c = await connect(h.ws, { token })
  await c.next()
  await h.app.notifications.publish({ category: 'system', title: 'something to list' })
  let n = 0
  let invalid: { raw: string, frames: Frame[] } | undefined
  let errors = 0
  await fc.assert(fc.asyncProperty(clientFrame, async raw => {
    n++
    const frames = await roundTrip(c, raw, n)
    errors += frames.filter(f => f.type === 'error').length
    if (!frames.every(isValidServerFrame) || frames.length > 2) {
      invalid = { raw, frames }
      return false
    }
    return true
  }), { numRuns: FRAMES, seed: 20261125, endOnFailure: true })
  t.equal(n, FRAMES, `${FRAMES} frames sent`)
  t.equal(invalid, undefined, 'every server frame was valid, at most one answer per frame (plus a notification)')
  t.ok(errors > FRAMES / 3, `most fuzzed frames were refused with an error frame (${errors})`)
  t.ok(h.app.server.listening, 'the server is still up')

  // A valid request still works on the fuzzed connection and on a new one.
  const sub = await c.request({ type: 'subscribe_category', categories: ['dashboard'] })
  t.equal(sub.type, 'reply')
  const fresh = await connect(h.ws, { token: await h.token('after-fuzz', 'user') })
  await fresh.next()
  const published = await h.app.notifications.publish({ category: 'dashboard', title: 'after the fuzz' })
  t.equal((await c.nextOf('notification')).notification.id, published.notification.id, 'the fuzzed connection still receives')
  t.equal((await fresh.nextOf('notification')).notification.id, published.notification.id, 'a new connection receives')
  c.close(); fresh.close()
})

t.test('fuzz over many connections at the default limits: bad frames close with 4008, never anything else', async t => {
  const h = await build(t)
  const codes: number[] = []
  const samples = fc.sample(fc.oneof(mutatedFrame, shapedFrame), { numRuns: 20 * 30, seed: 7 })
  for (let k = 0; k < 20; k++) {
    const c = await connect(h.ws, { token: await h.token(`burst${k}`, 'viewer') })
    await c.next()
    for (const raw of samples.slice(k * 30, (k + 1) * 30)) c.send(raw)
    // 30 frames may or may not exceed the bad-frame budget (20): either it is closed 4008, or it still answers.
    const pong = await c.request({ type: 'ping', id: 'alive' }, 3000).catch(() => undefined)
    if (pong === undefined) codes.push((await c.closed).code)
    else {
      t.ok(c.pending().every(isValidServerFrame), `connection ${k}: every frame valid`)
      c.close()
    }
  }
  t.ok(codes.every(code => code === 4008), `closed connections all got 4008 (${codes.length} of 20)`)
  t.ok(h.app.server.listening)
})
