// GET and PUT /api/preferences: a user's own muted categories (every device at once).
import type { FastifyInstance } from 'fastify'
import type { NotificationManager } from '../src/manager.js'
import type { Auth } from './auth.js'
import { getPreferencesSchema, putPreferencesSchema, type PreferencesBody } from './rest-schemas.js'

export async function preferenceRoutes (app: FastifyInstance, opts: { manager: NotificationManager, auth: Auth }): Promise<void> {
  const { manager, auth } = opts

  app.get('/api/preferences', { schema: getPreferencesSchema, onRequest: auth.requireUser }, async (request) => {
    return manager.preferences(auth.userOf(request))
  })

  // The user comes from the token only: there is no way to name another user here.
  app.put<{ Body: PreferencesBody }>('/api/preferences', { schema: putPreferencesSchema, onRequest: auth.requireUser }, async (request) => {
    return manager.setPreferences(auth.userOf(request), request.body.muted)
  })
}
