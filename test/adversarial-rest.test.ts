// Hostile REST input on the real port: wrong content types, invalid JSON,
// prototype keys at depth, over-long strings and lists, wrong shapes, hostile
// tokens. Each case asserts the exact status and error code, and that nothing
// was published.
import t from 'tap'
import { SignJWT } from 'jose'
import { API_KEY, build, SECRET, type Harness } from './helper.js'

async function post (h: Harness, path: string, body: string | undefined, headers: Record<string, string> = {}): Promise<{ status: number, body: Record<string, any> }> {
  const res = await fetch(`${h.http}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, ...headers },
    ...(body !== undefined ? { body } : {})
  })
  const text = await res.text()
  let parsed: Record<string, any>
  try { parsed = JSON.parse(text) } catch { parsed = { unparsed: text } }
  return { status: res.status, body: parsed }
}

const JSON_CT = { 'content-type': 'application/json' }
const valid = { category: 'system', title: 'ok' }

t.test('wrong content types are 415 FST_ERR_CTP_INVALID_MEDIA_TYPE', async t => {
  const h = await build(t)
  for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'text/json', 'application/octet-stream']) {
    const r = await post(h, '/api/notifications', JSON.stringify(valid), { 'content-type': ct })
    t.equal(r.status, 415, ct)
    t.equal(r.body.code, 'FST_ERR_CTP_INVALID_MEDIA_TYPE', ct)
  }
  const batch = await post(h, '/api/notifications/batch', JSON.stringify({ notifications: [valid] }), { 'content-type': 'text/plain' })
  t.equal(batch.status, 415)
  t.equal(await h.store.lastSeq(), 0, 'nothing published')
})

t.test('invalid JSON is 400 FST_ERR_CTP_INVALID_JSON_BODY; an empty JSON body is 400', async t => {
  const h = await build(t)
  for (const raw of ['{', '{"category":"system",', '{"category":"system","title":"x"', "{'category':'system'}", '{"a":1}}', 'NaN', '{"title":"\\u12"}']) {
    const r = await post(h, '/api/notifications', raw, JSON_CT)
    t.equal(r.status, 400, raw)
    t.equal(r.body.code, 'FST_ERR_CTP_INVALID_JSON_BODY', raw)
  }
  const empty = await post(h, '/api/notifications', '', JSON_CT)
  t.equal(empty.status, 400)
  t.equal(empty.body.code, 'FST_ERR_CTP_EMPTY_JSON_BODY')
  t.equal(await h.store.lastSeq(), 0)
})

t.test('a body that is JSON but not an object is 400 FST_ERR_VALIDATION', async t => {
  const h = await build(t)
  for (const raw of ['[]', '[{"category":"system","title":"x"}]', '"text"', '42', 'true', 'null']) {
    const r = await post(h, '/api/notifications', raw, JSON_CT)
    t.equal(r.status, 400, raw)
    t.equal(r.body.code, 'FST_ERR_VALIDATION', raw)
  }
})

t.test('__proto__ and constructor.prototype at every depth are 400, and pollute nothing', async t => {
  const h = await build(t)
  const bodies = [
    '{"category":"system","title":"x","__proto__":{"polluted":1}}',
    '{"category":"system","title":"x","data":{"__proto__":{"polluted":1}}}',
    '{"category":"system","title":"x","data":{"a":{"b":[{"__proto__":{"polluted":1}}]}}}',
    '{"category":"system","title":"x","constructor":{"prototype":{"polluted":1}}}',
    '{"category":"system","title":"x","data":{"deep":{"constructor":{"prototype":{"polluted":1}}}}}',
    '{"category":"system","title":"x","audience":{"__proto__":{"users":["u"]}}}',
    '{"category":"system","title":"x","action":{"url":"/x","label":"y","__proto__":{}}}'
  ]
  for (const raw of bodies) {
    const r = await post(h, '/api/notifications', raw, JSON_CT)
    t.equal(r.status, 400, raw)
    t.equal(r.body.code, 'UN_BAD_REQUEST', raw)
    t.match(r.body.message, /prototype key/, `${raw}: says what is wrong, not "not valid JSON"`)
  }
  const batch = await post(h, '/api/notifications/batch', '{"notifications":[{"category":"system","title":"x","__proto__":{"polluted":1}}]}', JSON_CT)
  t.equal(batch.status, 400)
  t.equal(batch.body.code, 'UN_BAD_REQUEST')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched')
  t.equal(await h.store.lastSeq(), 0, 'nothing published')
})

t.test('over-long strings and lists, wrong types, unknown fields: 400 with the exact code', async t => {
  const h = await build(t)
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['title 201 chars', { category: 'system', title: 'x'.repeat(201) }, 'FST_ERR_VALIDATION'],
    ['title empty', { category: 'system', title: '' }, 'FST_ERR_VALIDATION'],
    ['message 2001 chars', { category: 'system', title: 't', message: 'x'.repeat(2001) }, 'FST_ERR_VALIDATION'],
    ['category 10k chars', { category: 'c'.repeat(10_000), title: 't' }, 'FST_ERR_VALIDATION'],
    ['unknown category', { category: 'billing', title: 't' }, 'UN_UNKNOWN_CATEGORY'],
    ['action url 2049 chars', { category: 'system', title: 't', action: { url: 'u'.repeat(2049), label: 'l' } }, 'FST_ERR_VALIDATION'],
    ['data over 16 KiB', { category: 'system', title: 't', data: { blob: 'x'.repeat(17 * 1024) } }, 'UN_DATA_TOO_LARGE'],
    ['data an array', { category: 'system', title: 't', data: [1, 2] }, 'FST_ERR_VALIDATION'],
    ['audience 1001 users', { category: 'system', title: 't', audience: { users: Array.from({ length: 1001 }, (_v, i) => `u${i}`) } }, 'FST_ERR_VALIDATION'],
    ['audience user id 129 chars', { category: 'system', title: 't', audience: { users: ['u'.repeat(129)] } }, 'FST_ERR_VALIDATION'],
    ['audience unknown role', { category: 'system', title: 't', audience: { roles: ['superuser'] } }, 'UN_INVALID_NOTIFICATION'],
    ['title a number', { category: 'system', title: 123 }, 'FST_ERR_VALIDATION'],
    ['type not in the enum', { category: 'system', title: 't', type: 'panic' }, 'FST_ERR_VALIDATION'],
    ['priority an object', { category: 'system', title: 't', priority: {} }, 'FST_ERR_VALIDATION'],
    ['expiresAt not a date', { category: 'system', title: 't', expiresAt: 'tomorrow' }, 'FST_ERR_VALIDATION'],
    ['expiresAt in the past', { category: 'system', title: 't', expiresAt: '2000-01-01T00:00:00Z' }, 'UN_INVALID_NOTIFICATION'],
    ['unknown field', { category: 'system', title: 't', seq: 1 }, 'FST_ERR_VALIDATION'],
    ['server-set field', { category: 'system', title: 't', id: 'mine' }, 'FST_ERR_VALIDATION'],
    ['control characters in category', { category: 'sys\u0000tem', title: 't' }, 'FST_ERR_VALIDATION']
  ]
  for (const [label, body, code] of cases) {
    const r = await post(h, '/api/notifications', JSON.stringify(body), JSON_CT)
    t.equal(r.status, 400, `${label}: 400`)
    t.equal(r.body.code, code, `${label}: ${code}`)
    t.same(Object.keys(r.body).sort(), ['code', 'error', 'message', 'statusCode'], `${label}: Fastify's error shape`)
  }
  const batch101 = await post(h, '/api/notifications/batch', JSON.stringify({ notifications: Array.from({ length: 101 }, () => valid) }), JSON_CT)
  t.equal(batch101.status, 400)
  t.equal(batch101.body.code, 'FST_ERR_VALIDATION')
  t.equal(await h.store.lastSeq(), 0, 'nothing published')
})

t.test('hostile tokens on the REST routes: 401 UN_INVALID_TOKEN; a user token on publish is 403', async t => {
  const h = await build(t)
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const exp = Math.floor(Date.now() / 1000) + 3600
  const tokens: Record<string, string> = {
    'alg none admin': `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'm', role: 'admin', exp })}.`,
    'HS512 admin': await new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'HS512' }).setSubject('m').setExpirationTime(exp).sign(new TextEncoder().encode(SECRET)),
    'wrong secret admin': await new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'HS256' }).setSubject('m').setExpirationTime(exp).sign(new TextEncoder().encode('another-secret-0123456789')),
    'expired admin': await h.token('m', 'admin', -10),
    garbage: 'x.y.z'
  }
  for (const [label, token] of Object.entries(tokens)) {
    const pub = await post(h, '/api/notifications', JSON.stringify(valid), { ...JSON_CT, authorization: `Bearer ${token}` })
    t.equal(pub.status, 401, `${label}: publish 401`)
    t.equal(pub.body.code, 'UN_INVALID_TOKEN', label)
    const inbox = await fetch(`${h.http}/api/notifications`, { headers: { authorization: `Bearer ${token}` } })
    t.equal(inbox.status, 401, `${label}: inbox 401`)
  }
  const user = await post(h, '/api/notifications', JSON.stringify(valid), { ...JSON_CT, authorization: `Bearer ${await h.token('u', 'user')}` })
  t.equal(user.status, 403)
  t.equal(user.body.code, 'UN_FORBIDDEN')
  const none = await fetch(`${h.http}/api/notifications`, { method: 'POST', headers: JSON_CT, body: JSON.stringify(valid) })
  t.equal(none.status, 401)
  t.equal(((await none.json()) as { code: string }).code, 'UN_MISSING_CREDENTIALS')
  t.equal(await h.store.lastSeq(), 0, 'nothing published')
  const ok = await post(h, '/api/notifications', JSON.stringify(valid), JSON_CT)
  t.equal(ok.status, 202, 'a valid publish still works afterwards')
})

t.test('GET /api/notifications with hostile query strings: 400 FST_ERR_VALIDATION', async t => {
  const h = await build(t)
  const token = await h.token('alice', 'user')
  for (const q of ['limit=0', 'limit=101', 'limit=abc', 'before=-1', 'before=1.5', 'unread=maybe', 'category=' + 'c'.repeat(5000), 'extra=1']) {
    const res = await fetch(`${h.http}/api/notifications?${q}`, { headers: { authorization: `Bearer ${token}` } })
    t.equal(res.status, 400, q.slice(0, 30))
    t.equal(((await res.json()) as { code: string }).code, 'FST_ERR_VALIDATION', q.slice(0, 30))
  }
})
