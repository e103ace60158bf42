// The standalone server: configuration from the environment, the default SQLite
// store across restarts, credentials kept out of the logs, `npm run token`, and
// the real process (start, /health, SIGTERM → exit 0).
import { spawn, execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { buildServer, configFromEnv, SERVER_DEFAULTS } from '../server/index.js'
import { createTokenVerifier, signToken } from '../src/tokens.js'
import {
  API_KEY, SECRET, build, connect, publish, publishHttp, refusedUpgrade, sleep, within
} from './helper.js'
import { listeningPort, START_MS } from './instances.js'

const ROOT = resolve(import.meta.dirname, '..')
// Spawned processes compile their entry point first: on a loaded machine that alone can take most of a minute.
t.setTimeout(300_000)

t.test('configFromEnv maps the documented variables', async t => {
  const c = configFromEnv({
    PORT: '8080',
    HOST: '0.0.0.0',
    NOTIFY_JWT_SECRET: 'an-env-secret-0123456789',
    NOTIFY_API_KEYS: 'key-a-0123456789abc, key-b-0123456789abc,,key-c-0123456789abc ',
    NOTIFY_STORE: 'sqlite:/var/lib/n.db',
    NOTIFY_BROKER: 'local',
    LOG_LEVEL: 'debug'
  })
  t.equal(c.port, 8080)
  t.equal(c.host, '0.0.0.0')
  t.equal(c.jwtSecret, 'an-env-secret-0123456789')
  t.strictSame(c.apiKeys, ['key-a-0123456789abc', 'key-b-0123456789abc', 'key-c-0123456789abc'], 'comma list, trimmed, empties dropped')
  t.equal(c.store, 'sqlite:/var/lib/n.db')
  t.equal(c.broker, 'local')
  t.equal(c.logLevel, 'debug')
  t.equal(configFromEnv({ NOTIFY_STORE: 'memory' }).store, 'memory')
  t.equal(configFromEnv({ NOTIFY_BROKER: 'redis://127.0.0.1:6379' }).broker, 'redis://127.0.0.1:6379')
  t.equal(configFromEnv({ PORT: '0' }).port, 0, 'port 0: any free port')
})

t.test('configFromEnv: the broker follows a Redis store; the Redis variables', async t => {
  const c = configFromEnv({ NOTIFY_STORE: 'redis://10.0.0.5:6379/2', NOTIFY_REDIS_PREFIX: 'prod:', NOTIFY_REDIS_TIMEOUT_MS: '500', NOTIFY_PRESENCE_TTL_MS: '3000' })
  t.equal(c.store, 'redis://10.0.0.5:6379/2')
  t.equal(c.broker, 'redis://10.0.0.5:6379/2', 'the broker follows the store')
  t.equal(c.redisPrefix, 'prod:')
  t.same(c.redis, { commandTimeoutMs: 500, connectTimeoutMs: 500 })
  t.equal(c.presenceTtlMs, 3000)
  t.equal(configFromEnv({ NOTIFY_STORE: 'rediss://r:6380', NOTIFY_BROKER: 'local' }).broker, 'local', 'unless NOTIFY_BROKER says otherwise')
  for (const bad of ['0', '-5', 'soon', '1.5']) {
    t.throws(() => configFromEnv({ NOTIFY_REDIS_TIMEOUT_MS: bad }), /NOTIFY_REDIS_TIMEOUT_MS/, `NOTIFY_REDIS_TIMEOUT_MS='${bad}'`)
  }
  t.throws(() => configFromEnv({ NOTIFY_PRESENCE_TTL_MS: 'x' }), /NOTIFY_PRESENCE_TTL_MS/)
})

t.test('configFromEnv defaults', async t => {
  const c = configFromEnv({})
  t.equal(c.port, 3000)
  t.equal(c.host, '127.0.0.1')
  t.equal(c.store, 'sqlite:./data/notifications.db')
  t.equal(c.broker, 'local')
  t.equal(c.logLevel, 'info')
  t.notOk('jwtSecret' in c, 'no secret: the server makes a development one')
  t.notOk('apiKeys' in c)
  t.equal(configFromEnv({ NOTIFY_API_KEYS: ' , ' }).apiKeys?.length ?? 0, 0, 'an empty list is no keys')
  t.equal(configFromEnv({ PORT: '' }).port, SERVER_DEFAULTS.port, 'an empty PORT is unset, not port 0')
})

t.test('configFromEnv rejects a bad PORT', async t => {
  for (const bad of ['abc', '-1', '65536', '80.5', '0x50', '1e3', '80abc', ' ']) {
    t.throws(() => configFromEnv({ PORT: bad }), { name: 'ConfigError', message: /^PORT / }, `PORT='${bad}'`)
  }
})

t.test('SQLite store (the default kind) keeps history and seq across a restart', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'un-sqlite-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = `sqlite:${join(dir, 'n.db')}`

  const first = await build(t, { store })
  const a = await publish(first, { category: 'dashboard', title: 'first' })
  const b = await publish(first, { category: 'system', title: 'second', audience: { users: ['alice'] } })
  await publish(first, { category: 'admin', title: 'admins only' })
  const alice = await connect(first.ws, { token: await first.token('alice') })
  const before = await alice.next()
  t.equal(before.lastSeq, 3)
  const read = await alice.request({ type: 'mark_read', ids: [a.id] })
  t.strictSame(read.result, { unread: 1 })
  alice.close()
  await first.app.close()

  const second = await build(t, { store })
  const again = await connect(second.ws, { token: await second.token('alice'), query: { since: '0' } })
  const connected = await again.next()
  t.equal(connected.lastSeq, 3, 'lastSeq survives')
  t.equal(connected.epoch, before.epoch, 'same file, same log, same epoch')
  t.equal(connected.unread, 1, 'read marks survive')
  const replay = [await again.next(), await again.next(), await again.next()]
  t.strictSame(replay.map(f => f.notification?.id), [a.id, b.id, undefined])
  t.same(replay[2], { type: 'replayed', count: 2, complete: true }, 'a cursor from before the restart resumes completely')
  const hist = await again.request({ type: 'request_notification_history' })
  t.strictSame(hist.result.notifications.map((n: any) => [n.id, n.read]), [[b.id, false], [a.id, true]], 'history still there')
  const c = await publish(second, { category: 'dashboard', title: 'after restart' })
  t.equal(c.seq, 4, 'seq continues')
  t.equal((await again.nextOf('notification')).notification.id, c.id)
  again.close()
})

t.test('tokens are never logged; connect and publish are', async t => {
  const lines: string[] = []
  const stream = { write (chunk: string) { lines.push(chunk) } }
  const app = await buildServer({ jwtSecret: SECRET, apiKeys: [API_KEY], store: 'memory', logger: { level: 'trace', stream } })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  const h = {
    app,
    port: address.port,
    http: `http://127.0.0.1:${address.port}`,
    ws: `ws://127.0.0.1:${address.port}/ws`,
    token: (sub: string, role = 'user') => signToken(SECRET, { sub, role, expiresIn: '1h' })
  }
  const viaQuery = await h.token('alice')
  const viaHeader = await h.token('bob')
  const rejected = await signToken('some-other-secret-0123456789', { sub: 'eve', role: 'user' })
  const q = await connect(h.ws, { query: { token: viaQuery } })
  const hd = await connect(h.ws, { token: viaHeader })
  const qc = await q.next()
  const hc = await hd.next()
  const refused = await refusedUpgrade(h.ws, { query: { token: rejected } })
  t.equal(refused.statusCode, 401)
  const refusedHeader = await refusedUpgrade(h.ws, { token: rejected })
  t.equal(refusedHeader.statusCode, 401)
  const sent = await publishHttp(h as never, { category: 'dashboard', title: 'logged' })
  await q.nextOf('notification')
  await hd.nextOf('notification')
  const refresh = await q.request({ type: 'refresh', token: await h.token('alice') })
  t.equal(refresh.type, 'reply')
  q.close(); hd.close()
  await sleep(50)

  const text = lines.join('')
  t.ok(lines.length > 5, 'something was logged')
  for (const [label, secret] of [['?token=', viaQuery], ['Authorization header', viaHeader], ['refused token', rejected], ['API key', API_KEY], ['JWT secret', SECRET]] as const) {
    t.notOk(text.includes(secret), `${label}: not in the logs`)
  }
  const records = lines.flatMap(l => l.split('\n')).filter(l => l.trim() !== '').map(l => JSON.parse(l) as Record<string, any>)
  const wsRequests = records.filter(r => typeof r.req?.url === 'string' && r.req.url.startsWith('/ws'))
  t.ok(wsRequests.length >= 2, 'the upgrade requests are logged')
  t.ok(wsRequests.some(r => r.req.url.includes('token=[redacted]')), 'with the token masked')
  const opened = records.filter(r => r.msg === 'connection opened')
  t.strictSame(opened.map(r => r.sessionId).sort(), [qc.sessionId, hc.sessionId].sort(), 'connect lines carry the sessionId')
  t.strictSame(opened.map(r => r.userId).sort(), ['alice', 'bob'])
  const published = records.find(r => r.msg === 'notification published')
  t.ok(published, 'a publish line')
  t.equal(published?.id, sent.id)
  t.equal(published?.seq, sent.seq)
  t.equal(published?.category, 'dashboard')
  const delivered = records.find(r => r.msg === 'notification delivered')
  t.equal(delivered?.id, sent.id, 'a delivery line')
  t.equal(delivered?.recipients, 2)
})

/**
 * Runs a TypeScript entry point the way this test process runs: same node, same
 * loader flags. Not through tsx: its whitespace-minified output, merged into
 * this run's coverage of the same files, would corrupt the coverage map.
 */
const tsNode = (entry: string, ...args: string[]) => [...process.execArgv, entry, ...args]

t.test('npm run token prints a token the server accepts', async t => {
  const run = promisify(execFile)
  const { stdout } = await run(process.execPath, tsNode('scripts/token.ts', '--user', 'alice', '--role', 'user'), {
    cwd: ROOT,
    env: { ...process.env, NOTIFY_JWT_SECRET: SECRET },
    timeout: START_MS
  })
  const token = stdout.trim()
  t.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'one JWT on stdout')
  const verified = await createTokenVerifier(SECRET)(token)
  t.same(verified.user, { id: 'alice', role: 'user' })
  t.ok(verified.expiresAt !== undefined && verified.expiresAt > Date.now() + 50 * 60_000, 'expires in about an hour')
  await t.rejects(createTokenVerifier('another-secret-0123456789')(token), 'signed with NOTIFY_JWT_SECRET, not anything else')
})

t.test('the standalone process: starts, answers /health, exits 0 on SIGTERM with 300 open connections and a peer that stopped reading', async t => {
  const child = spawn(process.execPath, tsNode('server/main.ts'), {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', NOTIFY_STORE: 'memory', NOTIFY_JWT_SECRET: SECRET, NOTIFY_API_KEYS: API_KEY, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.resume()
  const port = await listeningPort(child, exited)

  let health = 0
  for (let i = 0; i < 50 && health !== 200; i++) {
    health = await fetch(`http://127.0.0.1:${port}/health`).then(r => r.status, () => 0)
    if (health !== 200) await sleep(100)
  }
  t.equal(health, 200, '/health 200')
  const c = await connect(`ws://127.0.0.1:${port}/ws`, { token: await signToken(SECRET, { sub: 'alice', role: 'user' }) })
  t.equal((await c.next()).type, 'connected')
  // Many more open connections, and one peer that stopped reading and will never answer the close.
  const crowd = []
  for (let batch = 0; batch < 6; batch++) {
    crowd.push(...await Promise.all(Array.from({ length: 50 }, async (_, i) =>
      connect(`ws://127.0.0.1:${port}/ws`, { token: await signToken(SECRET, { sub: `u${batch * 50 + i}`, role: 'user' }) }))))
  }
  const mute = await connect(`ws://127.0.0.1:${port}/ws`, { token: await signToken(SECRET, { sub: 'mute', role: 'user' }) })
  await mute.next()
  ;(mute.ws as unknown as { _socket: { pause (): void } })._socket.pause()

  child.kill('SIGTERM')
  const { code, signal } = await within(exited, 10_000, 'exit after SIGTERM')
  t.equal(code, 0, 'exit code 0')
  t.equal(signal, null)
  t.equal((await within(c.closed, 2000, 'socket close')).code, 1001, 'open sockets were closed with 1001')
  const codes = await within(Promise.all(crowd.map(k => k.closed.then(x => x.code))), 5000, 'the crowd closed')
  t.equal(codes.filter(code => code === 1001).length, 300, 'every one of 300 more connections was closed with 1001')
  ;(mute.ws as unknown as { _socket: { resume (): void } })._socket.resume()
  await within(mute.closed, 5000, 'the mute peer is gone too')
  t.match(out, /"signal":"SIGTERM"/, 'logged the shutdown')
})
