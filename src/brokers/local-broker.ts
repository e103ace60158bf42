// In-process broker: the same publish → handler path that a networked broker
// takes, with nothing in between.
import type { Broker, BrokerHandler, BrokerMessage } from './broker.js'

export class LocalBroker implements Broker {
  #handler: BrokerHandler | undefined

  async start (handler: BrokerHandler): Promise<void> {
    this.#handler = handler
  }

  async publish (message: BrokerMessage): Promise<void> {
    this.#handler?.(message)
  }

  async ping (): Promise<void> {}

  async close (): Promise<void> {
    this.#handler = undefined
  }
}
