// Fan-out between instances. publish() hands a stored notification to every
// instance (this one included), whose manager then delivers to its own sockets.
import type { StoredNotification } from '../schemas.js'

export interface BrokerMessage {
  notification: StoredNotification
  /** The original legacy payload, when an adapter forwards legacy events. */
  legacy?: { event: string, data: unknown }
}

export type BrokerHandler = (message: BrokerMessage) => void

export interface Broker {
  /** Starts delivering published messages to `handler`. */
  start (handler: BrokerHandler): Promise<void>
  publish (message: BrokerMessage): Promise<void>
  ping (): Promise<void>
  close (): Promise<void>
}
