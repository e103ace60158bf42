// In-process broker: the same publish → handler path that a networked broker
// takes. Like one, it hands messages over asynchronously, in order: publish()
// returns once the message is queued, and the queue is delivered on the next
// turn of the event loop. A publisher (a REST request) is answered without
// waiting for the fan-out to every socket, and a batch's fan-out runs while the
// next request is already on its way.
import type { Broker, BrokerHandler, BrokerMessage } from './broker.js'

export class LocalBroker implements Broker {
  #handler: BrokerHandler | undefined
  #queue: BrokerMessage[] = []
  #scheduled = false

  async start (handler: BrokerHandler): Promise<void> {
    this.#handler = handler
  }

  async publish (message: BrokerMessage): Promise<void> {
    if (!this.#handler) return
    this.#queue.push(message)
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(() => this.#drain())
    }
  }

  #drain (): void {
    this.#scheduled = false
    const queue = this.#queue
    this.#queue = []
    for (const message of queue) {
      // The manager's handler logs its own failures; one must not cost the messages queued behind it.
      try {
        this.#handler?.(message)
      } catch {}
    }
  }

  async ping (): Promise<void> {}

  async close (): Promise<void> {
    // What was accepted is delivered (to whatever sockets are still open) before the handler goes.
    this.#drain()
    this.#handler = undefined
  }
}
