// Hostile input on a real socket: malformed and truncated JSON, binary frames,
// invalid UTF-8, frames at and over the size limit (also fragmented),
// prototype keys at every depth, wrong types for every field of every frame,
// huge category lists, unknown and reserved type names, and hostile refresh
// tokens. Each case asserts the exact error code or close code, and that the
// connection still answers afterwards where it stays open.
import t, { type Test } from 'tap'
import { SignJWT } from 'jose'
import { CLIENT_FRAME_TYPES, SERVER_FRAME_TYPES } from '../src/protocol.js'
import { build, connect, within, SECRET, type Client, type Harness } from './helper.js'

// Plenty of room: these tests send many bad frames on purpose (the limits have their own suite).
const ROOMY = { limits: { badFramesPerMinute: 100_000, requestsPerSecond: 100_000, requestBurst: 100_000 } }

async function open (t: Test, role = 'admin'): Promise<{ h: Harness, c: Client }> {
  const h = await build(t, ROOMY)
  const c = await connect(h.ws, { token: await h.token('mallory', role) })
  await c.next()
  return { h, c }
}

/** Sends raw text, expects one error frame with `code`, then checks the connection still answers. */
async function expectError (t: Test, c: Client, raw: string, code: string, label: string): Promise<void> {
  c.send(raw)
  const f = await c.nextOf('error')
  t.equal(f.code, code, `${label}: ${code}`)
  const pong = await c.request({ type: 'ping' })
  t.equal(pong.type, 'reply', `${label}: still open`)
}

t.test('malformed and truncated JSON: bad_request each time', async t => {
  const { c } = await open(t)
  const valid = JSON.stringify({ type: 'subscribe_category', id: 'x', categories: ['system'] })
  const cases = [
    '', ' ', '{', '}', '[', '{"type"', '{"type":', '{"type":"ping"', '{"type":"ping",}', "{'type':'ping'}",
    '{"type":"ping"}}', 'null', 'true', '42', '"ping"', '[]', '[{"type":"ping"}]', 'NaN', '{"type":"ping","id":"a"}\u0000',
'{"type":"ping","id":"a","id":"b"}x',
    // every truncation of a valid frame
    ...Array.from({ length: valid.length - 1 }, (_v, i) => valid.slice(0, i + 1))
  ]
  for (const raw of cases) await expectError(t, c, raw, 'bad_request', JSON.stringify(raw).slice(0, 40))
  c.close()
})

t.test('binary frames are bad_request, even when they hold valid JSON', async t => {
  const { c } = await open(t)
  for (const payload of [Buffer.from('{"type":"ping","id":"b"}'), Buffer.alloc(0), Buffer.from([0, 1, 2, 255])]) {
    c.ws.send(payload, { binary: true })
    const f = await c.nextOf('error')
    t.equal(f.code, 'bad_request')
    t.notOk('id' in f, 'no id is read from a binary frame')
  }
  t.equal((await c.request({ type: 'ping' })).type, 'reply')
  c.close()
})

t.test('invalid UTF-8 in a text frame closes with 1007', async t => {
  const { h, c } = await open(t)
  c.ws.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false })
  t.equal((await within(c.closed, 3000, 'close')).code, 1007)
  const other = await connect(h.ws, { token: await h.token('next') })
  t.equal((await other.next()).type, 'connected', 'the server keeps serving')
  other.close()
})

t.test('frame size: exactly 64 KiB is read (and refused as bad_request), one byte more closes 1009', async t => {
  const LIMIT = 64 * 1024
  const { h, c } = await open(t)
  const frameOf = (size: number) => {
    const head = '{"type":"ping","id":"big","pad":"'
    const frame = head + 'x'.repeat(size - head.length - 2) + '"}'
    if (Buffer.byteLength(frame) !== size) throw new Error('size')
    return frame
  }
  c.send(frameOf(LIMIT))
  const f = await c.nextOf('error')
  t.equal(f.code, 'bad_request', 'a frame of exactly the limit is parsed (the extra field is refused)')
  t.equal(f.id, 'big')
  t.equal((await c.request({ type: 'ping' })).type, 'reply')
  c.send(frameOf(LIMIT + 1))
  t.equal((await within(c.closed, 3000, 'close')).code, 1009)

  // A message split into fragments, each under the limit, that adds up to more than it.
  const d = await connect(h.ws, { token: await h.token('frag') })
  await d.next()
  const chunk = Buffer.alloc(20 * 1024, 0x61)
  d.ws.send(Buffer.from('{"type":"ping","pad":"'), { fin: false, binary: false })
  for (let i = 0; i < 4; i++) d.ws.send(chunk, { fin: false, binary: false })
  d.ws.send(Buffer.from('"}'), { fin: true, binary: false })
  t.equal((await within(d.closed, 3000, 'close')).code, 1009, 'a fragmented message over the limit closes 1009')

  // Fragments that stay under the limit are one ordinary message.
  const e = await connect(h.ws, { token: await h.token('frag-ok') })
  await e.next()
  e.ws.send(Buffer.from('{"type":"ping",'), { fin: false, binary: false })
  e.ws.send(Buffer.from('"id":"fr"}'), { fin: true, binary: false })
  const r = await e.nextOf('reply')
  t.equal(r.id, 'fr', 'a small fragmented message is answered')
  e.close()
})

t.test('prototype keys at every depth are bad_request and pollute nothing', async t => {
  const { c } = await open(t)
  const keys = ['"__proto__"', '"constructor"']
  const shapes = (k: string) => [
    `{${k}:{"polluted":1},"type":"ping"}`,
    `{"type":"ping",${k}:{"polluted":1}}`,
    `{"type":"ping","id":"p",${k}:{"prototype":{"polluted":1}}}`,
    `{"type":"subscribe_category","categories":[{${k}:{"polluted":1}}]}`,
    `{"type":"request_notification_history","categories":["system"],"unreadOnly":{${k}:{"polluted":1}}}`,
    `{"type":"mark_read","ids":[{"a":{"b":{${k}:{"polluted":1}}}}]}`,
    `{"type":"refresh","token":{"x":[{${k}:{"prototype":{"polluted":1}}}]}}`,
    `{"type":"ping","id":{${k}:{"polluted":1}}}`
  ]
  let n = 0
  for (const k of keys) {
    for (const raw of shapes(k)) {
      await expectError(t, c, raw, 'bad_request', raw.slice(0, 50))
      n++
    }
  }
  t.equal(n, 16)
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched')
  t.equal((Object.prototype as Record<string, unknown>).polluted, undefined)
  c.close()
})

t.test('wrong types for every field of every frame: bad_request with the id echoed', async t => {
  const { c } = await open(t)
  const valid: Record<string, Record<string, unknown>> = {
    subscribe_category: { categories: ['system'] },
    unsubscribe_category: { categories: ['system'] },
    request_notification_history: { limit: 5, before: 10, categories: ['system'], unreadOnly: false },
    mark_read: { ids: ['x'] },
    ping: {},
    refresh: { token: 'a.b.c' },
    set_preferences: { muted: ['maintenance'] }
  }
  t.same(Object.keys(valid).sort(), [...CLIENT_FRAME_TYPES].sort(), 'every client frame type is covered')
  const wrong: unknown[] = [null, true, 1.5, -1, 'text', [], {}, [1], ['x'.repeat(100)], { a: 1 }, 'x'.repeat(9000)]
  let cases = 0
  for (const [type, fields] of Object.entries(valid)) {
    for (const [field, good] of Object.entries(fields)) {
      for (const value of wrong) {
        if (JSON.stringify(value) === JSON.stringify(good)) continue
        // Values a field does accept are not wrong types (e.g. a string token, a number limit in range).
        if (field === 'token' && typeof value === 'string' && value.length <= 8192) continue
        if (typeof value === 'boolean' && typeof good === 'boolean') continue
        // An empty history filter is allowed (it means every category the role may see).
        if (field === 'categories' && type === 'request_notification_history' && Array.isArray(value) && value.length === 0) continue
        // An empty muted list is allowed (it unmutes everything).
        if (field === 'muted' && Array.isArray(value) && value.length === 0) continue
        const id = `${type}.${field}.${cases}`
        const f = await c.request({ type, id, ...fields, [field]: value })
        t.equal(f.type, 'error', `${id} = ${JSON.stringify(value).slice(0, 20)}: an error`)
        t.equal(f.code, 'bad_request', `${id}: bad_request`)
        cases++
      }
    }
    // and the id itself
    for (const value of [1, null, true, {}, [], 'x'.repeat(65)]) {
      c.send({ type, ...fields, id: value })
      const f = await c.nextOf('error')
      t.equal(f.code, 'bad_request', `${type}.id = ${JSON.stringify(value).slice(0, 20)}`)
      t.notOk('id' in f, 'an invalid id is not echoed')
      cases++
    }
  }
  t.ok(cases > 100, `${cases} wrong-type cases`)
  t.equal((await c.request({ type: 'ping' })).type, 'reply')
  c.close()
})

t.test('huge and duplicate category lists; unknown categories', async t => {
  const { h, c } = await open(t)
  const huge = await c.request({ type: 'subscribe_category', id: 'huge', categories: Array.from({ length: 5000 }, () => 'system') })
  t.equal(huge.code, 'bad_request', '5,000 categories')
  const many = await c.request({ type: 'subscribe_category', id: 'many', categories: Array.from({ length: 65 }, (_v, i) => `c${i}`) })
  t.equal(many.code, 'bad_request', '65 distinct unknown categories')
  const unknown = await c.request({ type: 'subscribe_category', id: 'unk', categories: ['system', 'billing'] })
  t.equal(unknown.code, 'bad_request', 'an unknown category')
  const empty = await c.request({ type: 'subscribe_category', id: 'empty', categories: [] })
  t.equal(empty.code, 'bad_request', 'an empty list')
  const weird = await c.request({ type: 'subscribe_category', id: 'weird', categories: ['__proto__'] })
  t.equal(weird.code, 'bad_request', "'__proto__' as a category name")
  const viewer = await connect(h.ws, { token: await h.token('vic', 'viewer') })
  await viewer.next()
  const forbidden = await viewer.request({ type: 'subscribe_category', id: 'f', categories: ['system', 'admin'] })
  t.equal(forbidden.code, 'forbidden')
  const after = await viewer.request({ type: 'subscribe_category', id: 'ok', categories: ['system'] })
  t.same(after.result.subscriptions, ['system', 'maintenance'], 'the forbidden request changed nothing')
  viewer.close(); c.close()
})

t.test('unknown and reserved type names are unknown_type, never a crash', async t => {
  const { c } = await open(t)
  const names = [
    '__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', '__defineGetter__',
    ...SERVER_FRAME_TYPES, '', ' ', 'PING', 'Ping', 'ping ', 'subscribe', 'x'.repeat(10_000), '\u0000', 'ping\u0000'
  ]
  for (const type of names) {
    const id = `t${names.indexOf(type)}`
    const f = await c.request({ type, id })
    t.same({ type: f.type, code: f.code, id: f.id }, { type: 'error', code: 'unknown_type', id }, `type ${JSON.stringify(type).slice(0, 20)}`)
  }
  for (const type of [1, null, true, [], {}, ['ping']]) {
    c.send({ type, id: 'nt' })
    const f = await c.nextOf('error')
    t.equal(f.code, 'bad_request', `type ${JSON.stringify(type)} is not a string`)
  }
  t.equal((await c.request({ type: 'ping' })).type, 'reply')
  c.close()
})

t.test('hostile refresh tokens: alg none, another algorithm, another secret, garbage → bad_request; the session keeps its identity', async t => {
  const { h, c } = await open(t, 'user')
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const exp = Math.floor(Date.now() / 1000) + 3600
  const tokens: Record<string, string> = {
    'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'mallory', role: 'user', exp })}.`,
    'alg none, admin': `${b64({ alg: 'none' })}.${b64({ sub: 'mallory', role: 'admin', exp })}.`,
    HS512: await new SignJWT({ role: 'user' }).setProtectedHeader({ alg: 'HS512' }).setSubject('mallory').setExpirationTime(exp).sign(new TextEncoder().encode(SECRET)),
    'wrong secret': await new SignJWT({ role: 'user' }).setProtectedHeader({ alg: 'HS256' }).setSubject('mallory').setExpirationTime(exp).sign(new TextEncoder().encode('not-the-secret-0123456789')),
    'expired': await new SignJWT({ role: 'user' }).setProtectedHeader({ alg: 'HS256' }).setSubject('mallory').setExpirationTime(Math.floor(Date.now() / 1000) - 10).sign(new TextEncoder().encode(SECRET)),
    'no sub': await new SignJWT({ role: 'user' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(new TextEncoder().encode(SECRET)),
    garbage: 'a.b.c',
    'one part': 'eyJhbGciOiJIUzI1NiJ9'
  }
  for (const [label, token] of Object.entries(tokens)) {
    const f = await c.request({ type: 'refresh', id: label, token })
    t.same({ type: f.type, code: f.code }, { type: 'error', code: 'bad_request' }, label)
  }
  t.equal((await c.request({ type: 'ping' })).type, 'reply', 'still open, still mallory')
  t.equal(h.app.notifications.sizes().registry.connections, 1)
  c.close()
})

t.test('library use: an upgrade no WebSocket route takes is answered, then its socket is closed by the server', async t => {
  const { default: Fastify } = await import('fastify')
  const { connect: tcp } = await import('node:net')
  const { unifiedNotifications } = await import('../index.js')
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(unifiedNotifications, { jwtSecret: SECRET })
  app.get('/host-page', async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port

  /** Sends a raw upgrade request; resolves with what came back once the server closed the socket. */
  const upgrade = (path: string): Promise<string> => new Promise((resolve, reject) => {
    const s = tcp(port, '127.0.0.1')
    let data = ''
    s.setEncoding('utf8')
    s.on('data', (d: string) => { data += d })
    s.on('error', reject)
    s.on('close', () => resolve(data))
    s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
  })
  // A socket left open fails here by the tap timeout: nothing else would close it.
  const unrouted = await upgrade('/nothing-here')
  t.match(unrouted, /^HTTP\/1\.1 404 /, 'an unrouted path: 404, then closed')
  t.match(unrouted, /"statusCode":404/, 'the whole answer arrived before the close')
  t.match(await upgrade('/host-page'), /^HTTP\/1\.1 200 [\s\S]*"ok":true/, "a host app's HTTP route: answered, then closed")
  t.match(await upgrade('/ws'), /^HTTP\/1\.1 401 /, 'our route refusing: 401, then closed')

  // An ordinary request keeps its keep-alive connection: a second request on it is answered.
  const answers = await new Promise<number>((resolve, reject) => {
    const s = tcp(port, '127.0.0.1')
    let seen = 0
    s.setEncoding('utf8')
    s.on('error', reject)
    s.on('close', () => resolve(seen))
    s.on('data', (d: string) => {
      seen += d.split('HTTP/1.1 200').length - 1
      if (seen === 1) s.write('GET /host-page HTTP/1.1\r\nHost: x\r\n\r\n')
      else s.destroy()
    })
    s.write('GET /host-page HTTP/1.1\r\nHost: x\r\n\r\n')
  })
  t.equal(answers, 2, 'a plain request is not closed: the next one on the connection is answered')
})
