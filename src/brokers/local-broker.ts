// In-process broker: the same publish → handler path that a networked broker
// takes. Like one, it hands messages over asynchronously, in order: publish()
// returns once the message is queued, and the queue is delivered on the next
// turn of the event loop. A publisher (a REST request) is answered without
// waiting for the fan-out to every socket, and a batch's fan-out runs while the
// next request is already on its way.
import { MicroBatch } from '../micro-batch.js'
import type { Broker, BrokerHandler, BrokerMessage, ControlHandler, ControlMessage } from './broker.js'

type Queued = { message: BrokerMessage, control?: undefined } | { control: ControlMessage }

export class LocalBroker implements Broker {
  #handler: BrokerHandler | undefined
  #control: ControlHandler | undefined
  // One queue for both kinds: a control message published after a notification is applied after it.
  readonly #queue = new MicroBatch<Queued>(items => this.#drain(items))

  async start (handler: BrokerHandler, control?: ControlHandler): Promise<void> {
    this.#handler = handler
    this.#control = control
  }

  async publish (message: BrokerMessage): Promise<void> {
    this.#enqueue({ message })
  }

  async publishControl (message: ControlMessage): Promise<void> {
    this.#enqueue({ control: message })
  }

  #enqueue (item: Queued): void {
    if (!this.#handler) return
    this.#queue.push(item)
  }

  #drain (items: Queued[]): void {
    for (const item of items) {
      // The manager's handlers log their own failures; one must not cost the messages queued behind it.
      try {
        if (item.control) this.#control?.(item.control)
        else this.#handler?.(item.message)
      } catch {}
    }
  }

  async ping (): Promise<void> {}

  async close (): Promise<void> {
    // What was accepted is delivered (to whatever sockets are still open) before the handler goes.
    this.#queue.flush()
    this.#handler = undefined
    this.#control = undefined
  }
}
