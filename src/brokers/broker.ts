// Fan-out between instances. publish() hands a stored notification to every
// instance (this one included), whose manager then delivers to its own sockets.
// publishControl() does the same for instructions about connections (a user's
// preferences changed, a user's access revoked), which every instance applies
// to the connections it holds.
import type { StoredNotification } from '../schemas.js'

export interface BrokerMessage {
  notification: StoredNotification
  /** The original legacy payload, when an adapter forwards legacy events. */
  legacy?: { event: string, data: unknown }
  /** When publish() was called (epoch ms, sub-ms precision): the start of publish-to-send latency. */
  publishedAt?: number
  /** The REST request that published it, for the delivery log lines on every instance. */
  requestId?: string
  /**
   * Only the legacy frame is new: the notification itself came in an earlier message
   * (a broker whose store already fanned it out carries the legacy payload after it).
   */
  legacyOnly?: boolean
  /**
   * The history log the notification belongs to, from brokers that carry it (Redis): a new
   * epoch means the store lost its log and seq started again.
   */
  epoch?: string
}

/**
 * An instruction for every instance, JSON-serialisable; brokers carry it without
 * reading it. `type` names it ('preferences', 'disconnect'…); the manager dispatches on it.
 */
export interface ControlMessage {
  type: string
  [key: string]: unknown
}

export type BrokerHandler = (message: BrokerMessage) => void
export type ControlHandler = (message: ControlMessage) => void

export interface Broker {
  /**
   * Starts delivering published messages to `handler` and control messages to
   * `control`, on this instance, each exactly once, in the order they were published.
   */
  start (handler: BrokerHandler, control?: ControlHandler): Promise<void>
  publish (message: BrokerMessage): Promise<void>
  /** Hands a control message to every instance, this one included. */
  publishControl (message: ControlMessage): Promise<void>
  ping (): Promise<void>
  close (): Promise<void>
}
