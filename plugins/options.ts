// The root plugin's options, resolved once with named defaults. A wrong type
// throws at registration, not at the first publish.
import type { FastifyRequest } from 'fastify'
import type { Registry } from 'prom-client'
import type { Broker } from '../src/brokers/broker.js'
import { DEFAULT_LIMITS, type Limits } from '../src/limits.js'
import { DEFAULT_ROLES, type RoleRules } from '../src/policy.js'
import { DEFAULT_LOCKED_CATEGORIES } from '../src/preferences.js'
import { DEFAULT_CATEGORIES, type User } from '../src/schemas.js'
import { DEFAULT_RETENTION, type HistoryStore, type Retention } from '../src/stores/history-store.js'
import { DEFAULT_MAX_TOKEN_AGE_SECONDS } from '../src/tokens.js'

/** The host app's own authentication: return the user, or null to refuse (401). */
/** `issuedAt` (epoch ms) plays the part of a token's iat: under a revocation, a user without it is refused. */
export type AuthenticateFn = (request: FastifyRequest) => Promise<(User & { expiresAt?: number, issuedAt?: number }) | null>

export interface UnifiedNotificationsOptions {
  /** HS256 secret for user tokens (NOTIFY_JWT_SECRET). Required unless `authenticate` is given. */
  jwtSecret?: string
  /** Replaces JWT verification with the host app's own check. */
  authenticate?: AuthenticateFn
  /** Longest a JWT is honoured, in seconds from its `iat` (NOTIFY_MAX_TOKEN_AGE; default 24 h). Caps `exp`; a token with neither is refused. */
  maxTokenAgeSeconds?: number
  /** Keys allowed to publish (NOTIFY_API_KEYS). */
  apiKeys?: string[]
  /** 'memory' (default) | 'sqlite:<path>' | 'redis://host:port[/db]' | a HistoryStore (e.g. a RedisStore on your own ioredis client). */
  store?: string | HistoryStore
  /** 'local' | 'redis://…' | a Broker. Default: follows the store (Redis store: the Redis broker on the same Redis), else 'local'. */
  broker?: string | Broker
  /** Key prefix of this deployment in Redis (NOTIFY_REDIS_PREFIX), default 'un:'. */
  redisPrefix?: string
  /** Redis waits: a command (a publish) fails after commandTimeoutMs with 503; default 2000 each. */
  redis?: { commandTimeoutMs?: number, connectTimeoutMs?: number }
  /** With Redis: how long a crashed instance's users still count as online (ms), default 15000. */
  presenceTtlMs?: number
  /** This instance's id (stats, presence, Redis connection names); default a random UUID. */
  instance?: string
  categories?: string[]
  roles?: RoleRules
  /** WebSocket route, default '/ws'. */
  path?: string
  /** Per-connection limits (see docs/protocol.md). */
  limits?: Partial<Limits>
  /** History retention by count and age. */
  retention?: Partial<Retention>
  /** WebSocket ping interval in ms; a connection that misses two pongs is terminated. */
  heartbeatMs?: number
  /** REST publish requests allowed per credential in a time window (429 above it); false turns it off. */
  publishRateLimit?: { max: number, timeWindowMs: number } | false
  /**
   * Prometheus metrics. true: GET /metrics (API key or admin) with a registry of its own and the
   * default process metrics; { registry }: the metrics go into the host app's registry, no route. Default false.
   */
  metrics?: boolean | { registry: Registry }
  /** Categories a user cannot mute (NOTIFY_LOCKED_CATEGORIES), default ['security'] (if configured); each must be a configured category. */
  lockedCategories?: string[]
  /**
   * Serves the Socket.IO protocol for old front ends (NOTIFY_SOCKETIO); `true` uses the default path '/socket.io/'.
   * `corsOrigins` lets pages on those origins (or '*': any) use the long-polling transport across origins
   * (engine.io answers its own requests, so the host app's CORS plugin does not reach them). Off by default.
   */
  socketio?: boolean | { path?: string, corsOrigins?: string[] }
}

export interface ResolvedOptions {
  jwtSecret: string | undefined
  authenticate: AuthenticateFn | undefined
  maxTokenAgeSeconds: number
  apiKeys: string[]
  store: string | HistoryStore
  broker: string | Broker | undefined
  redisPrefix: string
  redis: { commandTimeoutMs: number, connectTimeoutMs: number }
  presenceTtlMs: number
  instance: string | undefined
  categories: string[]
  roles: RoleRules
  path: string
  limits: Limits
  retention: Retention
  heartbeatMs: number
  publishRateLimit: { max: number, timeWindowMs: number } | false
  metrics: { registry?: Registry } | false
  lockedCategories: string[]
  /** Absent when the Socket.IO door is off. */
  socketio: { path: string, corsOrigins?: string[] } | undefined
}

export const DEFAULTS = {
  store: 'memory',
  redisPrefix: 'un:',
  redis: { commandTimeoutMs: 2000, connectTimeoutMs: 2000 },
  presenceTtlMs: 15_000,
  path: '/ws',
  heartbeatMs: 30_000,
  maxTokenAgeSeconds: DEFAULT_MAX_TOKEN_AGE_SECONDS,
  publishRateLimit: { max: 1000, timeWindowMs: 1000 },
  metrics: false,
  socketioPath: '/socket.io/'
} as const

function fail (message: string): never {
  throw new TypeError(`unified-notifications: ${message}`)
}

function stringList (name: string, value: unknown): string[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || !value.every(v => typeof v === 'string' && v !== '')) fail(`${name} must be an array of non-empty strings`)
  return value as string[]
}

function positiveNumbers<T extends object> (name: string, value: unknown, defaults: T): T {
  if (value === undefined) return { ...defaults }
  if (typeof value !== 'object' || value === null) fail(`${name} must be an object`)
  for (const [k, v] of Object.entries(value)) {
    if (!(k in defaults)) fail(`${name}.${k} is not a known setting`)
    if (typeof v !== 'number' || !(v > 0)) fail(`${name}.${k} must be a positive number`)
  }
  return { ...defaults, ...value }
}

export function resolveOptions (opts: UnifiedNotificationsOptions): ResolvedOptions {
  if (opts.jwtSecret !== undefined && (typeof opts.jwtSecret !== 'string' || opts.jwtSecret.length < 16)) {
    fail('jwtSecret must be a string of at least 16 characters')
  }
  if (opts.authenticate !== undefined && typeof opts.authenticate !== 'function') fail('authenticate must be a function')
  if (opts.jwtSecret === undefined && opts.authenticate === undefined) fail('give jwtSecret or authenticate')
  const store = opts.store ?? DEFAULTS.store
  if (typeof store !== 'string' && (typeof store !== 'object' || typeof store.append !== 'function')) fail('store must be a string or a HistoryStore')
  const broker = opts.broker
  if (broker !== undefined && typeof broker !== 'string' && (typeof broker !== 'object' || broker === null || typeof broker.publish !== 'function')) fail('broker must be a string or a Broker')
  const redisPrefix = opts.redisPrefix ?? DEFAULTS.redisPrefix
  if (typeof redisPrefix !== 'string' || redisPrefix === '' || /[{}]/.test(redisPrefix)) fail('redisPrefix must be a non-empty string without braces')
  const presenceTtlMs = opts.presenceTtlMs ?? DEFAULTS.presenceTtlMs
  if (typeof presenceTtlMs !== 'number' || !(presenceTtlMs > 0)) fail('presenceTtlMs must be a positive number')
  if (opts.instance !== undefined && (typeof opts.instance !== 'string' || opts.instance === '')) fail('instance must be a non-empty string')
  const path = opts.path ?? DEFAULTS.path
  if (typeof path !== 'string' || !path.startsWith('/')) fail("path must start with '/'")
  const maxTokenAgeSeconds = opts.maxTokenAgeSeconds ?? DEFAULTS.maxTokenAgeSeconds
  if (typeof maxTokenAgeSeconds !== 'number' || !Number.isInteger(maxTokenAgeSeconds) || maxTokenAgeSeconds < 1) fail('maxTokenAgeSeconds must be a positive integer (seconds)')
  const heartbeatMs = opts.heartbeatMs ?? DEFAULTS.heartbeatMs
  if (typeof heartbeatMs !== 'number' || !(heartbeatMs > 0)) fail('heartbeatMs must be a positive number')
  if (opts.roles !== undefined && (typeof opts.roles !== 'object' || opts.roles === null)) fail('roles must be an object')
  const metrics = opts.metrics ?? DEFAULTS.metrics
  if (typeof metrics !== 'boolean' && (typeof metrics !== 'object' || metrics === null || typeof metrics.registry?.registerMetric !== 'function')) {
    fail('metrics must be a boolean or { registry: a prom-client Registry }')
  }
  const categories = stringList('categories', opts.categories) ?? [...DEFAULT_CATEGORIES]
  // The default locks what exists of it (a custom category list may have no 'security'); a given list must name known ones.
  const lockedCategories = stringList('lockedCategories', opts.lockedCategories) ?? DEFAULT_LOCKED_CATEGORIES.filter(c => categories.includes(c))
  for (const c of lockedCategories) if (!categories.includes(c)) fail(`lockedCategories names unknown category '${c}'`)
  const socketio = resolveSocketIo(opts.socketio, path)
  if (socketio !== undefined && opts.authenticate !== undefined) {
    // A Socket.IO handshake is no Fastify request: it can only be checked by its token.
    fail('socketio authenticates handshakes with tokens (auth.token) and cannot run authenticate: give jwtSecret without authenticate, or leave socketio off')
  }
  return {
    jwtSecret: opts.jwtSecret,
    authenticate: opts.authenticate,
    maxTokenAgeSeconds,
    apiKeys: stringList('apiKeys', opts.apiKeys) ?? [],
    store,
    broker,
    redisPrefix,
    redis: positiveNumbers('redis', opts.redis, DEFAULTS.redis),
    presenceTtlMs,
    instance: opts.instance,
    categories,
    roles: opts.roles ?? DEFAULT_ROLES,
    path,
    limits: positiveNumbers('limits', opts.limits, DEFAULT_LIMITS),
    retention: positiveNumbers('retention', opts.retention, DEFAULT_RETENTION),
    heartbeatMs,
    publishRateLimit: opts.publishRateLimit === false
      ? false
      : positiveNumbers('publishRateLimit', opts.publishRateLimit, DEFAULTS.publishRateLimit),
    metrics: metrics === true ? {} : metrics,
    lockedCategories,
    socketio
  }
}

function resolveSocketIo (value: unknown, wsPath: string): ResolvedOptions['socketio'] {
  if (value === undefined || value === false) return undefined
  if (value === true) return { path: DEFAULTS.socketioPath }
  if (typeof value !== 'object' || value === null) fail('socketio must be a boolean or { path, corsOrigins }')
  for (const k of Object.keys(value)) if (k !== 'path' && k !== 'corsOrigins') fail(`socketio.${k} is not a known setting`)
  const corsOrigins = stringList('socketio.corsOrigins', (value as { corsOrigins?: unknown }).corsOrigins)
  const path = (value as { path?: unknown }).path ?? DEFAULTS.socketioPath
  if (typeof path !== 'string' || !/^\/[^?#]*$/.test(path) || path === '/') fail("socketio.path must start with '/' and name a path below it")
  // engine.io takes every request under its path: it must not swallow the WebSocket route.
  const prefix = path.replace(/\/$/, '') + '/'
  if ((wsPath + '/').startsWith(prefix)) fail(`socketio.path '${path}' would take the WebSocket route '${wsPath}'`)
  return corsOrigins === undefined || corsOrigins.length === 0 ? { path } : { path, corsOrigins }
}
