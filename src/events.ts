// The event seam: what the manager, the sessions and the adapters report, on
// node:diagnostics_channel channels (as Fastify and undici publish theirs).
// Publishers check `hasSubscribers` before building a message, so with nobody
// listening (no metrics, no tracing) an event costs one property read.
import { channel } from 'node:diagnostics_channel'
import type { StoredNotification, User } from './schemas.js'

/** A channel whose messages have one shape. */
export interface EventChannel<T> {
  readonly name: string | symbol
  readonly hasSubscribers: boolean
  publish (message: T): void
}

/**
 * Who reported an event: the manager it belongs to. Channels are process-wide,
 * so a subscriber serving one app (its /metrics) keeps the events of its own manager.
 */
export type EventOrigin = object

export interface PublishedEvent {
  origin: EventOrigin
  notification: StoredNotification
  /** The REST request that published it, if any. */
  requestId?: string
}

export interface PublishFailedEvent {
  origin: EventOrigin
  /** The error's code (UN_UNAVAILABLE while not accepting or the store is down, UN_UNKNOWN_CATEGORY…), 'internal' for anything else. */
  code: string
  source: string
  requestId?: string
}

export interface DeliveredEvent {
  origin: EventOrigin
  notification: StoredNotification
  /** Local connections the frame was written (or queued behind a replay) to. */
  recipients: number
  /** When publish() was called ({@link preciseNow}), on the publishing instance. */
  publishedAt?: number
  requestId?: string
}

export interface ReplayedEvent {
  origin: EventOrigin
  sessionId: string
  user: User
  /** Notifications written by the replay. */
  count: number
  complete: boolean
}

export interface FrameRejectedEvent {
  origin: EventOrigin
  sessionId: string
  user: User
  /** The error frame's code (bad_request, unknown_type, forbidden, rate_limited, internal). */
  code: string
}

export interface ConnectionOpenedEvent {
  origin: EventOrigin
  sessionId: string
  user: User
}

export interface ConnectionClosedEvent {
  origin: EventOrigin
  sessionId: string
  user: User
  /** The close code: the one the server sent, else the peer's (1005 none, 1006 dropped). */
  code: number
  durationMs: number
  framesIn: number
  framesOut: number
}

export interface LegacyEvent {
  origin: EventOrigin
  adapter: string
  /** The legacy event name; only meaningful when `mapped` (otherwise any string an emitter used). */
  event: string
  mapped: boolean
  /** Unmapped events are rejected: nothing is published for them. */
  outcome: 'published' | 'rejected' | 'failed'
}

export const CHANNEL_PREFIX = 'unified-notifications:'

const typed = <T>(suffix: string) => channel(CHANNEL_PREFIX + suffix) as unknown as EventChannel<T>

/** Every channel of the seam, by event. Subscribe with diagnostics_channel.subscribe(channel.name, fn). */
export const events = {
  published: typed<PublishedEvent>('published'),
  publishFailed: typed<PublishFailedEvent>('publish-failed'),
  delivered: typed<DeliveredEvent>('delivered'),
  replayed: typed<ReplayedEvent>('replayed'),
  frameRejected: typed<FrameRejectedEvent>('frame-rejected'),
  connectionOpened: typed<ConnectionOpenedEvent>('connection-opened'),
  connectionClosed: typed<ConnectionClosedEvent>('connection-closed'),
  legacyEvent: typed<LegacyEvent>('legacy-event')
} as const

/** Epoch milliseconds with sub-millisecond precision, for latencies below a millisecond. */
export function preciseNow (): number {
  return performance.timeOrigin + performance.now()
}
