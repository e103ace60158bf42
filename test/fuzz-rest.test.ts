// Property-based fuzz of the REST bodies (fast-check), as test/fuzz.test.ts does
// for socket frames: deep, wide, huge numbers, odd Unicode, prototype keys,
// broken JSON. Every answer is a 2xx or a 4xx in Fastify's error shape, never a
// 5xx, and the server keeps answering.
import t, { type Test } from 'tap'
import fc from 'fast-check'
import type { LightMyRequestResponse } from 'fastify'
import { API_KEY, build, publishHttp, type Harness } from './helper.js'

/** Bodies fuzzed per route. */
const RUNS = 150

const ODD_STRINGS = ['', '\u0000', '\ufeff', '\u202eevil', '🦄'.repeat(50), 'e\u0301'.repeat(20), '\uffff', '𝕏', '\u2028\u2029', 'a'.repeat(5000)]
// Written as JSON text: numbers beyond double range, lone surrogates as escapes, -0.
const ODD_SCALARS = ['null', 'true', 'false', '0', '-0', '1e400', '-1e400', '1e-400', '123456789012345678901234567890', '9007199254740993', '"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"']
const KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'a', 'title', 'category', 'data']

const stringText = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom(...ODD_STRINGS)).map(s => JSON.stringify(s))
const scalarText = fc.oneof(
  fc.constantFrom(...ODD_SCALARS),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map(d => JSON.stringify(d)),
  fc.bigInt().map(String),
  stringText
)
const keyText = fc.oneof(fc.constantFrom(...KEYS), fc.string({ unit: 'binary', maxLength: 10 })).map(k => JSON.stringify(k))
/** Any JSON value as text, built by hand so that __proto__ and constructor really appear as keys. */
const { value: valueText, object: objectText } = fc.letrec<{ value: string, object: string, array: string }>(tie => ({
  value: fc.oneof({ depthSize: 'small' }, scalarText, tie('object'), tie('array')),
  object: fc.array(fc.tuple(keyText, tie('value')), { maxLength: 6 }).map(es => `{${es.map(([k, v]) => `${k}:${v}`).join(',')}}`),
  array: fc.array(tie('value'), { maxLength: 6 }).map(items => `[${items.join(',')}]`)
}))
// Around the 32-level limit as often as far beyond it.
const deepText = fc.record({ n: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 5000 })), arrays: fc.boolean() })
  .map(({ n, arrays }) => arrays ? '['.repeat(n) + ']'.repeat(n) : '{"a":'.repeat(n) + '{}' + '}'.repeat(n))
const wideText = fc.integer({ min: 100, max: 5000 }).map(n => `{${Array.from({ length: n }, (_v, i) => `"k${i}":${i}`).join(',')}}`)
const dataText = fc.oneof({ weight: 3, arbitrary: objectText }, { weight: 1, arbitrary: valueText }, { weight: 2, arbitrary: deepText }, { weight: 1, arbitrary: wideText })

const PUBLISH_FIELDS = ['type', 'priority', 'message', 'action', 'audience', 'expiresAt', 'collapseKey', 'idempotencyKey', '__proto__', 'constructor', 'id', 'seq']
// Mostly a valid category and title, so that the odd data and fields get past the schema and into the manager.
const publishText = fc.record({
  category: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('"system"', '"dashboard"') }, { weight: 1, arbitrary: fc.constantFrom('"billing"', '"__proto__"') }, { weight: 1, arbitrary: scalarText }),
  title: fc.oneof({ weight: 6, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 60 }).map(s => JSON.stringify(s)) }, { weight: 1, arbitrary: scalarText }),
  data: fc.option(dataText, { freq: 4 }),
  extra: fc.oneof(
    { weight: 2, arbitrary: fc.constant<Array<[string, string]>>([]) },
    { weight: 1, arbitrary: fc.array(fc.tuple(fc.constantFrom(...PUBLISH_FIELDS), fc.oneof(valueText, fc.constantFrom('"high"', '"info"', '{"users":["u"]}'))), { maxLength: 2 }) }
  )
}).map(({ category, title, data, extra }) => {
  const parts = [`"category":${category}`, `"title":${title}`, ...(data !== null ? [`"data":${data}`] : []), ...extra.map(([k, v]) => `${JSON.stringify(k)}:${v}`)]
  return `{${parts.join(',')}}`
})

/** A body cut short, with bytes inserted, or doubled: mostly invalid JSON. */
const mutate = (base: fc.Arbitrary<string>) => fc.record({ base, at: fc.nat(), ch: fc.string({ minLength: 1, maxLength: 3 }), how: fc.constantFrom('keep', 'keep', 'keep', 'keep', 'truncate', 'insert', 'double') })
  .map(({ base, at, ch, how }) => {
    const i = at % Math.max(1, base.length)
    if (how === 'truncate') return base.slice(0, i)
    if (how === 'insert') return base.slice(0, i) + ch + base.slice(i)
    if (how === 'double') return base + base
    return base
  })

const batchText = fc.array(fc.oneof({ weight: 5, arbitrary: publishText }, { weight: 1, arbitrary: valueText }), { minLength: 0, maxLength: 3 }).map(items => `{"notifications":[${items.join(',')}]}`)
const readText = fc.oneof(
  fc.record({ ids: fc.option(fc.array(stringText, { maxLength: 4 }).map(a => `[${a.join(',')}]`)), all: fc.option(scalarText) })
    .map(({ ids, all }) => `{${[ids !== null ? `"ids":${ids}` : '', all !== null ? `"all":${all}` : ''].filter(Boolean).join(',')}}`),
  valueText
)
const legacyText = fc.record({
  user_id: fc.oneof({ weight: 4, arbitrary: fc.constantFrom('"alice"', '"bob"') }, { weight: 1, arbitrary: fc.oneof(stringText, scalarText) }),
  message: fc.oneof({ weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }).map(s => JSON.stringify(s)) }, { weight: 1, arbitrary: scalarText }),
  data: fc.option(dataText, { freq: 4 })
})
  .map(({ user_id: u, message, data }) => `{"user_id":${u},"message":${message}${data !== null ? `,"data":${data}` : ''}}`)

/** A 2xx, or a 4xx in exactly Fastify's error shape; a 5xx or anything else is a failure. */
function acceptable (res: LightMyRequestResponse): boolean {
  if (res.statusCode >= 200 && res.statusCode < 300) return true
  if (res.statusCode < 400 || res.statusCode >= 500) return false
  const body = res.json() as Record<string, unknown>
  return Object.keys(body).sort().join() === 'code,error,message,statusCode' &&
    body.statusCode === res.statusCode && typeof body.code === 'string' && typeof body.error === 'string' && typeof body.message === 'string'
}

async function fuzzRoute (t: Test, h: Harness, label: string, url: string, bodies: fc.Arbitrary<string>, authorization: string, seed: number): Promise<void> {
  let failure: { body: string, status: number, answer: string } | undefined
  const statuses = new Map<number, number>()
  // fc.check, not fc.assert: the failing body (up to a megabyte of nesting) is reported cut short, below.
  const run = await fc.check(fc.asyncProperty(bodies, async body => {
    const res = await h.app.inject({ method: 'POST', url, headers: { authorization, 'content-type': 'application/json' }, payload: body })
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
    if (acceptable(res)) return true
    failure = { body: body.slice(0, 300), status: res.statusCode, answer: res.body.slice(0, 300) }
    return false
  }), { numRuns: RUNS, seed, endOnFailure: true })
  t.equal(run.numRuns, RUNS, `${label}: ${RUNS} bodies sent`)
  t.equal(failure, undefined, `${label}: every answer a 2xx or a 4xx in the error shape (${JSON.stringify(Object.fromEntries(statuses))})`)
  t.ok([...statuses.keys()].some(s => s >= 400), `${label}: the fuzz reached refusals`)
}

t.test(`fuzz: ${RUNS} random bodies per REST route; never a 5xx, and the server keeps answering`, async t => {
  const h = await build(t, { legacyAdapters: ['dashboard'], publishRateLimit: false })
  const key = `Bearer ${API_KEY}`
  await fuzzRoute(t, h, 'POST /api/notifications', '/api/notifications', mutate(publishText), key, 1)
  await fuzzRoute(t, h, 'POST /api/notifications/batch', '/api/notifications/batch', mutate(batchText), key, 2)
  await fuzzRoute(t, h, 'POST /api/notifications/read', '/api/notifications/read', mutate(readText), `Bearer ${await h.token('fuzzer')}`, 3)
  await fuzzRoute(t, h, 'POST /api/legacy/dashboard/user_notification', '/api/legacy/dashboard/user_notification', mutate(legacyText), key, 4)
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched')

  // Still answering on the real port, and what was accepted can be read back.
  const after = await publishHttp(h, { category: 'system', title: 'after the fuzz' })
  t.ok(after.seq > 0, 'a valid publish still works')
  const history = await fetch(`${h.http}/api/notifications?limit=100`, { headers: { authorization: `Bearer ${await h.token('root', 'admin')}` } })
  t.equal(history.status, 200, 'history of the fuzzed notifications serialises')
  t.equal((await fetch(`${h.http}/health`)).status, 200)
})
