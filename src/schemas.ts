// One source of truth for every shape that crosses a boundary: the runtime
// check (TypeBox / Ajv) and the static type (Static<>) come from the same object.
import { Type, type Static } from '@sinclair/typebox'

export const DEFAULT_CATEGORIES = ['system', 'dashboard', 'admin', 'health', 'maintenance', 'security', 'user'] as const

export const NotificationType = Type.Union(
  [Type.Literal('info'), Type.Literal('success'), Type.Literal('warning'), Type.Literal('error'), Type.Literal('progress')],
  { description: 'How a client should style it', default: 'info' }
)
export type NotificationType = Static<typeof NotificationType>

export const Priority = Type.Union(
  [Type.Literal('low'), Type.Literal('normal'), Type.Literal('high'), Type.Literal('critical')],
  { default: 'normal' }
)
export type Priority = Static<typeof Priority>

/**
 * An identifier: printable, no control characters (it ends up in SQL parameters,
 * Redis keys and log lines). Also the legacy payload schemas' identifier.
 */
export const Identifier = (max: number, description?: string) =>
  Type.String({ minLength: 1, maxLength: max, pattern: '^[^\\u0000-\\u001f]+$', ...(description ? { description } : {}) })

export const Category = Identifier(64, 'One of the configured categories')

export const Action = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 2048 }),
    label: Type.String({ minLength: 1, maxLength: 100 })
  },
  { additionalProperties: false }
)
export type Action = Static<typeof Action>

export const Audience = Type.Object(
  {
    users: Type.Optional(Type.Array(Identifier(128), { maxItems: 1000, uniqueItems: true })),
    roles: Type.Optional(Type.Array(Identifier(64), { maxItems: 100, uniqueItems: true }))
  },
  { additionalProperties: false, description: 'Empty or absent: everyone whose role may see the category' }
)
export type Audience = Static<typeof Audience>

export const MAX_DATA_BYTES = 16 * 1024
/** Deepest nesting of objects and arrays in `data` (`{}` is 1 level). */
export const MAX_DATA_DEPTH = 32

/** What a producer sends: REST body, `app.notifications.publish()`, adapters. */
export const PublishInput = Type.Object(
  {
    category: Category,
    type: Type.Optional(NotificationType),
    priority: Type.Optional(Priority),
    title: Type.String({ minLength: 1, maxLength: 200 }),
    message: Type.Optional(Type.String({ maxLength: 2000 })),
    data: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: `Free JSON, at most ${MAX_DATA_BYTES / 1024} KiB serialised, objects and arrays nested at most ${MAX_DATA_DEPTH} levels deep` })),
    action: Type.Optional(Action),
    expiresAt: Type.Optional(Type.String({ format: 'date-time' })),
    collapseKey: Type.Optional(Identifier(200)),
    audience: Type.Optional(Audience),
    idempotencyKey: Type.Optional(Identifier(200))
  },
  { additionalProperties: false }
)
export type PublishInput = Static<typeof PublishInput>

/** What clients see. The audience is deliberately absent. */
export const Notification = Type.Object(
  {
    id: Type.String(),
    seq: Type.Integer({ minimum: 1 }),
    category: Type.String(),
    type: NotificationType,
    priority: Priority,
    title: Type.String(),
    message: Type.String(),
    data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    action: Type.Optional(Action),
    createdAt: Type.String({ format: 'date-time' }),
    expiresAt: Type.Optional(Type.String({ format: 'date-time' })),
    collapseKey: Type.Optional(Type.String()),
    source: Type.String()
  },
  { additionalProperties: false }
)
export type Notification = Static<typeof Notification>

export const ClientNotification = Type.Composite([Notification, Type.Object({ read: Type.Boolean() })])
export type ClientNotification = Static<typeof ClientNotification>

/** What the store keeps: the public notification plus who may receive it. */
export interface StoredNotification extends Notification {
  audience?: Audience
}

export const PublishResult = Type.Object({
  id: Type.String(),
  seq: Type.Integer(),
  createdAt: Type.String({ format: 'date-time' }),
  duplicate: Type.Boolean()
})
export type PublishResult = Static<typeof PublishResult>

export interface User {
  id: string
  role: string
}

// ---- The WebSocket handshake -------------------------------------------------

/** Query parameters of GET /ws (validated before the upgrade). */
export const WsQuery = Type.Object({
  token: Type.Optional(Type.String({ minLength: 1, maxLength: 8192, description: "The user's JWT, for browsers that cannot set headers" })),
  since: Type.Optional(Type.Integer({ minimum: 0, description: 'Resume cursor: the highest seq seen; every entitled notification after it is replayed first' })),
  categories: Type.Optional(Type.String({ maxLength: 2048, description: 'Comma-separated initial subscriptions' })),
  legacy: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('0'), Type.Literal('true'), Type.Literal('false')], { description: "1: also receive 'legacy' frames" })),
  epoch: Type.Optional(Type.String({ maxLength: 64, description: 'The epoch of the connected frame the cursor came from' }))
})
export type WsQuery = Static<typeof WsQuery>

// ---- Client → server frames -------------------------------------------------

const RequestId = Type.Optional(Type.String({ maxLength: 64 }))
const CategoryList = Type.Array(Category, { minItems: 1, maxItems: 64 })

export const SubscribeFrame = Type.Object(
  { type: Type.Literal('subscribe_category'), id: RequestId, categories: CategoryList },
  { additionalProperties: false }
)
export const UnsubscribeFrame = Type.Object(
  { type: Type.Literal('unsubscribe_category'), id: RequestId, categories: CategoryList },
  { additionalProperties: false }
)
export const HistoryFrame = Type.Object(
  {
    type: Type.Literal('request_notification_history'),
    id: RequestId,
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    before: Type.Optional(Type.Integer({ minimum: 1 })),
    categories: Type.Optional(Type.Array(Category, { maxItems: 64 })),
    unreadOnly: Type.Optional(Type.Boolean())
  },
  { additionalProperties: false }
)
/** The ids of a mark_read frame and of POST /api/notifications/read. */
export const ReadIds = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 500 })
/** Either `ids` or `all`: the manager's markRead() holds that rule, for the socket and in-process callers alike. */
export const MarkReadFrame = Type.Object(
  {
    type: Type.Literal('mark_read'),
    id: RequestId,
    ids: Type.Optional(ReadIds),
    all: Type.Optional(Type.Literal(true))
  },
  { additionalProperties: false }
)
export const PingFrame = Type.Object({ type: Type.Literal('ping'), id: RequestId }, { additionalProperties: false })
export const RefreshFrame = Type.Object(
  { type: Type.Literal('refresh'), id: RequestId, token: Type.String({ minLength: 1, maxLength: 8192 }) },
  { additionalProperties: false }
)
export const SetPreferencesFrame = Type.Object(
  { type: Type.Literal('set_preferences'), id: RequestId, muted: Type.Array(Category, { maxItems: 64 }) },
  { additionalProperties: false }
)

export type SubscribeFrame = Static<typeof SubscribeFrame>
export type UnsubscribeFrame = Static<typeof UnsubscribeFrame>
export type HistoryFrame = Static<typeof HistoryFrame>
export type MarkReadFrame = Static<typeof MarkReadFrame>
export type PingFrame = Static<typeof PingFrame>
export type RefreshFrame = Static<typeof RefreshFrame>
export type SetPreferencesFrame = Static<typeof SetPreferencesFrame>
export type ClientFrame = SubscribeFrame | UnsubscribeFrame | HistoryFrame | MarkReadFrame | PingFrame | RefreshFrame | SetPreferencesFrame

// ---- Server → client frames -------------------------------------------------

export const ConnectedFrame = Type.Object({
  type: Type.Literal('connected'),
  protocol: Type.Literal(1),
  sessionId: Type.String(),
  user: Type.Object({ id: Type.String(), role: Type.String() }),
  categories: Type.Array(Type.String()),
  subscriptions: Type.Array(Type.String()),
  unread: Type.Integer({ minimum: 0 }),
  lastSeq: Type.Integer({ minimum: 0 }),
  epoch: Type.String({ description: 'Identity of the history log; a cursor is only meaningful within one epoch' })
})
export const NotificationFrame = Type.Object({ type: Type.Literal('notification'), notification: ClientNotification })
export const ReplayedFrame = Type.Object({
  type: Type.Literal('replayed'),
  count: Type.Integer({ minimum: 0 }),
  complete: Type.Boolean()
})
export const ReplyFrame = Type.Object({
  type: Type.Literal('reply'),
  id: Type.Optional(Type.String()),
  result: Type.Record(Type.String(), Type.Unknown())
})
export const ErrorFrame = Type.Object({
  type: Type.Literal('error'),
  id: Type.Optional(Type.String()),
  code: Type.String(),
  message: Type.String()
})
export const LegacyFrame = Type.Object({ type: Type.Literal('legacy'), event: Type.String(), data: Type.Unknown() })
export const UnreadFrame = Type.Object({
  type: Type.Literal('unread'),
  unread: Type.Integer({ minimum: 0, description: "The user's unread count after a mark_read on any of their connections" }),
  ids: Type.Optional(Type.Array(Type.String(), { description: 'The notifications marked read (mark_read with ids)' })),
  through: Type.Optional(Type.Integer({ minimum: 0, description: 'Everything up to this seq was marked read (mark_read all)' }))
})
export const PreferencesFrame = Type.Object({
  type: Type.Literal('preferences'),
  muted: Type.Array(Type.String()),
  subscriptions: Type.Array(Type.String())
}, { description: "The user's muted categories changed (from any device): this connection's subscriptions now" })
export const ServerFrame = Type.Union([ConnectedFrame, NotificationFrame, ReplayedFrame, ReplyFrame, ErrorFrame, LegacyFrame, UnreadFrame, PreferencesFrame])

export type ConnectedFrame = Static<typeof ConnectedFrame>
export type NotificationFrame = Static<typeof NotificationFrame>
export type ReplayedFrame = Static<typeof ReplayedFrame>
export type ReplyFrame = Static<typeof ReplyFrame>
export type ErrorFrame = Static<typeof ErrorFrame>
export type LegacyFrame = Static<typeof LegacyFrame>
export type UnreadFrame = Static<typeof UnreadFrame>
export type PreferencesFrame = Static<typeof PreferencesFrame>
export type ServerFrame = Static<typeof ServerFrame>

// ---- Preferences and dry run (REST) -------------------------------------------

export const Preferences = Type.Object({
  muted: Type.Array(Type.String(), { description: 'Categories left out of live delivery and unread counts, on every device' }),
  locked: Type.Array(Type.String(), { description: 'Categories that cannot be muted' })
})
export type Preferences = Static<typeof Preferences>

export const AudienceStatus = Type.Union([Type.Literal('online'), Type.Literal('offline'), Type.Literal('muted'), Type.Literal('not_entitled')])
export type AudienceStatus = Static<typeof AudienceStatus>

export const DryRunResult = Type.Object({
  dryRun: Type.Literal(true),
  duplicateOf: Type.Union([Type.String(), Type.Null()], { description: 'The notification a publish would return instead (its idempotencyKey was seen)' }),
  collapses: Type.Union([Type.String(), Type.Null()], { description: 'The notification a publish would replace in history (same collapseKey)' }),
  recipients: Type.Object({ connections: Type.Integer({ minimum: 0 }), users: Type.Integer({ minimum: 0 }) }),
  audience: Type.Record(Type.String(), AudienceStatus, { description: 'For each user the audience names: whether and why they would get it now' })
})
export type DryRunResult = Static<typeof DryRunResult>
