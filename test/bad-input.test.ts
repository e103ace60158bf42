// Bad input found by probing (issue 10, item 9): deeply nested `data` on every
// publish path, and a handshake with two different tokens.
import t from 'tap'
import { MAX_DATA_DEPTH } from '../src/schemas.js'
import { API_KEY, build, connect, refusedUpgrade, type Harness } from './helper.js'

/** `data` as JSON text, `levels` objects deep ({"a":{"a":…{}}}), built as text: no recursion in the test either. */
const nested = (levels: number) => '{"a":'.repeat(levels - 1) + '{}' + '}'.repeat(levels - 1)

async function postRaw (h: Harness, url: string, body: string) {
  const res = await h.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }, payload: body })
  return { status: res.statusCode, body: res.json() as Record<string, unknown> }
}

const single = (data: string) => `{"category":"system","title":"deep","data":${data}}`
const batch = (data: string) => `{"notifications":[{"category":"system","title":"ok"},{"category":"system","title":"deep","data":${data}}]}`
const legacy = (data: string) => `{"user_id":"alice","message":"deep","data":${data}}`

t.test(`data nested deeper than ${MAX_DATA_DEPTH} levels is 400 UN_DATA_TOO_DEEP on the single, batch and legacy routes`, async t => {
  const h = await build(t, { legacyAdapters: ['dashboard'] })
  for (const levels of [5000, 2000, MAX_DATA_DEPTH + 1]) {
    const data = nested(levels)
    const one = await postRaw(h, '/api/notifications', single(data))
    t.equal(one.status, 400, `single, ${levels} deep (was 500 at 5,000 and stored at 2,000)`)
    t.match(one.body, { code: 'UN_DATA_TOO_DEEP', message: /deeper than 32 levels/ })
    const many = await postRaw(h, '/api/notifications/batch', batch(data))
    t.equal(many.status, 400, `batch, ${levels} deep`)
    t.match(many.body, { code: 'UN_DATA_TOO_DEEP', message: /^notifications\[1\]: data nests/ })
    const old = await postRaw(h, '/api/legacy/dashboard/user_notification', legacy(data))
    t.equal(old.status, 400, `legacy ingest, ${levels} deep`)
    t.match(old.body, { code: 'UN_DATA_TOO_DEEP' })
  }
  t.equal(await h.store.lastSeq(), 0, 'nothing was stored')
  t.match(h.app.notifications.migration(), { dashboard: { events: { user_notification: { received: 3, rejected: 3, failed: 0 } } } }, 'counted as rejected payloads')

  // At the limit it is accepted on every path.
  const atLimit = nested(MAX_DATA_DEPTH)
  t.equal((await postRaw(h, '/api/notifications', single(atLimit))).status, 202, `${MAX_DATA_DEPTH} deep: accepted`)
  t.equal((await postRaw(h, '/api/notifications/batch', batch(atLimit))).status, 202)
  t.equal((await postRaw(h, '/api/legacy/dashboard/user_notification', legacy(atLimit))).status, 202)
  t.equal((await h.app.inject({ method: 'GET', url: '/health' })).statusCode, 200, 'the server keeps answering')
})

t.test('in-process publish() throws the same coded error for deep or circular data', async t => {
  const h = await build(t)
  const deep = JSON.parse(nested(5000)) as Record<string, unknown>
  await t.rejects(h.app.notifications.publish({ category: 'system', title: 'x', data: deep }), { code: 'UN_DATA_TOO_DEEP', statusCode: 400 })
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  await t.rejects(h.app.notifications.publish({ category: 'system', title: 'x', data: cyclic }), { code: 'UN_DATA_TOO_DEEP' }, 'circular: a coded 400, not a TypeError')
  await t.rejects(h.app.notifications.publishMany([{ category: 'system', title: 'x' }, { category: 'system', title: 'y', data: deep }]), { code: 'UN_DATA_TOO_DEEP', message: /^notifications\[1\]/ })
  t.equal(await h.store.lastSeq(), 0)
})

t.test('a handshake with a header token and a different ?token= is refused with 400 (ambiguous credentials)', async t => {
  const h = await build(t)
  const alice = await h.token('alice')
  const admin = await h.token('root', 'admin')
  const refused = await refusedUpgrade(h.ws, { token: alice, query: { token: admin } })
  t.equal(refused.statusCode, 400, 'was accepted with the header token')
  t.match(refused.body, { statusCode: 400, code: 'UN_BAD_REQUEST', message: /Ambiguous credentials/ })
  t.equal(refused.opened, false)
  t.equal(h.app.notifications.stats().connections, 0)

  // The same token in both places is not ambiguous.
  const same = await connect(h.ws, { token: alice, query: { token: alice } })
  t.match(await same.next(), { type: 'connected', user: { id: 'alice' } })
  same.close()
})
