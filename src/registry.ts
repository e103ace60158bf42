// Live connections indexed by user, role and category, so a delivery touches
// only its recipients. A disconnect is one call: it leaves the user's and the
// role's entry and every category set (a handful, bounded by the configured
// categories), and empty entries are deleted. Sized for many idle connections:
// a connection is kept once per index, with no key set of its own, and a user
// with one connection (most of them) is indexed by the connection itself.
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
  /** Connections held by the user index (mirrors `connections`: a leak check). */
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

/** A user's connections: the connection itself while it is the only one, a Set from the second on. */
type UserEntry = Connection | Set<Connection>

/** Adds the subscribed connections of a user's or a role's entry to `out`, once each when `seen` is given. */
function take (entry: UserEntry | undefined, subscribers: ReadonlySet<Connection>, seen: Set<Connection> | undefined, out: Connection[]): void {
  if (entry === undefined) return
  if (!(entry instanceof Set)) {
    takeOne(entry, subscribers, seen, out)
    return
  }
  for (const conn of entry) takeOne(conn, subscribers, seen, out)
}

function takeOne (conn: Connection, subscribers: ReadonlySet<Connection>, seen: Set<Connection> | undefined, out: Connection[]): void {
  if (!subscribers.has(conn)) return
  if (seen !== undefined) {
    if (seen.has(conn)) return
    seen.add(conn)
  }
  out.push(conn)
}

const EMPTY: ReadonlySet<Connection> = new Set()

export class ConnectionRegistry {
  readonly #connections = new Map<string, Connection>()
  readonly #byUser = new Map<string, UserEntry>()
  readonly #byRole = new Map<string, Set<Connection>>()
  readonly #byCategory = new Map<string, Set<Connection>>()
  /** Connections in #byUser, counted as they enter and leave it. */
  #indexed = 0
  /** Told when a user's connections change (presence). */
  onUserChange: ((userId: string) => void) | undefined
  /** Open connections per transport, for the stats. */
  readonly #transports = new Map<string, number>()

  add (conn: Connection): void {
    if (this.#connections.has(conn.id)) return
    this.#connections.set(conn.id, conn)
    this.#addToUser(conn)
    addTo(this.#byRole, conn.user.role, conn)
    const transport = conn.transport ?? 'ws'
    this.#transports.set(transport, (this.#transports.get(transport) ?? 0) + 1)
    for (const c of conn.subscriptions) addTo(this.#byCategory, c, conn)
    this.onUserChange?.(conn.user.id)
  }

  remove (conn: Connection): void {
    if (this.#connections.get(conn.id) !== conn) return
    this.#connections.delete(conn.id)
    this.#removeFromUser(conn)
    removeFrom(this.#byRole, conn.user.role, conn)
    const transport = conn.transport ?? 'ws'
    // Kept at 0 rather than deleted: a door's count falling to zero is what a migration watches for (two keys at most).
    this.#transports.set(transport, (this.#transports.get(transport) ?? 1) - 1)
    // Every category set rather than the connection's own subscriptions, which its owner may have changed already.
    for (const [c, set] of this.#byCategory) {
      if (set.delete(conn) && set.size === 0) this.#byCategory.delete(c)
    }
    this.onUserChange?.(conn.user.id)
  }

  subscribe (conn: Connection, categories: readonly string[]): void {
    if (!this.has(conn)) return
    for (const c of categories) addTo(this.#byCategory, c, conn)
  }

  unsubscribe (conn: Connection, categories: readonly string[]): void {
    if (!this.has(conn)) return
    for (const c of categories) removeFrom(this.#byCategory, c, conn)
  }

  #addToUser (conn: Connection): void {
    const id = conn.user.id
    const entry = this.#byUser.get(id)
    if (entry === undefined) this.#byUser.set(id, conn)
    else if (entry instanceof Set) entry.add(conn)
    else this.#byUser.set(id, new Set([entry, conn]))
    this.#indexed++
  }

  #removeFromUser (conn: Connection): void {
    const id = conn.user.id
    const entry = this.#byUser.get(id)
    if (entry === conn) {
      this.#byUser.delete(id)
    } else if (entry instanceof Set && entry.delete(conn)) {
      // Back to one connection: the connection itself again, not a Set of one.
      if (entry.size === 1) this.#byUser.set(id, entry.values().next().value!)
    } else {
      return
    }
    this.#indexed--
  }

  has (conn: Connection): boolean {
    return this.#connections.get(conn.id) === conn
  }

  get (id: string): Connection | undefined {
    return this.#connections.get(id)
  }

  /** Connections of one user (for per-user limits). */
  ofUser (userId: string): ReadonlySet<Connection> {
    const entry = this.#byUser.get(userId)
    if (entry === undefined) return EMPTY
    return entry instanceof Set ? entry : new Set([entry])
  }

  /** A user's connections here and when the oldest opened; undefined when it has none. */
  presenceOf (userId: string): { connections: number, since: number } | undefined {
    const entry = this.#byUser.get(userId)
    if (entry === undefined) return undefined
    if (!(entry instanceof Set)) return { connections: 1, since: entry.openedAt ?? Date.now() }
    let since = Infinity
    for (const conn of entry) since = Math.min(since, conn.openedAt ?? Date.now())
    return { connections: entry.size, since }
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
    // Named users only (most targeted notifications): their connections are distinct, nothing to de-duplicate.
    const seen = users.length > 0 && roles.length > 0 ? new Set<Connection>() : undefined
    for (const u of users) take(this.#byUser.get(u), subscribers, seen, out)
    for (const r of roles) take(this.#byRole.get(r), subscribers, seen, out)
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
      indexed: this.#indexed,
      subscriptions
    }
  }
}
