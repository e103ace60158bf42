// The standalone server's configuration: every documented variable reaches the
// server, every mistake stops the start with one line naming the variable, the
// SQLite path is checked in bounded time, and CORS is off unless origins are given.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, ENV_VARIABLES, buildServer, checkSqlitePath, configErrorLine, configFromEnv, startServer } from '../server/index.js'
import { build, connect, refusedUpgrade } from './helper.js'

const KEY = 'a-publish-key-0123456789'

t.test('every knob maps to its setting', async t => {
  const c = configFromEnv({
    NOTIFY_MAX_TOKEN_AGE: '2h',
    NOTIFY_CORS_ORIGINS: 'https://app.example.com, http://localhost:5173',
    NOTIFY_BODY_LIMIT: '256kb',
    NOTIFY_PUBLISH_RATE_LIMIT: '50/10s',
    NOTIFY_RETENTION_MAX_COUNT: '500',
    NOTIFY_RETENTION_MAX_AGE: '7d',
    NOTIFY_WS_HEARTBEAT: '15s',
    NOTIFY_WS_MAX_PAYLOAD: '32kb',
    NOTIFY_WS_SEND_BUFFER: '2mb',
    NOTIFY_WS_REQUESTS_PER_SECOND: '10',
    NOTIFY_WS_REQUEST_BURST: '20',
    NOTIFY_WS_RATE_LIMITED_BEFORE_CLOSE: '5',
    NOTIFY_WS_BAD_FRAMES_PER_MINUTE: '3',
    NOTIFY_WS_MAX_CONNECTIONS_PER_USER: '4',
    LOG_LEVEL: 'warn'
  })
  t.equal(c.maxTokenAgeSeconds, 7200)
  t.strictSame(c.corsOrigins, ['https://app.example.com', 'http://localhost:5173'])
  t.equal(c.bodyLimit, 256 * 1024)
  t.strictSame(c.publishRateLimit, { max: 50, timeWindowMs: 10_000 })
  t.strictSame(c.retention, { maxCount: 500, maxAgeMs: 7 * 86_400_000 })
  t.equal(c.heartbeatMs, 15_000)
  t.strictSame(c.limits, {
    maxPayload: 32 * 1024,
    sendBufferBytes: 2 * 1024 * 1024,
    requestsPerSecond: 10,
    requestBurst: 20,
    rateLimitedBeforeClose: 5,
    badFramesPerMinute: 3,
    maxConnectionsPerUser: 4
  })
  t.equal(c.logLevel, 'warn')
  t.equal(configFromEnv({ NOTIFY_PUBLISH_RATE_LIMIT: 'off' }).publishRateLimit, false, 'the publish rate limit can be turned off')
  t.strictSame(configFromEnv({ NOTIFY_CORS_ORIGINS: '*' }).corsOrigins, ['*'])
  const defaults = configFromEnv({})
  t.notOk('corsOrigins' in defaults, 'CORS off by default')
  t.notOk('maxTokenAgeSeconds' in defaults, 'the plugin default max token age applies')
})

t.test('each mistake is a ConfigError whose one line names the variable', async t => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ NOTIFY_JWT_SECRET: '' }, /^NOTIFY_JWT_SECRET is set but empty/],
    [{ NOTIFY_JWT_SECRET: 'short' }, /^NOTIFY_JWT_SECRET must be at least 16 characters/],
    [{ NOTIFY_JWT_SECRET: ' a-secret-with-a-space-0123 ' }, /^NOTIFY_JWT_SECRET has leading or trailing whitespace/],
    [{ NOTIFY_API_KEYS: '["key-one-0123456789","key-two-0123456789"]' }, /^NOTIFY_API_KEYS must be a comma-separated list of keys, not JSON/],
    [{ NOTIFY_API_KEYS: `${KEY},short` }, /^NOTIFY_API_KEYS entry 2 is 5 characters long; a key needs at least 16/],
    [{ NOTIFY_API_KEYS: 'a-key-with-"quotes"-0123' }, /^NOTIFY_API_KEYS entry 1 has a space, quote/],
    [{ PORT: '3000x' }, /^PORT must be a whole number from 0 to 65535/],
    [{ PORT: ' ' }, /^PORT must be a whole number/],
    [{ HOST: ' ' }, /^HOST must be a host name/],
    [{ LOG_LEVEL: 'verbose' }, /^LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got 'verbose'/],
    [{ NOTIFY_STORE: 'postgres://x' }, /^NOTIFY_STORE must be memory, sqlite:<path> or redis:\/\/host:port/],
    [{ NOTIFY_STORE: 'sqlite:' }, /^NOTIFY_STORE 'sqlite:' needs a path/],
    [{ NOTIFY_BROKER: 'kafka' }, /^NOTIFY_BROKER must be local or redis/],
    [{ NOTIFY_BROKER: 'redis://[bad' }, /^NOTIFY_BROKER is not a valid URL/],
    [{ NOTIFY_MAX_TOKEN_AGE: '3600' }, /^NOTIFY_MAX_TOKEN_AGE must be a duration such as/],
    [{ NOTIFY_MAX_TOKEN_AGE: '0s' }, /^NOTIFY_MAX_TOKEN_AGE must be a duration/],
    [{ NOTIFY_CORS_ORIGINS: 'https://app.example.com/' }, /^NOTIFY_CORS_ORIGINS 'https:\/\/app.example.com\/' is not an origin/],
    [{ NOTIFY_CORS_ORIGINS: 'app.example.com' }, /^NOTIFY_CORS_ORIGINS 'app.example.com' is not an origin/],
    [{ NOTIFY_CORS_ORIGINS: '*,https://a.example' }, /^NOTIFY_CORS_ORIGINS '\*' \(any origin\) cannot be combined/],
    [{ NOTIFY_CORS_ORIGINS: ' , ' }, /^NOTIFY_CORS_ORIGINS must list at least one origin/],
    [{ NOTIFY_BODY_LIMIT: '10 parsecs' }, /^NOTIFY_BODY_LIMIT must be a size in bytes/],
    [{ NOTIFY_BODY_LIMIT: '2gb' }, /^NOTIFY_BODY_LIMIT must be a size/],
    [{ NOTIFY_PUBLISH_RATE_LIMIT: '100' }, /^NOTIFY_PUBLISH_RATE_LIMIT must be <requests>\/<duration>/],
    [{ NOTIFY_PUBLISH_RATE_LIMIT: '0/1s' }, /^NOTIFY_PUBLISH_RATE_LIMIT must be a whole number from 1/],
    [{ NOTIFY_RETENTION_MAX_COUNT: '-5' }, /^NOTIFY_RETENTION_MAX_COUNT must be a whole number from 1/],
    [{ NOTIFY_RETENTION_MAX_AGE: '1y' }, /^NOTIFY_RETENTION_MAX_AGE must be a duration/],
    [{ NOTIFY_WS_MAX_PAYLOAD: '0' }, /^NOTIFY_WS_MAX_PAYLOAD must be a size/],
    [{ NOTIFY_WS_MAX_CONNECTIONS_PER_USER: '1.5' }, /^NOTIFY_WS_MAX_CONNECTIONS_PER_USER must be a whole number/],
    [{ NOTIFY_LEGACY_ADAPTERS: 'billing' }, /^NOTIFY_LEGACY_ADAPTERS: unknown adapter 'billing'/]
  ]
  for (const [env, message] of cases) {
    t.throws(() => configFromEnv(env), { name: 'ConfigError', message }, JSON.stringify(env))
  }
  let secretLeak: unknown
  try { configFromEnv({ NOTIFY_API_KEYS: `${KEY},tiny-secret` }) } catch (err) { secretLeak = err }
  t.notMatch((secretLeak as Error).message, /tiny-secret/, 'an API key is never echoed in the message')
  t.ok(ENV_VARIABLES.every(v => /^(NOTIFY_[A-Z_]+|PORT|HOST|LOG_LEVEL)$/.test(v.name)), 'every variable is NOTIFY_… (or the conventional PORT, HOST, LOG_LEVEL)')
})

t.test('an unusable SQLite path names the file, in bounded time', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'un-config-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'not-a-db'), 'hello, this is text and not a database file at all '.repeat(20))
  mkdirSync(join(dir, 'a-directory.db'))
  const cases: Array<[string, RegExp]> = [
    ['/proc/notifications.db', /\/proc is a kernel pseudo-filesystem/],
    ['/proc/self/fd/0', /\/(proc|dev)\S* is a kernel pseudo-filesystem/],
    ['/dev/null', /\/dev\/null is a kernel pseudo-filesystem/],
    ['/etc/hostname/n.db', /its directory cannot be created or written/],
    [join(dir, 'a-directory.db'), /it exists and is not a regular file/],
    [join(dir, 'not-a-db'), /file is not a database/]
  ]
  for (const [path, message] of cases) {
    const started = Date.now()
    t.throws(() => checkSqlitePath(path), { name: 'ConfigError', message: new RegExp(`^NOTIFY_STORE: cannot use the SQLite file '${path.replace(/[./]/g, '\\$&')}': ${message.source}`) }, path)
    t.ok(Date.now() - started < 2000, `${path}: answered in ${Date.now() - started} ms`)
  }
  t.doesNotThrow(() => checkSqlitePath(join(dir, 'deeper', 'ok.db')), 'a new file in a new directory is fine')
  t.doesNotThrow(() => checkSqlitePath(join(dir, 'deeper', 'ok.db')), 'and so is the same file once it exists')
  await t.rejects(buildServer({ jwtSecret: 'test-secret-0123456789abcdef', logger: false, store: 'sqlite:/proc/n.db' }), ConfigError, 'buildServer checks the path before opening it')
})

t.test('a configuration mistake is one line naming the variable; a crash keeps its stack', async t => {
  const base = { PORT: '0', HOST: '127.0.0.1', NOTIFY_STORE: 'memory', NOTIFY_JWT_SECRET: 'a-good-secret-0123456789', LOG_LEVEL: 'silent' }
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ NOTIFY_JWT_SECRET: '' }, /NOTIFY_JWT_SECRET is set but empty/],
    [{ NOTIFY_API_KEYS: '["a","b"]' }, /NOTIFY_API_KEYS must be a comma-separated list/],
    [{ NOTIFY_STORE: 'sqlite:/proc/x.db' }, /NOTIFY_STORE: cannot use the SQLite file '\/proc\/x\.db'/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL must be one of/]
  ]
  for (const [env, message] of cases) {
    const err = await startServer({ ...base, ...env }).then(() => undefined, (e: unknown) => e)
    t.type(err, ConfigError, JSON.stringify(env))
    const line = configErrorLine(err)
    t.match(line, /^unified-notifications: configuration error: /)
    t.match(line, message)
    t.notMatch(line, /\n/, 'one line')
  }
  const h = await build(t)
  const busy = await startServer({ ...base, PORT: String(h.port) }).then(() => undefined, (e: unknown) => e)
  t.equal(configErrorLine(busy), `unified-notifications: configuration error: PORT/HOST: 127.0.0.1:${h.port} is already in use`)
  t.equal(configErrorLine(new Error('a real bug')), undefined, 'anything else is printed with its stack')
})

t.test('the knobs reach the running server', async t => {
  const h = await build(t, {
    apiKeys: [KEY],
    bodyLimit: 2048,
    publishRateLimit: { max: 4, timeWindowMs: 60_000 },
    limits: { maxConnectionsPerUser: 1 },
    retention: { maxCount: 2 },
    corsOrigins: configFromEnv({ NOTIFY_CORS_ORIGINS: 'https://app.example.com' }).corsOrigins!
  })
  const post = (body: unknown) => h.app.inject({ method: 'POST', url: '/api/notifications', headers: { authorization: `Bearer ${KEY}` }, payload: body as object })
  t.equal((await post({ category: 'system', title: 'x'.repeat(10), data: { pad: 'y'.repeat(4000) } })).statusCode, 413, 'body limit')
  t.equal((await post({ category: 'system', title: 'one' })).statusCode, 202)
  t.equal((await post({ category: 'system', title: 'two' })).statusCode, 202)
  t.equal((await post({ category: 'system', title: 'three' })).statusCode, 202)
  const fourth = await post({ category: 'system', title: 'four' })
  t.equal(fourth.statusCode, 429, 'publish rate limit')
  t.equal(fourth.json().code, 'UN_RATE_LIMITED')

  const token = await h.token('alice')
  const first = await connect(h.ws, { token })
  t.equal((await first.next()).type, 'connected')
  const history = await first.request({ type: 'request_notification_history' })
  t.strictSame(history.result.notifications.map((n: { title: string }) => n.title), ['three', 'two'], 'retention by count keeps the newest two')
  t.equal((await refusedUpgrade(h.ws, { token })).statusCode, 403, 'per-user connection limit')
  first.close()

  const allowed = await h.app.inject({ method: 'OPTIONS', url: '/api/notifications', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' } })
  t.equal(allowed.statusCode, 204, 'CORS preflight from an allowed origin')
  t.equal(allowed.headers['access-control-allow-origin'], 'https://app.example.com')
  t.match(String(allowed.headers['access-control-allow-headers']).toLowerCase(), /authorization/)
  const other = await h.app.inject({ method: 'GET', url: '/health', headers: { origin: 'https://evil.example' } })
  t.equal(other.headers['access-control-allow-origin'], undefined, 'no CORS header for another origin')
})

t.test('CORS is off by default', async t => {
  const h = await build(t)
  const res = await h.app.inject({ method: 'GET', url: '/health', headers: { origin: 'https://app.example.com' } })
  t.equal(res.headers['access-control-allow-origin'], undefined)
  const pre = await h.app.inject({ method: 'OPTIONS', url: '/api/notifications', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' } })
  t.not(pre.statusCode, 204, 'no preflight answer')
  t.equal(pre.headers['access-control-allow-origin'], undefined)
})
