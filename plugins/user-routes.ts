// POST /api/users/:id/disconnect: an operator revokes a user's access (API key or admin).
import type { FastifyInstance } from 'fastify'
import type { NotificationManager } from '../src/manager.js'
import type { Auth } from './auth.js'
import { disconnectSchema, type DisconnectBody, type DisconnectParams } from './rest-schemas.js'

export async function userRoutes (app: FastifyInstance, opts: { manager: NotificationManager, auth: Auth }): Promise<void> {
  const { manager, auth } = opts

  app.post<{ Params: DisconnectParams, Body: DisconnectBody | undefined }>('/api/users/:id/disconnect', {
    schema: disconnectSchema,
    // Credentials first, before the body is parsed or validated.
    onRequest: auth.requireOperator,
    // Every field is optional, so no body at all means {} (validation runs after this hook).
    preValidation: async (request) => { request.body ??= {} }
  }, async (request) => {
    const body = request.body ?? {}
    return manager.disconnectUser(request.params.id, {
      ...(body.reason !== undefined ? { reason: body.reason } : {}),
      ...(body.revokeTokens !== undefined ? { revokeTokens: body.revokeTokens } : {})
    })
  })
}
