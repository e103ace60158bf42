// The shape of the migration report each legacy adapter contributes to
// `app.notifications.migration()`, GET /api/notifications/migration and the
// stats route: one schema gives the response serialiser and the static type.
import { Type, type Static } from '@sinclair/typebox'

const Count = Type.Integer({ minimum: 0 })

export const LegacyEventReport = Type.Object({
  received: Type.Integer({ minimum: 0, description: 'Payloads that reached the adapter (emitted or posted to the ingest route)' }),
  published: Type.Integer({ minimum: 0, description: 'Turned into a notification and published' }),
  rejected: Type.Integer({ minimum: 0, description: 'Failed the schema (or the notification built from it was invalid): dropped' }),
  failed: Type.Integer({ minimum: 0, description: 'Valid, but publishing failed (store down, shutting down): dropped' }),
  lastSeenAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'When the event was last received; null if never' })
})
export type LegacyEventReport = Static<typeof LegacyEventReport>

export const AdapterReport = Type.Object({
  forwardLegacyEvents: Type.Boolean(),
  /** Every legacy event the adapter maps, seen or not (all zero means: nobody emits it any more). */
  events: Type.Record(Type.String(), LegacyEventReport),
  unmapped: Type.Object({
    received: Count,
    /** Per event name, for the first names seen (bounded, so a noisy emitter cannot grow it without end). */
    events: Type.Record(Type.String(), Count)
  }, { description: 'Events on the wrapped emitter that no adapter maps: ignored' })
})
export type AdapterReport = Static<typeof AdapterReport>

/** Per adapter name ('dashboard', 'admin-health', 'maintenance'). */
export const MigrationReport = Type.Record(Type.String(), AdapterReport, {
  description: 'Per adapter, per legacy event: received, published, rejected, failed, lastSeenAt'
})
export type MigrationReport = Static<typeof MigrationReport>
