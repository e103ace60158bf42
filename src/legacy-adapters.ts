// What an enabled legacy adapter offers the rest of the service (the ingest
// route, tests, a host app), as kept in `app.legacyAdapters`. The adapters in
// adapters/ implement it.
import type { EventEmitter } from 'node:events'
import type { AdapterReport } from './migration-report.js'
import type { StoredNotification } from './schemas.js'

/** What became of one legacy payload. */
export type LegacyOutcome =
  | { status: 'published', notification: StoredNotification }
  /** The payload (or the notification built from it) is invalid; `error` is one of src/errors.ts's 400s. */
  | { status: 'rejected', error: Error }
  /** Valid, but publishing failed (store down, shutting down). */
  | { status: 'failed', error: unknown }
  /** The adapter maps no such event. */
  | { status: 'unmapped' }

/** A registered, enabled adapter. */
export interface LegacyAdapter {
  readonly name: string
  readonly emitter: EventEmitter
  readonly forwardLegacyEvents: boolean
  /** The legacy events this adapter maps. */
  readonly events: readonly string[]
  /**
   * Emits `payload` as `event` on the adapter's emitter (so any other listener
   * sees it too) and resolves with what the adapter made of it. Never rejects
   * for a bad payload; an unknown event is counted as unmapped and not emitted.
   */
  ingest (event: string, payload: unknown): Promise<LegacyOutcome>
  report (): AdapterReport
}
