// Request and response schemas of the REST API (the notification shapes come from src/schemas.ts).
import { Type, type Static } from '@sinclair/typebox'
import { MigrationReport } from '../src/migration-report.js'
import { ClientNotification, PublishInput, PublishResult, ReadIds } from '../src/schemas.js'

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

const security = [{ bearer: [] }]

export const publishSchema = {
  tags: ['publish'],
  summary: 'Publish one notification',
  security,
  body: PublishInput,
  response: { 200: PublishResult, 202: PublishResult, ...errors(400, 401, 403, 415, 503) }
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
