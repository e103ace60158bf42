// POST /api/notifications and /api/notifications/batch: publishing over REST.
import type { FastifyInstance } from 'fastify'
import type { NotificationManager } from '../src/manager.js'
import type { PublishInput, StoredNotification } from '../src/schemas.js'
import type { Auth } from './auth.js'
import { batchSchema, publishSchema, type BatchBody } from './rest-schemas.js'

const result = (n: StoredNotification, duplicate: boolean) => ({ id: n.id, seq: n.seq, createdAt: n.createdAt, duplicate })

export async function publishRoutes (app: FastifyInstance, opts: { manager: NotificationManager, auth: Auth }): Promise<void> {
  const { manager, auth } = opts
  // Credentials are checked on request, before the body is parsed or validated.
  const onRequest = auth.requirePublisher

  app.post<{ Body: PublishInput }>('/api/notifications', { schema: publishSchema, onRequest }, async (request, reply) => {
    const { notification, duplicate } = await manager.publish(request.body, { source: 'api' })
    return reply.code(duplicate ? 200 : 202).send(result(notification, duplicate))
  })

  app.post<{ Body: BatchBody }>('/api/notifications/batch', { schema: batchSchema, onRequest }, async (request, reply) => {
    const outcomes = await manager.publishMany(request.body.notifications, { source: 'api' })
    return reply.code(202).send({ results: outcomes.map(o => result(o.notification, o.duplicate)) })
  })
}
