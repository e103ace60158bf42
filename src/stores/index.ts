// Picks a history backend from an option: an instance, else a URL-ish string.
// Asynchronous and lazy: the Redis store's client library is loaded only when
// a redis:// URL is given.
import type { RedisConnectionOptions } from '../redis/connection.js'
import { isRedisUrl } from '../redis/connection.js'
import type { HistoryStore, Retention } from './history-store.js'
import { MemoryStore } from './memory-store.js'
import { SqliteStore } from './sqlite-store.js'

export type { HistoryStore, Draft, AppendResult, HistoryQuery, Retention } from './history-store.js'
export { DEFAULT_RETENTION, UNREAD_COUNT_CAP } from './history-store.js'
export { MemoryStore } from './memory-store.js'
export { SqliteStore } from './sqlite-store.js'
export { RedisStore, DEFAULT_REDIS_PREFIX, type RedisStoreOptions } from './redis-store.js'

export interface StoreSettings {
  retention?: Partial<Retention>
  /** Key prefix of the deployment in Redis (NOTIFY_REDIS_PREFIX). */
  redisPrefix?: string
  redis?: RedisConnectionOptions
}

export async function createStore (spec: string | HistoryStore, settings: StoreSettings = {}): Promise<HistoryStore> {
  if (typeof spec !== 'string') return spec
  const retention = settings.retention ?? {}
  if (spec === 'memory') return new MemoryStore(retention)
  if (spec.startsWith('sqlite:')) {
    const path = spec.slice('sqlite:'.length)
    if (path === '') throw new TypeError("store 'sqlite:' needs a path, e.g. 'sqlite:./data/notifications.db'")
    return new SqliteStore(path, retention)
  }
  if (isRedisUrl(spec)) {
    const { RedisStore } = await import('./redis-store.js')
    return new RedisStore({ redis: spec, retention, ...settings.redis, ...(settings.redisPrefix !== undefined ? { prefix: settings.redisPrefix } : {}) })
  }
  throw new TypeError(`Unknown store '${spec}': expected 'memory', 'sqlite:<path>', 'redis://…' or a HistoryStore instance`)
}
