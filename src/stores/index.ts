// Picks a history backend from an option: an instance, else a URL-ish string.
import type { HistoryStore, Retention } from './history-store.js'
import { MemoryStore } from './memory-store.js'
import { SqliteStore } from './sqlite-store.js'

export type { HistoryStore, Draft, AppendResult, HistoryQuery, Retention } from './history-store.js'
export { DEFAULT_RETENTION, UNREAD_COUNT_CAP } from './history-store.js'
export { MemoryStore } from './memory-store.js'
export { SqliteStore } from './sqlite-store.js'

export function createStore (spec: string | HistoryStore, retention: Partial<Retention> = {}): HistoryStore {
  if (typeof spec !== 'string') return spec
  if (spec === 'memory') return new MemoryStore(retention)
  if (spec.startsWith('sqlite:')) {
    const path = spec.slice('sqlite:'.length)
    if (path === '') throw new TypeError("store 'sqlite:' needs a path, e.g. 'sqlite:./data/notifications.db'")
    return new SqliteStore(path, retention)
  }
  if (spec.startsWith('redis://') || spec.startsWith('rediss://')) {
    throw new TypeError('The Redis history store is not available in this version; use memory or sqlite:<path>')
  }
  throw new TypeError(`Unknown store '${spec}': expected 'memory', 'sqlite:<path>' or a HistoryStore instance`)
}
