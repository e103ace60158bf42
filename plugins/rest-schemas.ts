// Request and response schemas of the REST API (the notification shapes come from src/schemas.ts).
import { Type, type Static } from '@sinclair/typebox'
import { MigrationReport } from '../src/migration-report.js'
import { Category, ClientNotification, DryRunResult, Preferences, PublishInput, PublishResult, ReadIds } from '../src/schemas.js'

export const ErrorResponse = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String(),
  error: Type.String(),
  message: Type.String()
}, { $id: 'UnifiedNotificationsError', description: "Fastify's standard error shape" })

/** Response schemas for error statuses: a reference to ErrorResponse, which the root plugin registers. */
export const errors = (...codes: number[]) => Object.fromEntries(codes.map(c => [c, Type.Ref(ErrorResponse)]))

export const BatchBody = Type.Object({
  notifications: Type.Array(PublishInput, { minItems: 1, maxItems: 100 })
}, { additionalProperties: false })
export type BatchBody = Static<typeof BatchBody>

export const HistoryQuerystring = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 50 })),
  before: Type.Optional(Type.Integer({ minimum: 1 })),
  category: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  unread: Type.Optional(Type.Boolean())
}, { additionalProperties: false })
export type HistoryQuerystring = Static<typeof HistoryQuerystring>

// One object, not a union: "ids or all, not both" is the manager's rule (UN_BAD_REQUEST), worded
// as such, where a union failed as "must match a schema in anyOf".
export const ReadBody = Type.Object({
  ids: Type.Optional(ReadIds),
  all: Type.Optional(Type.Literal(true))
}, { additionalProperties: false, description: "Either 'ids' or 'all': true" })
export type ReadBody = Static<typeof ReadBody>

export const PublishQuerystring = Type.Object({
  dryRun: Type.Optional(Type.Boolean({ description: 'true: validate and say who would get it now; nothing is stored nor delivered' }))
}, { additionalProperties: false })
export type PublishQuerystring = Static<typeof PublishQuerystring>

export const PreferencesBody = Type.Object({
  muted: Type.Array(Category, { maxItems: 64, description: 'Replaces the muted list; [] unmutes everything' })
}, { additionalProperties: false })
export type PreferencesBody = Static<typeof PreferencesBody>

export const DisconnectParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128, pattern: '^[^\\u0000-\\u001f]+$' }) })
export type DisconnectParams = Static<typeof DisconnectParams>

export const DisconnectBody = Type.Object({
  reason: Type.Optional(Type.String({ maxLength: 500, description: 'Written to the logs' })),
  revokeTokens: Type.Optional(Type.Boolean({ description: "Also refuse the user's tokens issued up to now" }))
}, { additionalProperties: false })
export type DisconnectBody = Static<typeof DisconnectBody>

const security = [{ bearer: [] }]

export const publishSchema = {
  tags: ['publish'],
  summary: 'Publish one notification (or, with dryRun=true, say who would get it)',
  security,
  querystring: PublishQuerystring,
  body: PublishInput,
  response: { 200: Type.Union([PublishResult, DryRunResult]), 202: PublishResult, ...errors(400, 401, 403, 415, 503) }
}

export const getPreferencesSchema = {
  tags: ['inbox'],
  summary: "The caller's muted categories, and those that cannot be muted",
  security,
  response: { 200: Preferences, ...errors(401, 403) }
}

export const putPreferencesSchema = {
  tags: ['inbox'],
  summary: "Replace the caller's muted categories, on every device at once",
  security,
  body: PreferencesBody,
  response: { 200: Preferences, ...errors(400, 401, 403, 415) }
}

export const disconnectSchema = {
  tags: ['operations'],
  summary: "Close every connection of a user with 4003; optionally refuse the user's current tokens",
  security,
  params: DisconnectParams,
  body: DisconnectBody,
  response: { 200: Type.Object({ closed: Type.Integer({ minimum: 0 }) }), ...errors(400, 401, 403, 415) }
}

export const batchSchema = {
  tags: ['publish'],
  summary: 'Publish up to 100 notifications: all valid or none published',
  security,
  body: BatchBody,
  response: { 202: Type.Object({ results: Type.Array(PublishResult) }), ...errors(400, 401, 403, 415, 503) }
}

export const historySchema = {
  tags: ['inbox'],
  summary: "The caller's own history, newest first",
  security,
  querystring: HistoryQuerystring,
  response: {
    200: Type.Object({ notifications: Type.Array(ClientNotification), hasMore: Type.Boolean(), unread: Type.Integer() }),
    ...errors(400, 401, 403)
  }
}

export const readSchema = {
  tags: ['inbox'],
  summary: 'Mark notifications read, by id or all',
  security,
  body: ReadBody,
  response: { 200: Type.Object({ unread: Type.Integer() }), ...errors(400, 401, 403, 415) }
}

export const statsSchema = {
  tags: ['operations'],
  summary: 'Connections, subscriptions, publish and delivery counts, migration report',
  security,
  response: {
    200: Type.Object({
      connections: Type.Integer(),
      users: Type.Integer(),
      transports: Type.Record(Type.String(), Type.Integer(), {
        description: "Open connections per door: 'ws' (/ws), and 'socketio' once a Socket.IO client has connected (0 when all have gone)"
      }),
      subscriptions: Type.Record(Type.String(), Type.Integer()),
      published: Type.Integer(),
      duplicates: Type.Integer(),
      delivered: Type.Integer(),
      migration: MigrationReport,
      instance: Type.String({ description: "This instance's id" }),
      cluster: Type.Object({
        instances: Type.Integer(),
        connections: Type.Integer(),
        users: Type.Integer({ description: 'Distinct users across every live instance' })
      }, { description: 'Across all live instances (this one included)' }),
      internals: Type.Record(Type.String(), Type.Record(Type.String(), Type.Integer()), {
        description: 'Sizes of the registry indexes and of per-connection state (sockets, starting sessions, timers, held frames): all return to 0 when no connection is open'
      })
    }),
    ...errors(401, 403, 503)
  }
}

export const PresenceQuerystring = Type.Object({
  users: Type.String({ minLength: 1, maxLength: 100 * 257, description: 'Comma-separated user ids, 1 to 100' })
}, { additionalProperties: false })
export type PresenceQuerystring = Static<typeof PresenceQuerystring>

export const presenceSchema = {
  tags: ['operations'],
  summary: 'Whether users are connected, on any instance',
  security,
  querystring: PresenceQuerystring,
  response: {
    200: Type.Object({
      users: Type.Record(Type.String(), Type.Union([
        Type.Object({ online: Type.Literal(true), connections: Type.Integer(), since: Type.String({ format: 'date-time', description: "When the user's oldest open connection opened" }) }),
        Type.Object({ online: Type.Literal(false) })
      ]))
    }),
    ...errors(400, 401, 403, 503)
  }
}

export const migrationSchema = {
  tags: ['operations'],
  summary: "The legacy adapters' migration report",
  security,
  response: { 200: Type.Object({ adapters: MigrationReport }), ...errors(401, 403) }
}

export const healthSchema = {
  tags: ['operations'],
  summary: '200 when the store and the broker answer, else 503',
  response: {
    200: Type.Object({ status: Type.Literal('ok'), store: Type.String(), broker: Type.String() }),
    503: Type.Object({ status: Type.Literal('unavailable'), store: Type.String(), broker: Type.String() })
  }
}
