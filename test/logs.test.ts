// What an operator reads: one line per connection opened and closed, publishes
// at debug, rejected frames at warn with their code, a REST publish's request id
// on its delivery line, and never a credential, over a full scenario.
import t, { type Test } from 'tap'
import { buildServer } from '../server/index.js'
import { signToken } from '../src/tokens.js'
import type { NotificationManager } from '../src/manager.js'
import { API_KEY, SECRET, connect, publishHttp, type Harness } from './helper.js'

type Logged = Pick<Harness, 'app' | 'port' | 'http' | 'ws' | 'token'>

type Record_ = Record<string, any>

async function logged (t: Test): Promise<{ h: Logged, records: () => Record_[], text: () => string }> {
  const lines: string[] = []
  const stream = { write (chunk: string) { lines.push(chunk) } }
  const app = await buildServer({ jwtSecret: SECRET, apiKeys: [API_KEY], store: 'memory', legacyAdapters: ['maintenance'], logger: { level: 'trace', stream } })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  const h: Logged = {
    app,
    port: address.port,
    http: `http://127.0.0.1:${address.port}`,
    ws: `ws://127.0.0.1:${address.port}/ws`,
    token: (sub, role = 'user', expiresIn = '1h') => signToken(SECRET, { sub, role, expiresIn })
  }
  const text = () => lines.join('')
  const records = () => text().split('\n').filter(l => l.trim() !== '').map(l => JSON.parse(l) as Record_)
  return { h, records, text }
}

t.test('a full scenario: the lines an operator needs, and no credential anywhere', async t => {
  const { h, records, text } = await logged(t)
  const aliceToken = await h.token('alice')
  const adminToken = await h.token('root', 'admin')
  const refreshToken = await h.token('alice', 'user', '2h')
  const wrongKey = 'wrong-api-key-should-not-appear'

  const alice = await connect(h.ws, { query: { token: aliceToken } })
  const connected = await alice.nextOf('connected')
  const admin = await connect(h.ws, { token: adminToken })
  await admin.nextOf('connected')

  const sent = await publishHttp(h, { category: 'dashboard', title: 'hello' })
  await alice.nextOf('notification')
  const byAdmin = await fetch(`${h.http}/api/notifications`, {
    method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ category: 'system', title: 'from admin' })
  })
  t.equal(byAdmin.status, 202)
  await alice.nextOf('notification')
  t.equal((await fetch(`${h.http}/api/notifications`, { method: 'POST', headers: { authorization: `Bearer ${wrongKey}`, 'content-type': 'application/json' }, body: '{}' })).status, 401)
  t.equal((await fetch(`${h.http}/api/legacy/maintenance/maintenance_started`, {
    method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ operation_id: 'op1', operation_type: 'backup' })
  })).status, 202)
  await alice.nextOf('notification')
  t.equal((await fetch(`${h.http}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } })).status, 200)
  t.equal((await alice.request({ type: 'refresh', token: refreshToken })).type, 'reply')
  t.equal((await alice.request({ type: 'refresh', token: 'not-a-jwt' })).code, 'bad_request')
  t.equal((await alice.request({ type: 'nope', token: aliceToken })).code, 'unknown_type')

  const closed = alice.closed
  alice.ws.close(1000)
  await closed
  admin.close()
  await admin.closed
  await h.app.close()

  const all = records()
  const log = text()
  for (const [label, secret] of [['query token', aliceToken], ['header token', adminToken], ['refresh token', refreshToken],
    ['API key', API_KEY], ['wrong API key', wrongKey], ['JWT secret', SECRET]] as const) {
    t.notOk(log.includes(secret), `${label}: not in the logs`)
  }

  const opened = all.filter(r => r.msg === 'connection opened')
  t.equal(opened.length, 2, 'one line per connection opened')
  const aliceOpened = opened.find(r => r.userId === 'alice')
  t.equal(aliceOpened?.sessionId, connected.sessionId)
  t.equal(aliceOpened?.role, 'user')
  t.equal(aliceOpened?.instance, (h.app.notifications as NotificationManager).instance, 'with the instance')

  const closes = all.filter(r => r.msg === 'connection closed')
  t.equal(closes.length, 2, 'one line per connection closed')
  const aliceClosed = closes.find(r => r.userId === 'alice')
  t.equal(aliceClosed?.level, 30, 'at info')
  t.equal(aliceClosed?.role, 'user')
  t.equal(aliceClosed?.instance, (h.app.notifications as NotificationManager).instance)
  t.equal(aliceClosed?.code, 1000, 'with the close code')
  t.type(aliceClosed?.durationMs, 'number')
  t.equal(aliceClosed?.framesIn, 3, 'frames in: the three requests')
  // connected, three notifications, three answers.
  t.equal(aliceClosed?.framesOut, 7, 'frames out')

  const rejected = all.filter(r => r.msg === 'frame rejected')
  t.same(rejected.map(r => r.code).sort(), ['bad_request', 'unknown_type'], 'each rejected frame, with its code')
  t.ok(rejected.every(r => r.level === 40), 'at warn')

  const published = all.filter(r => r.msg === 'notification published')
  t.equal(published.length, 3, 'one line per publish')
  t.ok(published.every(r => r.level === 20), 'at debug')
  const first = published.find(r => r.id === sent.id)
  t.ok(first?.reqId, 'a REST publish names its request')
  const request = all.find(r => r.reqId === first?.reqId && r.msg === 'incoming request')
  t.equal(request?.req?.url, '/api/notifications', 'the request id is the REST request\'s')
  const delivered = all.find(r => r.msg === 'notification delivered' && r.id === sent.id)
  t.equal(delivered?.reqId, first?.reqId, 'and follows it to the delivery line')
  t.equal(delivered?.recipients, 2, 'alice and the admin')
  const legacy = published.find(r => r.source === 'maintenance')
  t.equal(legacy?.reqId, undefined, 'an adapter publish has no request id')
})
