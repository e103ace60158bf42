// Live connections indexed by user, role and category, so a delivery touches
// only its recipients. The maps mirror each other: a connection knows its own
// keys, so removing it is one call, and empty sets are deleted.
import type { SharedFrame } from './protocol.js'
import type { StoredNotification, User } from './schemas.js'

/** What the registry and the manager need of a live connection. */
export interface Connection {
  readonly id: string
  readonly user: User
  readonly subscriptions: ReadonlySet<string>
  /** Opened with legacy=1: also wants {"type":"legacy"} frames. */
  readonly legacy: boolean
  /** When the connection opened (epoch ms), for presence; absent counts as now. */
  readonly openedAt?: number
  /** The door it came through: 'ws' (the default) or 'socketio'. */
  readonly transport?: string
  /** Sends a notification frame shared by every recipient (deduplicated by seq inside). */
  deliver (seq: number, frame: SharedFrame): void
  /** Sends a legacy frame shared by every recipient. */
  deliverLegacy (frame: SharedFrame): void
  /** Applies the user's muted categories, changed on any instance: subscriptions shrink or grow back, the client is told. */
  applyMuted (muted: readonly string[]): void
  /** Closes the connection with a WebSocket close code (a delivery to it failed: 1011; a revocation: 4003). */
  close (code: number, reason: string): void
  /** Sends a frame outside the notification stream (e.g. `unread`), in order with the others, never deduplicated. */
  deliverFrame (frame: SharedFrame): void
}

export interface RegistrySizes {
  connections: number
  users: number
  roles: number
  categories: number
  /** Connections with a key set of their own (mirrors `connections`). */
  indexed: number
  /** Subscribed connections per category. */
  subscriptions: Record<string, number>
}

function addTo<K, V> (map: Map<K, Set<V>>, key: K, value: V): void {
  let set = map.get(key)
  if (!set) {
    set = new Set()
    map.set(key, set)
  }
  set.add(value)
}

function removeFrom<K, V> (map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key)
  if (!set) return
  set.delete(value)
  if (set.size === 0) map.delete(key)
}

const EMPTY: ReadonlySet<Connection> = new Set()

export class ConnectionRegistry {
  readonly #connections = new Map<string, Connection>()
  readonly #byUser = new Map<string, Set<Connection>>()
  readonly #byRole = new Map<string, Set<Connection>>()
  readonly #byCategory = new Map<string, Set<Connection>>()
  /** What each connection is subscribed to, as indexed here (the connection's own set may be mutated by subscribe()). */
  readonly #categoriesOf = new Map<Connection, Set<string>>()
  /** Told when a user's connections change (presence). */
  onUserChange: ((userId: string) => void) | undefined
  /** Open connections per transport, for the stats. */
  readonly #transports = new Map<string, number>()

  add (conn: Connection): void {
    if (this.#connections.has(conn.id)) return
    this.#connections.set(conn.id, conn)
    addTo(this.#byUser, conn.user.id, conn)
    addTo(this.#byRole, conn.user.role, conn)
    const transport = conn.transport ?? 'ws'
    this.#transports.set(transport, (this.#transports.get(transport) ?? 0) + 1)
    this.#categoriesOf.set(conn, new Set())
    this.subscribe(conn, [...conn.subscriptions])
    this.onUserChange?.(conn.user.id)
  }

  remove (conn: Connection): void {
    if (this.#connections.get(conn.id) !== conn) return
    this.#connections.delete(conn.id)
    removeFrom(this.#byUser, conn.user.id, conn)
    removeFrom(this.#byRole, conn.user.role, conn)
    const transport = conn.transport ?? 'ws'
    // Kept at 0 rather than deleted: a door's count falling to zero is what a migration watches for (two keys at most).
    this.#transports.set(transport, (this.#transports.get(transport) ?? 1) - 1)
    for (const c of this.#categoriesOf.get(conn) ?? []) removeFrom(this.#byCategory, c, conn)
    this.#categoriesOf.delete(conn)
    this.onUserChange?.(conn.user.id)
  }

  subscribe (conn: Connection, categories: readonly string[]): void {
    const own = this.#categoriesOf.get(conn)
    if (!own) return
    for (const c of categories) {
      own.add(c)
      addTo(this.#byCategory, c, conn)
    }
  }

  unsubscribe (conn: Connection, categories: readonly string[]): void {
    const own = this.#categoriesOf.get(conn)
    if (!own) return
    for (const c of categories) {
      own.delete(c)
      removeFrom(this.#byCategory, c, conn)
    }
  }

  has (conn: Connection): boolean {
    return this.#connections.get(conn.id) === conn
  }

  get (id: string): Connection | undefined {
    return this.#connections.get(id)
  }

  /** Connections of one user (for per-user limits). */
  ofUser (userId: string): ReadonlySet<Connection> {
    return this.#byUser.get(userId) ?? EMPTY
  }

  /** A user's connections here and when the oldest opened; undefined when it has none. */
  presenceOf (userId: string): { connections: number, since: number } | undefined {
    const set = this.#byUser.get(userId)
    if (!set) return undefined
    let since = Infinity
    for (const conn of set) since = Math.min(since, conn.openedAt ?? Date.now())
    return { connections: set.size, since }
  }

  /** Every user with connections here, with presenceOf()'s figures. */
  * presence (): IterableIterator<[string, { connections: number, since: number }]> {
    for (const id of this.#byUser.keys()) yield [id, this.presenceOf(id)!]
  }

  all (): IterableIterator<Connection> {
    return this.#connections.values()
  }

  /**
   * The connections that should receive `n`: subscribed to its category (which
   * implies the role may see it, checked at subscribe time) and admitted by its
   * audience. With an audience it walks the named users' and roles' connections,
   * keeping the subscribed ones; without one, the category's subscribers.
   */
  recipients (n: Pick<StoredNotification, 'category' | 'audience'>): Connection[] {
    const subscribers = this.#byCategory.get(n.category)
    if (!subscribers) return []
    const users = n.audience?.users ?? []
    const roles = n.audience?.roles ?? []
    if (users.length === 0 && roles.length === 0) return [...subscribers]

    const out: Connection[] = []
    const seen = users.length > 0 && roles.length > 0 ? new Set<Connection>() : undefined
    const take = (set: ReadonlySet<Connection> | undefined) => {
      if (!set) return
      for (const conn of set) {
        if (!subscribers.has(conn)) continue
        if (seen) {
          if (seen.has(conn)) continue
          seen.add(conn)
        }
        out.push(conn)
      }
    }
    for (const u of users) take(this.#byUser.get(u))
    for (const r of roles) take(this.#byRole.get(r))
    return out
  }

  /** Open connections per transport ('ws', 'socketio'), for every transport that has had one. */
  transports (): Record<string, number> {
    return Object.fromEntries(this.#transports)
  }

  sizes (): RegistrySizes {
    const subscriptions: Record<string, number> = {}
    for (const [c, set] of this.#byCategory) subscriptions[c] = set.size
    return {
      connections: this.#connections.size,
      users: this.#byUser.size,
      roles: this.#byRole.size,
      categories: this.#byCategory.size,
      indexed: this.#categoriesOf.size,
      subscriptions
    }
  }
}
