// The standalone server: `npm start`. Configuration comes from the environment
// (see README and docs/operations.md); buildServer() is also what tests use.
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import closeWithGrace from 'close-with-grace'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { LEGACY_ADAPTERS } from '../adapters/index.js'
import { legacyRoutes } from '../plugins/legacy-routes.js'
import { unifiedNotifications } from '../plugins/notifications.js'
import type { UnifiedNotificationsOptions } from '../plugins/options.js'

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

export const DEFAULT_SECRET_FILE = './data/.jwt-secret'

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

/** The development secret: read from `file`, or made and written there (0600) on first use. */
export function developmentSecret (file: string): { secret: string, created: boolean } {
  try {
    const secret = readFileSync(file, 'utf8').trim()
    if (secret.length >= 16) return { secret, created: false }
  } catch {}
  const secret = randomBytes(32).toString('base64url')
  mkdirSync(dirname(resolve(file)), { recursive: true })
  writeFileSync(file, secret + '\n', { mode: 0o600 })
  return { secret, created: true }
}

/** Request log lines without credentials: the ?token= of a WebSocket URL is masked. */
export function redactUrl (url: string): string {
  return url.replace(/([?&]token=)[^&#]*/gi, '$1[redacted]')
}

export async function buildServer (overrides: Partial<ServerConfig> = {}): Promise<FastifyInstance> {
  const config: ServerConfig = { ...SERVER_DEFAULTS, ...overrides }
  const enabledAdapters = legacyAdapterNames(config.legacyAdapters)
  // The request serializer masks ?token= whatever logger options are given: a caller's own options must not bring tokens back.
  const redactingReq = (req: { method: string, url: string, id?: string, ip?: string }) => ({ method: req.method, url: redactUrl(req.url), ip: req.ip })
  const logger = config.logger === false
    ? false
    : typeof config.logger === 'object' && config.logger !== null
      ? { level: config.logLevel, ...config.logger, serializers: { ...config.logger.serializers, req: redactingReq } }
      : { level: config.logLevel, serializers: { req: redactingReq } }
  const app = Fastify({ logger, bodyLimit: config.bodyLimit })

  let jwtSecret = config.jwtSecret
  if (jwtSecret === undefined && config.authenticate === undefined) {
    const dev = developmentSecret(config.secretFile)
    jwtSecret = dev.secret
    app.log.warn({ file: config.secretFile, created: dev.created }, 'NOTIFY_JWT_SECRET is not set: using a random development secret. Set it in production.')
  }

  await app.register(swagger, {
    openapi: {
      info: { title: 'unified-notifications', version: '1', description: 'Publish notifications and read history. The WebSocket protocol is in docs/protocol.md.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'API key (publish routes) or user JWT' } } }
    }
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })

  const { port: _port, host: _host, secretFile: _secretFile, logLevel: _logLevel, logger: _logger, bodyLimit: _bodyLimit, legacyAdapters: _legacyAdapters, ...pluginOptions } = config
  await app.register(unifiedNotifications, { ...pluginOptions, ...(jwtSecret !== undefined ? { jwtSecret } : {}) })

  // Legacy services in other processes: one emitter per enabled adapter, fed by the ingest route.
  for (const name of enabledAdapters) {
    await app.register(LEGACY_ADAPTERS.get(name)!, { emitter: new EventEmitter(), forwardLegacyEvents: true })
  }
  await app.register(legacyRoutes, { apiKeys: config.apiKeys ?? [] })
  return app
}

async function main (): Promise<void> {
  const config = configFromEnv()
  const app = await buildServer(config)
  closeWithGrace({ delay: 10_000, logger: { error: (msg: unknown) => app.log.error(msg) } }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'closing after an uncaught error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
  })
  await app.listen({ port: config.port, host: config.host })
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch(err => {
    console.error(err)
    process.exit(1)
  })
}
