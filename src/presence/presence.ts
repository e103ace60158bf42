// Who is online, across every instance. Each instance reports the users of its
// own connections; a Presence answers for the whole deployment.

export type PresenceEntry = { online: true, connections: number, since: string } | { online: false }

export interface ClusterSizes {
  /** Live instances (this one included). */
  instances: number
  connections: number
  /** Distinct users across every instance. */
  users: number
}

/** One user's connections on this instance: how many, and when the oldest opened (epoch ms). */
export interface LocalUserPresence { connections: number, since: number }

/** What a Presence reads of this instance: the user's connections here, undefined when none. */
export type LocalPresenceSource = {
  user (userId: string): LocalUserPresence | undefined
  users (): Iterable<[string, LocalUserPresence]>
}

export interface Presence {
  start (local: LocalPresenceSource): Promise<void>
  /** The connections of a user on this instance changed (opened or closed). */
  changed (userId: string): void
  lookup (userIds: readonly string[]): Promise<Record<string, PresenceEntry>>
  cluster (): Promise<ClusterSizes>
  close (): Promise<void>
}

/** Presence of one instance alone: what its registry holds. */
export class LocalPresence implements Presence {
  #local: LocalPresenceSource | undefined

  async start (local: LocalPresenceSource): Promise<void> {
    this.#local = local
  }

  changed (): void {}

  async lookup (userIds: readonly string[]): Promise<Record<string, PresenceEntry>> {
    // Own properties whatever the id ('__proto__' included): entries, not assignments.
    const out: Array<[string, PresenceEntry]> = []
    for (const id of userIds) {
      const p = this.#local?.user(id)
      out.push([id, p === undefined ? { online: false } : { online: true, connections: p.connections, since: new Date(p.since).toISOString() }])
    }
    return Object.fromEntries(out)
  }

  async cluster (): Promise<ClusterSizes> {
    let connections = 0
    let users = 0
    for (const [, p] of this.#local?.users() ?? []) {
      connections += p.connections
      users++
    }
    return { instances: 1, connections, users }
  }

  async close (): Promise<void> {}
}
