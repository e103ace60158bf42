// GET /api/notifications and POST /api/notifications/read: a user's own history and read state.
import type { FastifyInstance } from 'fastify'
import type { NotificationManager } from '../src/manager.js'
import type { Auth } from './auth.js'
import { historySchema, readSchema, type HistoryQuerystring, type ReadBody } from './rest-schemas.js'

export async function inboxRoutes (app: FastifyInstance, opts: { manager: NotificationManager, auth: Auth }): Promise<void> {
  const { manager, auth } = opts

  app.get<{ Querystring: HistoryQuerystring }>('/api/notifications', { schema: historySchema, onRequest: auth.requireUser }, async (request) => {
    const user = auth.userOf(request)
    const q = request.query
    const [page, unread] = await Promise.all([
      manager.history(user, {
        ...(q.limit !== undefined ? { limit: q.limit } : {}),
        ...(q.before !== undefined ? { before: q.before } : {}),
        ...(q.category !== undefined ? { categories: [q.category] } : {}),
        unreadOnly: q.unread === true
      }),
      manager.unread(user)
    ])
    return { ...page, unread }
  })

  app.post<{ Body: ReadBody }>('/api/notifications/read', { schema: readSchema, onRequest: auth.requireUser }, async (request) => {
    const user = auth.userOf(request)
    return { unread: await manager.markRead(user, request.body) }
  })
}
