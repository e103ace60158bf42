// A broker shared by several apps in one test process, standing in for Redis:
// each app gets its own member, and whatever one member publishes (notification
// or control message) reaches every member, in order, on the next turn.
// Not a .test.ts file: the cluster tests import it.
import type { Broker, BrokerHandler, BrokerMessage, ControlHandler, ControlMessage } from '../src/brokers/broker.js'
import { LocalBroker } from '../src/brokers/local-broker.js'

export class TestCluster {
  readonly #members = new Set<LocalBroker>()

  /** A broker for one app of the cluster. */
  member (): Broker {
    const local = new LocalBroker()
    const members = this.#members
    return {
      async start (handler: BrokerHandler, control?: ControlHandler) {
        await local.start(handler, control)
        members.add(local)
      },
      async publish (message: BrokerMessage) {
        for (const m of members) await m.publish(message)
      },
      async publishControl (message: ControlMessage) {
        // Through JSON, as a networked broker would carry it.
        for (const m of members) await m.publishControl(JSON.parse(JSON.stringify(message)) as ControlMessage)
      },
      async ping () {},
      async close () {
        members.delete(local)
        await local.close()
      }
    }
  }
}
