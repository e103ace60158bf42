// The root plugin: builds the manager from the options, decorates
// `app.notifications`, and registers the WebSocket route and the REST routes.
import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { createBroker } from '../src/brokers/index.js'
import type { LegacyAdapter } from '../src/legacy-adapters.js'
import { NotificationManager } from '../src/manager.js'
import type { NotificationService } from '../src/notification-service.js'
import { RolePolicy } from '../src/policy.js'
import { RedisPresence } from '../src/presence/redis-presence.js'
import { createStore, RedisStore } from '../src/stores/index.js'
import { createTokenVerifier } from '../src/tokens.js'
import { Auth } from './auth.js'
import { inboxRoutes } from './inbox-routes.js'
import { metricsRoute } from './metrics.js'
import { opsRoutes } from './ops-routes.js'
import { resolveOptions, type UnifiedNotificationsOptions } from './options.js'
import { preferenceRoutes } from './preference-routes.js'
import { publishRoutes } from './publish-routes.js'
import { configureRestScope } from './rest-scope.js'
import { ErrorResponse } from './rest-schemas.js'
import { userRoutes } from './user-routes.js'
import { socketIoRoute } from './socketio.js'
import { websocketRoute } from './websocket-route.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The notification service: publish(), history(), markRead(), migration(), stats(). */
    notifications: NotificationService
    /** The enabled legacy adapters, by name: empty until an adapter registers (adapters add and remove themselves). */
    legacyAdapters: Map<string, LegacyAdapter>
  }
}

const PLUGIN_NAME = 'unified-notifications'

/** How often retention runs: a quarter of the age limit, between 50 ms and a minute. */
function pruneIntervalMs (maxAgeMs: number): number {
  return Math.min(60_000, Math.max(50, Math.floor(maxAgeMs / 4)))
}

async function unifiedNotificationsPlugin (app: FastifyInstance, rawOptions: UnifiedNotificationsOptions): Promise<void> {
  const opts = resolveOptions(rawOptions)
  const policy = new RolePolicy(opts.categories, opts.roles)
  const log = app.log.child({ module: 'notifications' })
  const instance = opts.instance ?? randomUUID()
  const store = await createStore(opts.store, { retention: opts.retention, redisPrefix: opts.redisPrefix, redis: opts.redis })
  const manager = new NotificationManager({
    store,
    broker: createBroker(opts.broker, { store, redisPrefix: opts.redisPrefix, redis: opts.redis, instance, log }),
    // With the Redis store, presence is kept in the same Redis, across instances.
    ...(store instanceof RedisStore
      ? { presence: new RedisPresence({ client: () => store.fanout.client, keyPrefix: store.keyPrefix, instance, ttlMs: opts.presenceTtlMs, log }) }
      : {}),
    instance,
    policy,
    logger: log,
    limits: opts.limits,
    lockedCategories: opts.lockedCategories,
    maxTokenAgeMs: opts.maxTokenAgeSeconds * 1000
  })
  await manager.start()
  // Retention by age needs a clock, not only appends: a quiet log is pruned too (count is also enforced on append).
  const pruneTimer = setInterval(() => {
    manager.store.prune(Date.now()).catch(err => app.log.error({ err }, 'history retention failed'))
  }, pruneIntervalMs(opts.retention.maxAgeMs))
  pruneTimer.unref()
  app.addHook('onClose', async () => {
    clearInterval(pruneTimer)
    await manager.close()
  })
  // The manager, seen through its public interface; the routes below get the manager itself.
  app.decorate('notifications', manager satisfies NotificationService as NotificationService)
  app.decorate('legacyAdapters', new Map<string, LegacyAdapter>())

  const auth = new Auth({
    ...(opts.jwtSecret !== undefined ? { verifyToken: createTokenVerifier(opts.jwtSecret, { maxAgeSeconds: opts.maxTokenAgeSeconds }) } : {}),
    ...(opts.authenticate !== undefined ? { authenticate: opts.authenticate } : {}),
    apiKeys: opts.apiKeys,
    policy,
    isRevoked: (userId, issuedAt) => manager.isRevoked(userId, issuedAt)
  })

  // The one registration of the error shape: every route here and the legacy ingest route (which depends on this plugin) refer to it.
  if (app.getSchema(ErrorResponse.$id!) === undefined) app.addSchema(ErrorResponse)

  // An upgrade no WebSocket route took (a 404, a host route answering over HTTP) has left Node's HTTP server, and
  // its timeouts: close it once answered, as @fastify/websocket does only inside the scope it is registered in.
  app.addHook('onResponse', (request, _reply, done) => {
    const { upgrade, connection } = request.raw.headers
    if (upgrade !== undefined && connection !== undefined && /\bupgrade\b/i.test(connection)) {
      // Ended once its answer is flushed; destroyed then, so a peer that never closes its side holds nothing.
      const socket = request.raw.socket
      socket.end(() => socket.destroy())
    }
    done()
  })

  await app.register(async function notificationRoutes (scope) {
    // Strict bodies and this project's error mapping, for our routes only: the host app keeps its own.
    configureRestScope(scope)
    await scope.register(publishRoutes, { manager, auth, rateLimit: opts.publishRateLimit })
    await scope.register(inboxRoutes, { manager, auth })
    await scope.register(preferenceRoutes, { manager, auth })
    await scope.register(userRoutes, { manager, auth })
    await scope.register(opsRoutes, { manager, auth })
    if (opts.metrics !== false) await scope.register(metricsRoute, { manager, auth, metrics: opts.metrics })
    const upgradeListeners = new Set(app.server.listeners('upgrade'))
    await scope.register(websocketRoute, { manager, auth, path: opts.path, heartbeatMs: opts.heartbeatMs })
    if (opts.socketio) {
      // The listener @fastify/websocket added; when the host app registered it before us, every earlier one.
      const added = app.server.listeners('upgrade').filter(l => !upgradeListeners.has(l))
      const routedUpgrades = added.length > 0 ? added : [...upgradeListeners]
      await scope.register(socketIoRoute, { manager, auth, path: opts.socketio.path, ...(opts.socketio.corsOrigins !== undefined ? { corsOrigins: opts.socketio.corsOrigins } : {}), heartbeatMs: opts.heartbeatMs, routedUpgrades })
    }
  })
}

export const unifiedNotifications = fp(unifiedNotificationsPlugin, {
  name: PLUGIN_NAME,
  fastify: '5.x'
})
export default unifiedNotifications
