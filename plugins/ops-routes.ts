// Operator routes: stats, the migration report, and the health check.
import type { FastifyInstance } from 'fastify'
import type { NotificationManager } from '../src/manager.js'
import type { Auth } from './auth.js'
import { healthSchema, migrationSchema, statsSchema } from './rest-schemas.js'

export async function opsRoutes (app: FastifyInstance, opts: { manager: NotificationManager, auth: Auth }): Promise<void> {
  const { manager, auth } = opts
  const preHandler = async (request: Parameters<Auth['publisher']>[0]) => { await auth.publisher(request) }

  app.get('/api/notifications/stats', { schema: statsSchema, preHandler }, async () => {
    return { ...manager.stats(), migration: manager.migration() }
  })

  app.get('/api/notifications/migration', { schema: migrationSchema, preHandler }, async () => {
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
