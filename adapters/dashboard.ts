// The dashboard's legacy notifications: a message to one user, or to everyone.
import { Type } from '@sinclair/typebox'
import { defineAdapter } from './legacy-adapter.js'
import { LegacyMessage, LegacyTitle, Identifier } from './legacy-schemas.js'

const NotificationType = Type.Optional(Type.Union([
  Type.Literal('info'), Type.Literal('success'), Type.Literal('warning'), Type.Literal('error')
]))

const UserNotificationPayload = Type.Object({
  user_id: Identifier(128),
  message: LegacyMessage,
  notification_type: NotificationType,
  title: Type.Optional(LegacyTitle),
  data: Type.Optional(Type.Record(Type.String(), Type.Unknown()))
})

const BroadcastNotificationPayload = Type.Object({
  message: LegacyMessage,
  notification_type: NotificationType,
  title: Type.Optional(LegacyTitle)
})

const DEFAULT_TITLE = 'Notification'

export const dashboardAdapter = defineAdapter({
  name: 'dashboard',
  events: {
    user_notification: {
      schema: UserNotificationPayload,
      replacement: "app.notifications.publish({ category: 'dashboard', audience: { users: [userId] }, title, message, type, data })",
      toPublish: p => ({
        category: 'dashboard',
        type: p.notification_type ?? 'info',
        title: p.title ?? DEFAULT_TITLE,
        message: p.message,
        ...(p.data !== undefined ? { data: p.data } : {}),
        audience: { users: [p.user_id] }
      })
    },
    broadcast_notification: {
      schema: BroadcastNotificationPayload,
      replacement: "app.notifications.publish({ category: 'dashboard', title, message, type }) (no audience: everyone)",
      toPublish: p => ({
        category: 'dashboard',
        type: p.notification_type ?? 'info',
        title: p.title ?? DEFAULT_TITLE,
        message: p.message
      })
    }
  }
})
