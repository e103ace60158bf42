// buildServer(): the standalone app (the root plugin, the enabled legacy adapters and
// their ingest route, the OpenAPI UI, the notification-center page, demo mode),
// used by `npm start` and by tests.
import { EventEmitter } from 'node:events'
import cors from '@fastify/cors'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import Fastify, { type FastifyInstance } from 'fastify'
import { LEGACY_ADAPTERS } from '../adapters/index.js'
import { legacyRoutes } from '../plugins/legacy-routes.js'
import { unifiedNotifications } from '../plugins/notifications.js'
import { DEFAULTS } from '../plugins/options.js'
import { NotFoundError } from '../src/errors.js'
import { RolePolicy } from '../src/policy.js'
import { ASYNCAPI_URL, asyncApiRoute } from './asyncapi-route.js'
import { SERVER_DEFAULTS, legacyAdapterNames, type ServerConfig } from './config.js'
import { signToken } from '../src/tokens.js'
import { demoMode } from './demo.js'
import { developmentSecret } from './dev-secret.js'
import { drainConnections } from './drain.js'
import { checkSqlitePath } from './sqlite-check.js'

/** The OpenAPI description: what the document cannot say in schemas, the configured categories and who may see them. */
function apiDescription (config: ServerConfig): string {
  const base = `Publish notifications and read history. The WebSocket protocol (GET /ws) is described by the AsyncAPI document at [${ASYNCAPI_URL}](${ASYNCAPI_URL}) and in docs/protocol.md.`
  let policy: RolePolicy
  try {
    policy = new RolePolicy(config.categories, config.roles)
  } catch {
    return base // the root plugin reports a bad policy at registration
  }
  const roles = policy.roles().map(role => `${role}: ${policy.visibleTo(role).join(', ')}`)
  return `${base}\n\nCategories: ${policy.categories.join(', ')}.\n\nRole policy (role: categories it may see): ${roles.join('; ')}.`
}
import { webRoutes } from './web.js'

/** Demo tokens are short-lived, so the page's in-band renewal is seen working. */
const DEMO_TOKEN_LIFETIME = '15m'

/** Request log lines without credentials: the ?token= of a WebSocket URL is masked. */
export function redactUrl (url: string): string {
  return url.replace(/([?&]token=)[^&#]*/gi, '$1[redacted]')
}

export async function buildServer (overrides: Partial<ServerConfig> = {}): Promise<FastifyInstance> {
  const config: ServerConfig = { ...SERVER_DEFAULTS, ...overrides }
  if (config.demo === true && config.authenticate !== undefined) {
    throw new TypeError('NOTIFY_DEMO needs the built-in JWT authentication (no authenticate option): it signs demo tokens')
  }
  const enabledAdapters = legacyAdapterNames(config.legacyAdapters)
  if (typeof config.store === 'string' && config.store.startsWith('sqlite:')) checkSqlitePath(config.store.slice('sqlite:'.length))
  // The request serializer masks ?token= whatever logger options are given: a caller's own options must not bring tokens back.
  const redactingReq = (req: { method: string, url: string, id?: string, ip?: string }) => ({ method: req.method, url: redactUrl(req.url), ip: req.ip })
  const logger = config.logger === false
    ? false
    : typeof config.logger === 'object' && config.logger !== null
      ? { level: config.logLevel, ...config.logger, serializers: { ...config.logger.serializers, req: redactingReq } }
      : { level: config.logLevel, serializers: { req: redactingReq } }
  // return503OnClosing off: during the drain our routes answer themselves (UN_UNAVAILABLE, the /health body)
  // instead of Fastify's bare 503; drainConnections then bounds every socket.
  const app = Fastify({ logger, bodyLimit: config.bodyLimit, return503OnClosing: false })
  drainConnections(app)
  // The whole app is ours here, so its 404 carries a code too (the plugin leaves a host app's 404 alone).
  // The path only: a ?token= is not echoed back.
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(new NotFoundError(`Route ${request.method}:${request.url.split('?')[0]} not found`))
  })

  let jwtSecret = config.jwtSecret
  if (jwtSecret === undefined && config.authenticate === undefined) {
    const dev = developmentSecret(config.secretFile)
    jwtSecret = dev.secret
    app.log.warn({ file: config.secretFile, created: dev.created }, 'NOTIFY_JWT_SECRET is not set: using a random development secret. Set it in production.')
  }

  await app.register(swagger, {
    openapi: {
      info: { title: 'unified-notifications', version: '1', description: apiDescription(config) },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'API key (publish routes) or user JWT' } } }
    }
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  // CORS for the REST API, only for the configured origins (off when none).
  if (config.corsOrigins !== undefined && config.corsOrigins.length > 0) {
    await app.register(cors, { origin: config.corsOrigins.includes('*') ? '*' : config.corsOrigins, methods: ['GET', 'POST', 'PUT'], allowedHeaders: ['Authorization', 'Content-Type'], maxAge: 600 })
  }
  await app.register(asyncApiRoute, { path: config.path ?? DEFAULTS.path })

  const {
    port: _port, host: _host, secretFile: _secretFile, logLevel: _logLevel, logger: _logger, bodyLimit: _bodyLimit,
    legacyAdapters: _legacyAdapters, corsOrigins: _corsOrigins, demo: _demo, demoTickMs: _demoTickMs, ...pluginOptions
  } = config
  // The Socket.IO door's long-polling requests bypass @fastify/cors: the same origins go to engine.io.
  const socketio = pluginOptions.socketio === true && config.corsOrigins !== undefined && config.corsOrigins.length > 0
    ? { corsOrigins: config.corsOrigins }
    : pluginOptions.socketio
  await app.register(unifiedNotifications, {
    ...pluginOptions,
    ...(socketio !== undefined ? { socketio } : {}),
    ...(jwtSecret !== undefined ? { jwtSecret } : {})
  })

  // Legacy services in other processes: one emitter per enabled adapter, fed by the ingest route (and by demo mode's simulators).
  const emitters = new Map<string, EventEmitter>()
  for (const name of config.demo === true ? [...new Set([...enabledAdapters, ...LEGACY_ADAPTERS.keys()])] : enabledAdapters) {
    const emitter = new EventEmitter()
    emitters.set(name, emitter)
    await app.register(LEGACY_ADAPTERS.get(name)!, { emitter, forwardLegacyEvents: true })
  }
  await app.register(legacyRoutes, { apiKeys: config.apiKeys ?? [] })
  await app.register(webRoutes)
  if (config.demo === true) {
    const secret = jwtSecret!
    const policy = new RolePolicy(config.categories, config.roles)
    await app.register(demoMode, {
      emitters,
      hasRole: role => policy.hasRole(role),
      sign: (user, role) => signToken(secret, { sub: user, role, expiresIn: DEMO_TOKEN_LIFETIME }),
      ...(config.demoTickMs !== undefined ? { tickMs: config.demoTickMs } : {})
    })
  }
  return app
}
