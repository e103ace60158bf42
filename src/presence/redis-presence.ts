// Presence across instances in Redis (after centrifuge's presence_add.lua: a
// hash per instance plus an expiring index). Each instance writes its own users
// to `presence:<instance>` (user -> "connections:sinceMs") as they change, and
// rewrites the whole hash on a heartbeat that also renews its score in the
// `instances` zset (score = when it expires). A crashed instance stops renewing:
// its users count as offline once its score is past, within `ttlMs`.
import type { Redis } from 'ioredis'
import type { Logger } from '../logger.js'
import type { ClusterSizes, LocalPresenceSource, Presence, PresenceEntry } from './presence.js'

export const DEFAULT_PRESENCE_TTL_MS = 15_000

export interface RedisPresenceOptions {
  /** The connection (the store's), available once the store is open. */
  client: () => Redis
  /** The deployment's hash-tagged key prefix. */
  keyPrefix: string
  instance: string
  /** How long an instance's entries count after its last heartbeat (a heartbeat runs every third of it). */
  ttlMs?: number
  log?: Logger
}

export class RedisPresence implements Presence {
  readonly #opts: RedisPresenceOptions
  readonly #ttlMs: number
  #local: LocalPresenceSource | undefined
  #redis: Redis | undefined
  #timer: NodeJS.Timeout | undefined
  #dirty = new Set<string>()
  #flushScheduled = false
  #failing = false

  constructor (opts: RedisPresenceOptions) {
    this.#opts = opts
    this.#ttlMs = opts.ttlMs ?? DEFAULT_PRESENCE_TTL_MS
  }

  get #instances (): string { return this.#opts.keyPrefix + 'instances' }
  #hash (instance: string): string { return this.#opts.keyPrefix + 'presence:' + instance }

  async start (local: LocalPresenceSource): Promise<void> {
    this.#local = local
    this.#redis = this.#opts.client()
    await this.#heartbeat()
    this.#timer = setInterval(() => { this.#heartbeat().catch(err => this.#failed(err)) }, Math.max(10, Math.floor(this.#ttlMs / 3)))
    this.#timer.unref()
  }

  #failed (err: unknown): void {
    // Once per outage: the next heartbeat after Redis returns rewrites everything.
    if (!this.#failing) this.#opts.log?.warn({ err }, 'presence could not be written to Redis')
    this.#failing = true
  }

  #value (userId: string): string | undefined {
    const p = this.#local?.user(userId)
    return p === undefined ? undefined : `${p.connections}:${p.since}`
  }

  /** Renews this instance and rewrites its users, so what an outage lost is written again. */
  async #heartbeat (): Promise<void> {
    const redis = this.#redis
    if (!redis) return
    const now = Date.now()
    const hash = this.#hash(this.#opts.instance)
    const fields: string[] = []
    for (const [id, p] of this.#local?.users() ?? []) fields.push(id, `${p.connections}:${p.since}`)
    const tx = redis.multi()
      .zadd(this.#instances, now + this.#ttlMs, this.#opts.instance)
      .zremrangebyscore(this.#instances, '-inf', now)
      .del(hash)
    if (fields.length > 0) tx.hset(hash, ...fields)
    await tx.pexpire(hash, this.#ttlMs).exec()
    this.#failing = false
  }

  changed (userId: string): void {
    this.#dirty.add(userId)
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    // Changes of one turn (a reconnect storm) go in one round trip.
    setImmediate(() => { this.#flush().catch(err => this.#failed(err)) })
  }

  async #flush (): Promise<void> {
    this.#flushScheduled = false
    const redis = this.#redis
    const users = [...this.#dirty]
    this.#dirty.clear()
    if (!redis || users.length === 0) return
    const hash = this.#hash(this.#opts.instance)
    const tx = redis.multi()
    for (const id of users) {
      const v = this.#value(id)
      if (v === undefined) tx.hdel(hash, id)
      else tx.hset(hash, id, v)
    }
    await tx.pexpire(hash, this.#ttlMs).exec()
  }

  async #live (): Promise<string[]> {
    return this.#redis!.zrangebyscore(this.#instances, Date.now(), '+inf')
  }

  async lookup (userIds: readonly string[]): Promise<Record<string, PresenceEntry>> {
    const found = new Map<string, { connections: number, since: number }>()
    if (userIds.length > 0) {
      const instances = await this.#live()
      const tx = this.#redis!.multi()
      for (const instance of instances) tx.hmget(this.#hash(instance), ...userIds)
      const replies = instances.length === 0 ? [] : await tx.exec() ?? []
      for (const [err, values] of replies) {
        if (err) throw err
        ;(values as Array<string | null>).forEach((v, i) => {
          if (v === null) return
          const [connections, since] = v.split(':').map(Number) as [number, number]
          const id = userIds[i]!
          const prev = found.get(id)
          found.set(id, prev === undefined ? { connections, since } : { connections: prev.connections + connections, since: Math.min(prev.since, since) })
        })
      }
    }
    // Own properties whatever the id ('__proto__' included): entries, not assignments.
    const out: Array<[string, PresenceEntry]> = []
    for (const id of userIds) {
      const p = found.get(id)
      out.push([id, p === undefined ? { online: false } : { online: true, connections: p.connections, since: new Date(p.since).toISOString() }])
    }
    return Object.fromEntries(out)
  }

  async cluster (): Promise<ClusterSizes> {
    const instances = await this.#live()
    const users = new Set<string>()
    let connections = 0
    if (instances.length > 0) {
      const tx = this.#redis!.multi()
      for (const instance of instances) tx.hgetall(this.#hash(instance))
      for (const [err, all] of await tx.exec() ?? []) {
        if (err) throw err
        for (const [id, v] of Object.entries(all as Record<string, string>)) {
          users.add(id)
          connections += Number(v.split(':')[0])
        }
      }
    }
    return { instances: instances.length, connections, users: users.size }
  }

  async close (): Promise<void> {
    clearInterval(this.#timer)
    const redis = this.#redis
    this.#redis = undefined
    // A clean stop takes this instance's users offline at once (a crash waits for the TTL).
    if (redis) await redis.multi().zrem(this.#instances, this.#opts.instance).del(this.#hash(this.#opts.instance)).exec().catch(() => {})
  }
}
