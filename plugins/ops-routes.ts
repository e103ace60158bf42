// Operator routes: stats, the migration report, and the health check.
import type { FastifyInstance } from 'fastify'
import type { NotificationManager } from '../src/manager.js'
import type { Auth } from './auth.js'
import { healthSchema, migrationSchema, statsSchema } from './rest-schemas.js'

export async function opsRoutes (app: FastifyInstance, opts: { manager: NotificationManager, auth: Auth }): Promise<void> {
  const { manager, auth } = opts
  // Credentials are checked on request, before the body is parsed or validated.
  const onRequest = auth.requireOperator

  app.get('/api/notifications/stats', { schema: statsSchema, onRequest }, async () => {
    return { ...manager.stats(), migration: manager.migration(), internals: manager.sizes() }
  })

  app.get('/api/notifications/migration', { schema: migrationSchema, onRequest }, async () => {
    return { adapters: manager.migration() }
  })

  app.get('/health', { schema: healthSchema }, async (_request, reply) => {
    const h = await manager.health()
    const ok = h.store && h.broker && manager.accepting
    return reply.code(ok ? 200 : 503).send({
      status: ok ? 'ok' : 'unavailable',
      store: h.store ? 'up' : 'down',
      broker: h.broker ? 'up' : 'down'
    })
  })
}
