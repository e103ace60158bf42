// Picks a broker from an option: an instance, else a name or URL.
import type { Broker } from './broker.js'
import { LocalBroker } from './local-broker.js'

export type { Broker, BrokerHandler, BrokerMessage, ControlHandler, ControlMessage } from './broker.js'
export { LocalBroker } from './local-broker.js'

export function createBroker (spec: string | Broker): Broker {
  if (typeof spec !== 'string') return spec
  if (spec === 'local') return new LocalBroker()
  if (spec.startsWith('redis://') || spec.startsWith('rediss://')) {
    throw new TypeError('The Redis broker is not available in this version; use local')
  }
  throw new TypeError(`Unknown broker '${spec}': expected 'local' or a Broker instance`)
}
