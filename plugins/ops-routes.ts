// Operator routes: stats, the migration report, and the health check.
import type { FastifyInstance } from 'fastify'
import type { NotificationManager } from '../src/manager.js'
import type { Auth } from './auth.js'
import { BadRequestError, UnavailableError } from '../src/errors.js'
import { healthSchema, migrationSchema, presenceSchema, statsSchema, type PresenceQuerystring } from './rest-schemas.js'

/** At most this many user ids per presence request. */
export const MAX_PRESENCE_USERS = 100

/** A Redis failure while reading cluster-wide state answers 503, like a publish. */
async function orUnavailable<T> (what: string, p: Promise<T>): Promise<T> {
  try {
    return await p
  } catch (err) {
    if (err instanceof Error && 'statusCode' in err) throw err
    throw new UnavailableError(`${what} could not be read: ${err instanceof Error ? err.message : String(err)}`)
  }
}

export async function opsRoutes (app: FastifyInstance, opts: { manager: NotificationManager, auth: Auth }): Promise<void> {
  const { manager, auth } = opts
  // Credentials are checked on request, before the body is parsed or validated.
  const onRequest = auth.requireOperator

  app.get('/api/notifications/stats', { schema: statsSchema, onRequest }, async () => {
    const cluster = await orUnavailable('Cluster stats', manager.cluster())
    return { ...manager.stats(), migration: manager.migration(), instance: manager.instance, cluster, internals: manager.sizes() }
  })

  app.get<{ Querystring: PresenceQuerystring }>('/api/presence', { schema: presenceSchema, onRequest }, async request => {
    const users = [...new Set(request.query.users.split(',').map(u => u.trim()).filter(u => u !== ''))]
    if (users.length === 0 || users.length > MAX_PRESENCE_USERS) {
      throw new BadRequestError(`users must name 1 to ${MAX_PRESENCE_USERS} user ids, comma-separated (got ${users.length})`)
    }
    if (users.some(u => u.length > 256)) throw new BadRequestError('a user id is at most 256 characters')
    return { users: await orUnavailable('Presence', manager.presence(users)) }
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
