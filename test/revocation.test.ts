// Revoking a user's access: POST /api/users/<id>/disconnect closes every socket
// of the user with 4003; with revokeTokens, tokens issued up to that second are
// refused at the handshake, on REST and on refresh, across a restart, until no
// covered token can still be valid.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createDecoder, createSigner } from 'fast-jwt'
import pino from 'pino'
import { LocalBroker } from '../src/brokers/local-broker.js'
import { CloseCode } from '../src/errors.js'
import { NotificationManager } from '../src/manager.js'
import { createTokenVerifier, signToken } from '../src/tokens.js'
import { MemoryStore } from '../src/stores/memory-store.js'
import { API_KEY, HandshakeRaceStore, SECRET, build, connect, refusedUpgrade, within, type Client, type Harness } from './helper.js'
import { buildSio, refused, sio } from './socketio-helper.js'

const auth = (token: string) => ({ authorization: `Bearer ${token}` })
const nowS = () => Math.floor(Date.now() / 1000)

/** A token with an explicit iat (epoch s), or none at all. */
function tokenAt (sub: string, role: string, iat: number | undefined): string {
  // The signer keeps an iat it is given, and adds none with noTimestamp.
  const sign = createSigner({ key: Buffer.from(SECRET), algorithm: 'HS256', noTimestamp: iat === undefined })
  const exp = nowS() + 3600
  return sign(iat === undefined ? { sub, role, exp } : { sub, role, iat, exp })
}

/** How a client's socket closed, or a failure after two seconds (not a hang). */
const closedWith = (c: Client) => within(c.closed, 2000, 'the close')

async function disconnect (h: Harness, id: string, payload?: Record<string, unknown>, headers = auth(API_KEY)) {
  return h.app.inject({ method: 'POST', url: `/api/users/${encodeURIComponent(id)}/disconnect`, headers, ...(payload !== undefined ? { payload } : {}) })
}

t.test('every connection of the user closes with 4003 and the answer counts them; others stay open', async t => {
  const h = await build(t)
  const alice = await h.token('alice')
  const a1 = await connect(h.ws, { token: alice })
  const a2 = await connect(h.ws, { token: alice, query: { categories: 'system' } })
  const bob = await connect(h.ws, { token: await h.token('bob') })
  for (const c of [a1, a2, bob]) await c.nextOf('connected')
  const res = await disconnect(h, 'alice')
  t.equal(res.statusCode, 200)
  t.strictSame(res.json(), { closed: 2 })
  t.strictSame(await closedWith(a1), { code: 4003, reason: 'access revoked: get a new token' })
  t.strictSame(await closedWith(a2), { code: 4003, reason: 'access revoked: get a new token' })
  t.equal(CloseCode.revoked, 4003)
  t.equal((await bob.request({ type: 'ping' })).type, 'reply', 'bob is still connected')
  t.strictSame((await disconnect(h, 'alice', { reason: 'again' })).json(), { closed: 0 }, 'nobody left to close')
  t.strictSame((await disconnect(h, 'nobody-at-all', {})).json(), { closed: 0 })

  // Without revokeTokens the same token may come back.
  const back = await connect(h.ws, { token: alice })
  t.equal((await back.nextOf('connected')).user.id, 'alice')
  back.close(); bob.close()
})

t.test('who may disconnect: an API key or an admin; a user token is 403, nothing at all 401; bad bodies 400', async t => {
  const h = await build(t)
  const alice = await h.token('alice')
  const c = await connect(h.ws, { token: alice })
  await c.nextOf('connected')
  t.equal((await disconnect(h, 'alice', {}, {} as ReturnType<typeof auth>)).statusCode, 401)
  t.equal((await disconnect(h, 'alice', {}, auth('wrong-key'))).statusCode, 401)
  const self = await disconnect(h, 'bob', {}, auth(await h.token('mallory', 'moderator')))
  t.equal(self.statusCode, 403)
  t.equal(self.json().code, 'UN_FORBIDDEN')
  for (const payload of [{ revokeTokens: 'yes' }, { reason: 5 }, { extra: true }, { reason: 'x'.repeat(501) }]) {
    t.equal((await disconnect(h, 'alice', payload)).statusCode, 400, JSON.stringify(payload).slice(0, 40))
  }
  t.equal((await c.request({ type: 'ping' })).type, 'reply', 'no refused request closed anything')
  const admin = await disconnect(h, 'alice', { reason: 'suspended' }, auth(await h.token('root', 'admin')))
  t.strictSame(admin.json(), { closed: 1 })
  t.equal((await closedWith(c)).code, 4003)
})

t.test('revokeTokens: the old token is refused at the handshake, on REST, on the publish routes; a newer one works', async t => {
  const h = await build(t)
  const before = nowS() - 5
  const oldUser = tokenAt('alice', 'user', before)
  const oldAdmin = tokenAt('root', 'admin', before)
  const c = await connect(h.ws, { token: oldUser })
  await c.nextOf('connected')
  t.strictSame((await disconnect(h, 'alice', { revokeTokens: true, reason: 'suspended' })).json(), { closed: 1 })
  t.equal((await closedWith(c)).code, 4003)

  const refused = await refusedUpgrade(h.ws, { token: oldUser })
  t.equal(refused.statusCode, 401)
  t.equal(refused.body.code, 'UN_INVALID_TOKEN')
  t.match(refused.body.message, /revoked/)
  t.notOk(refused.opened)
  t.equal((await refusedUpgrade(h.ws, { query: { token: oldUser } })).statusCode, 401, 'through ?token= as well')
  for (const [method, url, payload] of [
    ['GET', '/api/notifications', undefined], ['POST', '/api/notifications/read', { all: true }],
    ['GET', '/api/preferences', undefined], ['PUT', '/api/preferences', { muted: [] }]
  ] as const) {
    const res = await h.app.inject({ method, url, headers: auth(oldUser), ...(payload ? { payload } : {}) })
    t.equal(res.statusCode, 401, `${method} ${url}`)
  }

  const newer = tokenAt('alice', 'user', nowS() + 1)
  const fresh = await connect(h.ws, { token: newer })
  t.equal((await fresh.nextOf('connected')).user.id, 'alice', 'a token issued after the call works')
  t.equal((await h.app.inject({ method: 'GET', url: '/api/notifications', headers: auth(newer) })).statusCode, 200)

  // An admin's revoked token cannot publish nor read stats either.
  await disconnect(h, 'root', { revokeTokens: true })
  const pub = await h.app.inject({ method: 'POST', url: '/api/notifications', headers: auth(oldAdmin), payload: { category: 'system', title: 'x' } })
  t.equal(pub.statusCode, 401)
  const stats = await h.app.inject({ method: 'GET', url: '/api/notifications/stats', headers: auth(oldAdmin) })
  t.equal(stats.statusCode, 401)
  t.equal((await h.app.inject({ method: 'GET', url: '/api/notifications', headers: auth(tokenAt('bob', 'user', before)) })).statusCode, 200, 'another user is untouched')
  fresh.close()
})

t.test('ADVERSARIAL: a revoked token cannot come back through refresh (4003)', async t => {
  const h = await build(t)
  const oldToken = tokenAt('alice', 'user', nowS() - 5)
  await disconnect(h, 'alice', { revokeTokens: true })
  const c = await connect(h.ws, { token: tokenAt('alice', 'user', nowS() + 1) })
  await c.nextOf('connected')
  c.send({ type: 'refresh', id: 'r', token: oldToken })
  t.strictSame(await closedWith(c), { code: 4003, reason: 'access revoked: get a new token' })
  t.notOk(c.pending().some(f => f.type === 'reply'), 'no reply accepted it')
})

t.test('ADVERSARIAL: a token without iat is refused while a revocation is in force, accepted otherwise', async t => {
  const h = await build(t)
  const noIat = tokenAt('alice', 'user', undefined)
  const ok = await connect(h.ws, { token: noIat })
  await ok.nextOf('connected')
  ok.close()
  await disconnect(h, 'alice', { revokeTokens: true })
  t.equal((await refusedUpgrade(h.ws, { token: noIat })).statusCode, 401)
  t.equal((await h.app.inject({ method: 'GET', url: '/api/notifications', headers: auth(noIat) })).statusCode, 401)
  t.equal((await h.app.inject({ method: 'GET', url: '/api/notifications', headers: auth(tokenAt('bob', 'user', undefined)) })).statusCode, 200)
})

t.test('ADVERSARIAL: a revoked token cannot come back through the legacy ingest (API keys only)', async t => {
  const h = await build(t, { legacyAdapters: ['dashboard'] })
  const oldAdmin = tokenAt('root', 'admin', nowS() - 5)
  await disconnect(h, 'root', { revokeTokens: true })
  const res = await h.app.inject({
    method: 'POST',
    url: '/api/legacy/dashboard/broadcast_notification',
    headers: auth(oldAdmin),
    payload: { message: 'hello' }
  })
  t.equal(res.statusCode, 401)
  t.equal(await h.store.lastSeq(), 0, 'nothing was published')
})

t.test('the revocation survives a restart (SQLite) and is stored until no covered token can be valid', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'un-revoke-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = `sqlite:${join(dir, 'n.db')}`
  const oldToken = tokenAt('alice', 'user', nowS() - 5)
  const first = await build(t, { store })
  const calledFrom = nowS()
  await disconnect(first, 'alice', { revokeTokens: true })
  const calledUntil = nowS()
  await first.app.close()
  const second = await build(t, { store })
  t.equal((await refusedUpgrade(second.ws, { token: oldToken })).statusCode, 401, 'still refused after a restart')
  const now = Date.now()
  const cut = await second.store.revokedThrough('alice', now)
  // Bounded by the call itself: the restart in between can take seconds on a loaded machine.
  t.ok(cut >= calledFrom && cut <= calledUntil, 'the cut is the second of the call')
  t.ok(await second.store.revokedThrough('alice', now + 23 * 3600 * 1000) > 0, 'kept for the maximum token age (24 h)…')
  t.equal(await second.store.revokedThrough('alice', now + 24 * 3600 * 1000 + 5000), 0, '…and no longer')
})

t.test('manager: the revocation lasts maxTokenAgeMs; isRevoked compares iat with the cut', async t => {
  const store = new MemoryStore()
  const manager = new NotificationManager({ store, broker: new LocalBroker(), logger: pino({ level: 'silent' }), maxTokenAgeMs: 60_000 })
  await manager.start()
  t.teardown(() => manager.close())
  t.equal(await manager.isRevoked('alice', undefined), false, 'nothing in force: a token without iat passes')
  const at = Date.now()
  await manager.disconnectUser('alice', { revokeTokens: true })
  const cut = Math.floor(at / 1000)
  t.equal(await manager.isRevoked('alice', cut * 1000 + 999), true, 'issued in the same second')
  t.equal(await manager.isRevoked('alice', (cut + 1) * 1000), false, 'issued after the call')
  t.equal(await manager.isRevoked('alice', undefined), true)
  t.equal(await manager.isRevoked('bob', (cut - 1) * 1000), false)
  t.ok(await store.revokedThrough('alice', at + 59_000) > 0)
  t.equal(await store.revokedThrough('alice', at + 61_000), 0, 'expired by itself after the maximum token age')
})

t.test('manager: control messages it does not know, or without a user, are ignored with a warning', async t => {
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'warn' }, { write: (s: string) => { lines.push(JSON.parse(s)) } })
  const manager = new NotificationManager({ store: new MemoryStore(), broker: new LocalBroker(), logger })
  await manager.start()
  t.teardown(() => manager.close())
  manager.applyControl({ type: 'reboot', userId: 'alice' })
  manager.applyControl({ type: 'disconnect' })
  t.same(lines.map(l => l.msg), ['unknown control message ignored', 'control message without a userId ignored'])
})

t.test('signToken writes iat whichever way the lifetime is given, and the verifier reads it', async t => {
  const decode = createDecoder()
  const verify = createTokenVerifier(SECRET)
  for (const expiresIn of [60, '1h']) {
    const token = await signToken(SECRET, { sub: 'alice', role: 'user', expiresIn })
    const iat = (decode(token) as { iat?: number }).iat
    t.type(iat, 'number', `expiresIn ${expiresIn}`)
    t.equal((await verify(token)).issuedAt, iat! * 1000, 'in epoch ms')
  }
  t.equal((await verify(tokenAt('alice', 'user', undefined))).issuedAt, undefined, 'no iat, no issuedAt')
})

t.test('RACE: a revocation stored between the handshake check and registration still closes the new socket with 4003', async t => {
  /** Revokes alice's tokens while her handshake is between its token check and the socket's registration. */
  class RevokingStore extends MemoryStore {
    override async getMuted (userId: string) {
      if (userId === 'alice') await this.revokeTokens('alice', nowS(), Date.now() + 60_000)
      return super.getMuted(userId)
    }
  }
  const h = await build(t, { store: new RevokingStore() })
  const c = await connect(h.ws, { token: tokenAt('alice', 'user', nowS() - 5) })
  t.strictSame(await closedWith(c), { code: 4003, reason: 'access revoked: get a new token' })
  t.notOk(c.pending().some(f => f.type === 'connected'), 'closed before connected')
  t.equal(h.app.notifications.sizes().registry.connections, 0, 'nothing left registered')
})

t.test('RACE, SQLite (the handshake reads revocation and muted in one statement): a revocation through disconnectUser between the handshake and registration closes the new socket with 4003', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'un-revoke-race-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // The change is made the real way (stored, and a control message that finds no socket yet) right after alice's handshake read.
  const store = new HandshakeRaceStore(join(dir, 'race.db'), 'alice')
  const h = await build(t, { store })
  store.after = () => h.app.notifications.disconnectUser('alice', { revokeTokens: true })
  const c = await connect(h.ws, { token: tokenAt('alice', 'user', nowS() - 5) })
  t.strictSame(await closedWith(c), { code: 4003, reason: 'access revoked: get a new token' })
  t.notOk(c.pending().some(f => f.type === 'connected'), 'closed before connected')
  t.equal(h.app.notifications.sizes().registry.connections, 0, 'nothing left registered')
})

t.test('REGRESSION: a revoked token is refused by every door: REST, the /ws handshake and the Socket.IO handshake', async t => {
  const h = await buildSio(t)
  const old = await h.token('alice')
  const res = await h.app.inject({ method: 'POST', url: '/api/users/alice/disconnect', headers: { authorization: `Bearer ${API_KEY}` }, payload: { revokeTokens: true } })
  t.equal(res.statusCode, 200)
  t.equal((await h.app.inject({ method: 'GET', url: '/api/notifications', headers: { authorization: `Bearer ${old}` } })).statusCode, 401, 'REST')
  t.equal((await refusedUpgrade(h.ws, { token: old })).statusCode, 401, '/ws handshake')
  t.equal((await refused(h, { auth: { token: old } })).message, 'unauthorized', 'Socket.IO handshake')
})

t.test('REGRESSION: after revokeTokens, a newer token connects through Socket.IO and stays open (its iat reaches the session)', async t => {
  const h = await buildSio(t)
  t.equal((await disconnect(h, 'alice', { revokeTokens: true })).statusCode, 200)
  const c = await sio(h, { auth: { token: tokenAt('alice', 'user', nowS() + 1) }, transports: ['websocket'] })
  t.teardown(() => c.close())
  t.equal((await c.next('connected')).user.id, 'alice', 'connected, not closed 4003 by the check after registration')
  const sent = await h.app.inject({ method: 'POST', url: '/api/notifications', headers: auth(API_KEY), payload: { category: 'system', title: 'still here', audience: { users: ['alice'] } } })
  t.equal((await c.next('notification')).notification.id, sent.json().id, 'and it gets what is published to it')
})
