// The standalone server's configuration: defaults, and the documented environment
// variables read into a ServerConfig (see README and docs/operations.md). Each
// variable is one row of ENV_VARIABLES: its parser checks the value and names the
// variable in the ConfigError, so a mistake stops the start with one clear line.
import type { FastifyServerOptions } from 'fastify'
import { LEGACY_ADAPTERS } from '../adapters/index.js'
import type { UnifiedNotificationsOptions } from '../plugins/options.js'
import type { Limits } from '../src/limits.js'
import type { Retention } from '../src/stores/history-store.js'
import { DEFAULT_SECRET_FILE } from './dev-secret.js'

export interface ServerConfig extends Omit<UnifiedNotificationsOptions, 'jwtSecret'> {
  port: number
  host: string
  /** Absent: a random secret kept in `secretFile`, with a warning. */
  jwtSecret?: string
  /** Where the generated development secret is kept, so `npm run token` can sign with it. */
  secretFile: string
  logLevel: string
  /** false silences logging (tests); an object is passed to Fastify as its logger options. */
  logger?: boolean | FastifyServerOptions['logger']
  /** Largest REST body in bytes (413 above it). */
  bodyLimit: number
  /** Legacy adapters to enable, fed by POST /api/legacy/<adapter>/<event>: 'dashboard', 'admin-health', 'maintenance'. */
  legacyAdapters?: string[]
  /** Origins allowed to call the REST API from a browser (CORS); absent: CORS off. */
  corsOrigins?: string[]
  /** NOTIFY_DEMO=1: POST /demo/token and simulated legacy emitters (server/demo.ts). Never in production. */
  demo?: boolean
  /** Demo mode: one step of the simulation, in ms (default 1000). */
  demoTickMs?: number
}

export const SERVER_DEFAULTS: ServerConfig = {
  port: 3000,
  host: '127.0.0.1',
  store: 'sqlite:./data/notifications.db',
  secretFile: DEFAULT_SECRET_FILE,
  logLevel: 'info',
  bodyLimit: 1024 * 1024,
  metrics: true
}

/** A configuration mistake: `npm start` prints its message as one line and exits 1, without a stack. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Shortest API key accepted from NOTIFY_API_KEYS: a short key can be guessed. */
export const MIN_API_KEY_LENGTH = 16
/** Shortest NOTIFY_JWT_SECRET, as the root plugin requires of jwtSecret. */
export const MIN_JWT_SECRET_LENGTH = 16
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

// ---- value parsers: each throws a plain Error whose message follows the variable's name ----

function list (raw: string): string[] {
  return raw.split(',').map(s => s.trim()).filter(s => s !== '')
}

function integer (min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: string): number => {
    // Decimal digits only: Number() would take '0x50', '1e3' or ' '.
    const n = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new Error(`must be a whole number from ${min} to ${max}, got '${raw}'`)
    return n
  }
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
/** Milliseconds from '500ms', '30s', '15m', '24h', '7d' (a unit is required: a bare number is ambiguous). */
export function duration (raw: string): number {
  const m = /^(\d{1,12})(ms|s|m|h|d)$/.exec(raw)
  const ms = m ? Number(m[1]) * DURATION_UNITS[m[2]!]! : 0
  if (!(ms > 0) || ms > 100 * 365 * DURATION_UNITS.d!) throw new Error(`must be a duration such as 500ms, 30s, 15m, 24h or 7d, got '${raw}'`)
  return ms
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1024, kib: 1024, mb: 1024 ** 2, mib: 1024 ** 2 }
/** Bytes from '65536', '64kb', '1mb' (kb and mb are 1024-based). */
export function size (raw: string): number {
  const m = /^(\d{1,12})\s*([a-z]*)$/i.exec(raw)
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined
  const bytes = m && unit !== undefined ? Number(m[1]) * unit : 0
  if (!(bytes > 0) || bytes > 1024 ** 3) throw new Error(`must be a size in bytes from 1 to 1gb, such as 65536, 64kb or 1mb, got '${raw}'`)
  return bytes
}

function apiKeys (raw: string): string[] {
  if (/^\s*[[{"]/.test(raw)) throw new Error('must be a comma-separated list of keys, not JSON')
  return list(raw).map((key, i) => {
    // The key itself is never echoed: the message may end up in a log.
    if (key.length < MIN_API_KEY_LENGTH) throw new Error(`entry ${i + 1} is ${key.length} characters long; a key needs at least ${MIN_API_KEY_LENGTH}`)
    if (!/^[\x21-\x7e]+$/.test(key) || /["'\\]/.test(key)) throw new Error(`entry ${i + 1} has a space, quote, backslash or non-ASCII character`)
    return key
  })
}

function storeSpec (raw: string): string {
  if (raw === 'memory') return raw
  if (raw.startsWith('sqlite:')) {
    if (raw === 'sqlite:') throw new Error("'sqlite:' needs a path, e.g. sqlite:./data/notifications.db")
    return raw
  }
  if (/^rediss?:\/\//.test(raw)) return redisUrl(raw)
  throw new Error(`must be memory, sqlite:<path> or redis://host:port, got '${raw}'`)
}

function brokerSpec (raw: string): string {
  if (raw === 'local') return raw
  if (/^rediss?:\/\//.test(raw)) return redisUrl(raw)
  throw new Error(`must be local or redis://host:port, got '${raw}'`)
}

function redisPrefix (raw: string): string {
  if (/[{}\s]/.test(raw)) throw new Error(`must not contain braces or spaces (it becomes the hash tag), got '${raw}'`)
  return raw
}

function redisUrl (raw: string): string {
  try {
    new URL(raw) // eslint-disable-line no-new
  } catch {
    throw new Error(`is not a valid URL: '${raw}'`)
  }
  return raw
}

function origins (raw: string): string[] {
  const all = list(raw)
  if (all.length === 0) throw new Error('must list at least one origin, e.g. https://app.example.com')
  if (all.includes('*')) {
    if (all.length > 1) throw new Error("'*' (any origin) cannot be combined with a list")
    return all
  }
  for (const origin of all) {
    let parsed: string | undefined
    try { parsed = new URL(origin).origin } catch {}
    if (parsed !== origin) throw new Error(`'${origin}' is not an origin (scheme://host[:port], no path or trailing slash)`)
  }
  return all
}

function publishRate (raw: string): { max: number, timeWindowMs: number } | false {
  if (raw === 'off') return false
  const m = /^(\d+)\/(.+)$/.exec(raw)
  if (!m) throw new Error(`must be <requests>/<duration> such as 1000/1s, or off, got '${raw}'`)
  return { max: integer(1)(m[1]!), timeWindowMs: duration(m[2]!) }
}

/** An on/off variable: 1/true or 0/false. */
function onOff (raw: string): boolean {
  if (raw === '1' || raw === 'true') return true
  if (raw === '0' || raw === 'false') return false
  throw new Error(`must be 1 or 0, got '${raw}'`)
}

/** Checks adapter names against the known adapters; an unknown one fails at startup. */
export function legacyAdapterNames (names: readonly string[] | undefined): string[] {
  if (names === undefined) return []
  if (!Array.isArray(names)) throw new ConfigError('legacyAdapters must be an array of adapter names')
  for (const name of names) {
    if (!LEGACY_ADAPTERS.has(name)) {
      throw new ConfigError(`NOTIFY_LEGACY_ADAPTERS: unknown adapter '${name}' (known: ${[...LEGACY_ADAPTERS.keys()].join(', ')})`)
    }
  }
  return [...new Set(names)]
}

// ---- the table: one row per variable ------------------------------------------------

export interface EnvVariable {
  name: string
  /** Checks the (non-empty) value and writes it into the config; throws with a message that follows the name. */
  apply (raw: string, config: ServerConfig): void
  /** Whether an empty value is an error rather than "unset" (a secret that would silently fall back). */
  emptyIsError?: string
}

function limit (key: keyof Limits, parse: (raw: string) => number): EnvVariable['apply'] {
  return (raw, c) => { c.limits = { ...c.limits, [key]: parse(raw) } }
}
function retention (key: keyof Retention, parse: (raw: string) => number): EnvVariable['apply'] {
  return (raw, c) => { c.retention = { ...c.retention, [key]: parse(raw) } }
}

export const ENV_VARIABLES: EnvVariable[] = [
  { name: 'PORT', apply: (raw, c) => { c.port = integer(0, 65535)(raw) } },
  {
    name: 'HOST',
    apply: (raw, c) => {
      if (raw === '' || /\s/.test(raw)) throw new Error(`must be a host name or address, got '${raw}'`)
      c.host = raw
    }
  },
  {
    name: 'NOTIFY_JWT_SECRET',
    emptyIsError: `is set but empty: unset it to use the development secret, or give at least ${MIN_JWT_SECRET_LENGTH} characters`,
    apply: (raw, c) => {
      if (raw !== raw.trim()) throw new Error('has leading or trailing whitespace: remove it (tokens are signed with the exact secret)')
      if (raw.length < MIN_JWT_SECRET_LENGTH) throw new Error(`must be at least ${MIN_JWT_SECRET_LENGTH} characters long, got ${raw.length}`)
      c.jwtSecret = raw
    }
  },
  { name: 'NOTIFY_API_KEYS', apply: (raw, c) => { c.apiKeys = apiKeys(raw) } },
  { name: 'NOTIFY_STORE', apply: (raw, c) => { c.store = storeSpec(raw) } },
  { name: 'NOTIFY_BROKER', apply: (raw, c) => { c.broker = brokerSpec(raw) } },
  { name: 'NOTIFY_REDIS_PREFIX', apply: (raw, c) => { c.redisPrefix = redisPrefix(raw) } },
  {
    name: 'NOTIFY_REDIS_TIMEOUT_MS',
    apply: (raw, c) => {
      const ms = integer(1)(raw)
      c.redis = { commandTimeoutMs: ms, connectTimeoutMs: ms }
    }
  },
  { name: 'NOTIFY_PRESENCE_TTL_MS', apply: (raw, c) => { c.presenceTtlMs = integer(1)(raw) } },
  {
    name: 'NOTIFY_LEGACY_ADAPTERS',
    apply: (raw, c) => {
      const names = list(raw)
      if (names.length > 0) c.legacyAdapters = legacyAdapterNames(names)
    }
  },
  {
    name: 'LOG_LEVEL',
    apply: (raw, c) => {
      if (!(LOG_LEVELS as readonly string[]).includes(raw)) throw new Error(`must be one of ${LOG_LEVELS.join(', ')}, got '${raw}'`)
      c.logLevel = raw
    }
  },
  { name: 'NOTIFY_MAX_TOKEN_AGE', apply: (raw, c) => { c.maxTokenAgeSeconds = Math.max(1, Math.floor(duration(raw) / 1000)) } },
  { name: 'NOTIFY_METRICS', apply: (raw, c) => { c.metrics = onOff(raw) } },
  {
    name: 'NOTIFY_LOCKED_CATEGORIES',
    // Checked against the configured categories when the plugin registers.
    apply: (raw, c) => { c.lockedCategories = list(raw) }
  },
  { name: 'NOTIFY_CORS_ORIGINS', apply: (raw, c) => { c.corsOrigins = origins(raw) } },
  { name: 'NOTIFY_BODY_LIMIT', apply: (raw, c) => { c.bodyLimit = size(raw) } },
  { name: 'NOTIFY_PUBLISH_RATE_LIMIT', apply: (raw, c) => { c.publishRateLimit = publishRate(raw) } },
  { name: 'NOTIFY_RETENTION_MAX_COUNT', apply: retention('maxCount', integer(1)) },
  { name: 'NOTIFY_RETENTION_MAX_AGE', apply: retention('maxAgeMs', duration) },
  { name: 'NOTIFY_WS_HEARTBEAT', apply: (raw, c) => { c.heartbeatMs = duration(raw) } },
  { name: 'NOTIFY_WS_MAX_PAYLOAD', apply: limit('maxPayload', size) },
  { name: 'NOTIFY_WS_SEND_BUFFER', apply: limit('sendBufferBytes', size) },
  { name: 'NOTIFY_WS_REQUESTS_PER_SECOND', apply: limit('requestsPerSecond', integer(1)) },
  { name: 'NOTIFY_WS_REQUEST_BURST', apply: limit('requestBurst', integer(1)) },
  { name: 'NOTIFY_WS_RATE_LIMITED_BEFORE_CLOSE', apply: limit('rateLimitedBeforeClose', integer(1)) },
  { name: 'NOTIFY_WS_BAD_FRAMES_PER_MINUTE', apply: limit('badFramesPerMinute', integer(1)) },
  { name: 'NOTIFY_WS_MAX_CONNECTIONS_PER_USER', apply: limit('maxConnectionsPerUser', integer(1)) },
  {
    name: 'NOTIFY_DEMO',
    apply: (raw, c) => {
      if (raw !== '1' && raw !== '0') throw new Error(`must be 1 or 0, got '${raw}'`)
      if (raw === '1') c.demo = true
    }
  },
  {
    name: 'NOTIFY_SOCKETIO',
    apply: (raw, c) => {
      if (raw !== '0' && raw !== '1') throw new Error(`must be 1 (on) or 0 (off), got '${raw}'`)
      if (raw === '1') c.socketio = true
    }
  }
]

/**
 * Reads the documented environment variables; anything unset (or empty) keeps its default
 * (but an empty NOTIFY_JWT_SECRET is an error: it would silently mean the development secret).
 * A bad value throws a ConfigError naming the variable.
 */
export function configFromEnv (env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const config: ServerConfig = { ...SERVER_DEFAULTS }
  for (const variable of ENV_VARIABLES) {
    const raw = env[variable.name]
    if (raw === undefined) continue
    if (raw === '') {
      if (variable.emptyIsError !== undefined) throw new ConfigError(`${variable.name} ${variable.emptyIsError}`)
      continue
    }
    try {
      // A secret is used exactly as given; everything else is trimmed.
      variable.apply(variable.name === 'NOTIFY_JWT_SECRET' ? raw : raw.trim(), config)
    } catch (err) {
      if (err instanceof ConfigError) throw err
      throw new ConfigError(`${variable.name} ${(err as Error).message}`)
    }
  }
  // The broker follows a Redis store unless NOTIFY_BROKER says otherwise.
  if (config.broker === undefined) config.broker = typeof config.store === 'string' && /^rediss?:\/\//.test(config.store) ? config.store : 'local'
  return config
}
