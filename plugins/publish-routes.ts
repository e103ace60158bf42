// POST /api/notifications and /api/notifications/batch: publishing over REST,
// rate-limited per credential (the digest the API key check computed).
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { RateLimitedError } from '../src/errors.js'
import { markValidated, type NotificationManager } from '../src/manager.js'
import type { PublishInput, StoredNotification } from '../src/schemas.js'
import type { Auth } from './auth.js'
import type { ResolvedOptions } from './options.js'
import { batchSchema, publishSchema, type BatchBody, type PublishQuerystring } from './rest-schemas.js'

const result = (n: StoredNotification, duplicate: boolean) => ({ id: n.id, seq: n.seq, createdAt: n.createdAt, duplicate })

export async function publishRoutes (app: FastifyInstance, opts: { manager: NotificationManager, auth: Auth, rateLimit: ResolvedOptions['publishRateLimit'] }): Promise<void> {
  const { manager, auth } = opts
  // Credentials are checked on request, before the body is parsed or validated.
  const onRequest = auth.requirePublisher
  const config: { rateLimit?: object } = {}
  if (opts.rateLimit !== false) {
    await app.register(rateLimit, {
      global: false,
      errorResponseBuilder: (_request, context) => new RateLimitedError(context.after)
    })
    config.rateLimit = { max: opts.rateLimit.max, timeWindow: opts.rateLimit.timeWindowMs, keyGenerator: (request: FastifyRequest) => auth.credentialOf(request) }
  }

  app.post<{ Body: PublishInput, Querystring: PublishQuerystring }>('/api/notifications', { schema: publishSchema, onRequest, config }, async (request, reply) => {
    // Fastify validated the body against PublishInput already: the manager need not check it twice.
    markValidated([request.body])
    if (request.query.dryRun === true) return reply.code(200).send(await manager.dryRun(request.body, { source: 'api' }))
    const { notification, duplicate } = await manager.publish(request.body, { source: 'api', requestId: request.id })
    return reply.code(duplicate ? 200 : 202).send(result(notification, duplicate))
  })

  app.post<{ Body: BatchBody }>('/api/notifications/batch', { schema: batchSchema, onRequest, config }, async (request, reply) => {
    markValidated(request.body.notifications)
    const outcomes = await manager.publishMany(request.body.notifications, { source: 'api', requestId: request.id })
    return reply.code(202).send({ results: outcomes.map(o => result(o.notification, o.duplicate)) })
  })
}
