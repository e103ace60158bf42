// Picks a broker from an option: an instance, else a name or URL; with none,
// the broker follows the store (a RedisStore gets the RedisBroker reading its stream).
import type { Logger } from '../logger.js'
import { isRedisUrl, type RedisConnectionOptions } from '../redis/connection.js'
import type { HistoryStore } from '../stores/history-store.js'
import { RedisStore } from '../stores/redis-store.js'
import type { Broker } from './broker.js'
import { LocalBroker } from './local-broker.js'
import { RedisBroker } from './redis-broker.js'

export type { Broker, BrokerHandler, BrokerMessage, ControlHandler, ControlMessage } from './broker.js'
export { LocalBroker } from './local-broker.js'
export { RedisBroker, type RedisBrokerOptions } from './redis-broker.js'

export interface BrokerSettings {
  /** The store in use: a RedisStore on the same Redis is read by the broker (paired). */
  store: HistoryStore
  redisPrefix?: string
  redis?: RedisConnectionOptions
  /** This instance's id (names its Redis connection). */
  instance?: string
  log?: Logger
}

export function createBroker (spec: string | Broker | undefined, settings: BrokerSettings): Broker {
  if (spec !== undefined && typeof spec !== 'string') return spec
  const { store } = settings
  const common = {
    ...settings.redis,
    ...(settings.instance !== undefined ? { name: settings.instance } : {}),
    ...(settings.log !== undefined ? { log: settings.log } : {})
  }
  // Paired: the store's append script already adds each notification to the stream, in seq order.
  if (store instanceof RedisStore && (spec === undefined || spec === store.url)) {
    return new RedisBroker({ ...common, fanout: () => store.fanout })
  }
  if (spec === undefined || spec === 'local') return new LocalBroker()
  if (isRedisUrl(spec)) {
    return new RedisBroker({ ...common, redis: spec, ...(settings.redisPrefix !== undefined ? { prefix: settings.redisPrefix } : {}) })
  }
  throw new TypeError(`Unknown broker '${spec}': expected 'local', 'redis://…' or a Broker instance`)
}
