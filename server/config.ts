// The standalone server's configuration: defaults, and the documented environment
// variables read into a ServerConfig (see README and docs/operations.md).
import type { FastifyServerOptions } from 'fastify'
import { LEGACY_ADAPTERS } from '../adapters/index.js'
import type { UnifiedNotificationsOptions } from '../plugins/options.js'
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
}

export const SERVER_DEFAULTS: ServerConfig = {
  port: 3000,
  host: '127.0.0.1',
  store: 'sqlite:./data/notifications.db',
  broker: 'local',
  secretFile: DEFAULT_SECRET_FILE,
  logLevel: 'info',
  bodyLimit: 1024 * 1024
}

function list (value: string | undefined): string[] | undefined {
  if (value === undefined || value.trim() === '') return undefined
  return value.split(',').map(s => s.trim()).filter(s => s !== '')
}

/** Checks adapter names against the known adapters; an unknown one fails at startup. */
export function legacyAdapterNames (names: readonly string[] | undefined): string[] {
  if (names === undefined) return []
  if (!Array.isArray(names)) throw new TypeError('legacyAdapters must be an array of adapter names')
  for (const name of names) {
    if (!LEGACY_ADAPTERS.has(name)) {
      throw new TypeError(`NOTIFY_LEGACY_ADAPTERS: unknown adapter '${name}' (known: ${[...LEGACY_ADAPTERS.keys()].join(', ')})`)
    }
  }
  return [...new Set(names)]
}

/** Reads the documented environment variables; anything unset keeps its default. */
export function configFromEnv (env: NodeJS.ProcessEnv = process.env): ServerConfig {
  // Decimal digits only: Number() would take '0x50', '1e3' or ' ' (→ 0, a random port). Empty means unset.
  const port = env.PORT === undefined || env.PORT === '' ? SERVER_DEFAULTS.port : /^\d{1,5}$/.test(env.PORT) ? Number(env.PORT) : NaN
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`PORT must be a port number, got '${env.PORT}'`)
  const apiKeys = list(env.NOTIFY_API_KEYS)
  const legacyAdapters = list(env.NOTIFY_LEGACY_ADAPTERS)
  if (legacyAdapters) legacyAdapterNames(legacyAdapters)
  return {
    ...SERVER_DEFAULTS,
    port,
    host: env.HOST ?? SERVER_DEFAULTS.host,
    ...(env.NOTIFY_JWT_SECRET ? { jwtSecret: env.NOTIFY_JWT_SECRET } : {}),
    ...(apiKeys ? { apiKeys } : {}),
    ...(legacyAdapters ? { legacyAdapters } : {}),
    store: env.NOTIFY_STORE ?? SERVER_DEFAULTS.store,
    broker: env.NOTIFY_BROKER ?? SERVER_DEFAULTS.broker,
    logLevel: env.LOG_LEVEL ?? SERVER_DEFAULTS.logLevel
  }
}
