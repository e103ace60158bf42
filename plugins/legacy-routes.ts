// POST /api/legacy/:adapter/:event — for legacy services in another process
// (standalone server). The payload goes into the enabled adapter's emitter
// exactly as an in-process emit would, and the answer says what became of it:
// 202 published, 400 rejected (counted once, by the adapter), 404 unknown.
import { Type, type Static } from '@sinclair/typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { InvalidTokenError, MissingCredentialsError, NotFoundError } from '../src/errors.js'
import { PublishResult } from '../src/schemas.js'
import { ApiKeys, bearerToken } from './auth.js'
import { errors } from './rest-schemas.js'
import { configureRestScope } from './rest-scope.js'

export interface LegacyRoutesOptions {
  /** Keys allowed to feed legacy events (NOTIFY_API_KEYS). None: every request is refused (401). */
  apiKeys?: string[]
}

const LegacyParams = Type.Object({
  adapter: Type.String({ minLength: 1, maxLength: 64 }),
  event: Type.String({ minLength: 1, maxLength: 128 })
})
type LegacyParams = Static<typeof LegacyParams>

const legacyIngestSchema = {
  tags: ['legacy'],
  summary: "Feed one legacy event into an enabled adapter (the payload is the legacy emitter's)",
  security: [{ bearer: [] }],
  params: LegacyParams,
  body: Type.Unknown({ description: 'The legacy payload, validated by the adapter against its own schema' }),
  response: { 202: PublishResult, ...errors(400, 401, 404, 415, 500, 503) }
}

async function legacyRoutesPlugin (app: FastifyInstance, opts: LegacyRoutesOptions): Promise<void> {
  const apiKeys = new ApiKeys(opts.apiKeys ?? [])

  // API keys only: a legacy service is a machine, never a user.
  const preHandler = async (request: FastifyRequest): Promise<void> => {
    const token = bearerToken(request)
    if (token === undefined) throw new MissingCredentialsError()
    if (!apiKeys.has(token)) throw new InvalidTokenError('not an API key accepted by this server')
  }

  // The same body parsing, validation and error mapping as the other REST routes, in a scope of its own.
  await app.register(async function legacyIngestScope (scope) {
    configureRestScope(scope)
    scope.post<{ Params: LegacyParams, Body: unknown }>('/api/legacy/:adapter/:event', { schema: legacyIngestSchema, preHandler }, async (request, reply) => {
      const { adapter: name, event } = request.params
      const adapter = app.legacyAdapters.get(name)
      if (adapter === undefined) throw new NotFoundError(`Legacy adapter '${name}' is not enabled`)
      const outcome = await adapter.ingest(event, request.body)
      switch (outcome.status) {
        case 'published': {
          const n = outcome.notification
          return reply.code(202).send({ id: n.id, seq: n.seq, createdAt: n.createdAt, duplicate: false })
        }
        case 'unmapped':
          throw new NotFoundError(`Legacy adapter '${name}' has no event '${event}'`)
        case 'rejected':
          throw outcome.error
        case 'failed':
          throw outcome.error instanceof Error ? outcome.error : new Error(String(outcome.error))
      }
    })
  })
}

export const legacyRoutes = fp(legacyRoutesPlugin, {
  name: 'unified-notifications-legacy-routes',
  fastify: '5.x',
  dependencies: ['unified-notifications']
})
