// History in Redis, shared by every instance of a deployment. Appends are one
// Lua script each (seq, indexes, idempotency, collapse, retention and the
// fan-out stream entry together: see redis-scripts.ts), so the stream the
// RedisBroker reads is in seq order by construction.
import { randomUUID } from 'node:crypto'
import type { Redis, Result } from 'ioredis'
import { UnavailableError } from '../errors.js'
import { openRedis, keyspace, type RedisConnectionOptions, type RedisSource } from '../redis/connection.js'
import type { ClientNotification, StoredNotification, User } from '../schemas.js'
import {
  DEFAULT_RETENTION, UNREAD_COUNT_CAP, type AppendResult, type Draft, type HistoryQuery, type HistoryStore, type Retention
} from './history-store.js'
import { APPEND, MARK_ALL_READ, MARK_READ, PRUNE, REVOKE, WALK } from './redis-scripts.js'

type Arg = string | number

declare module 'ioredis' {
  interface RedisCommander<Context> {
    unAppend (meta: string, ...args: Arg[]): Result<Array<string | number>, Context>
    unPrune (meta: string, ...args: Arg[]): Result<number, Context>
    unWalk (meta: string, ...args: Arg[]): Result<Array<string | number> | number, Context>
    unMarkRead (meta: string, ...args: Arg[]): Result<number, Context>
    unMarkAllRead (meta: string, ...args: Arg[]): Result<number, Context>
    unRevoke (meta: string, ...args: Arg[]): Result<number, Context>
  }
}

export const DEFAULT_REDIS_PREFIX = 'un:'
/** The fan-out stream keeps about this many entries (XADD MAXLEN ~): an instance further behind fills from history. */
export const DEFAULT_STREAM_MAX_LEN = 10_000
/** Rows retention removes per script call, so one call never holds Redis for long. */
const PRUNE_BATCH = 1000

export interface RedisStoreOptions extends RedisConnectionOptions {
  /** A redis:// or rediss:// URL (with an optional /db), an ioredis instance, or a factory of one. */
  redis: RedisSource
  /** Key prefix of one deployment (NOTIFY_REDIS_PREFIX); all its keys share one hash tag. */
  prefix?: string
  retention?: Partial<Retention>
  streamMaxLen?: number
}

/** What a RedisBroker on the same Redis needs to read the stream this store writes. */
export interface RedisFanout {
  /** The store's connection (the broker duplicates it for its blocking reads). */
  client: Redis
  /** The stream key. */
  stream: string
  /** The meta hash key (its `seq` field is the highest seq in the stream). */
  meta: string
  /** Stored notifications with after < seq < before, ascending: fills a gap in what an instance read. */
  range (after: number, before: number): Promise<StoredNotification[]>
}

/** A Redis failure as the publisher sees it: 503 UN_UNAVAILABLE, unless Redis answered with an error of its own (a bug: 500). */
function unavailable (err: unknown): Error {
  if (err instanceof Error && err.name === 'ReplyError') return err
  return new UnavailableError(`Redis did not answer: ${err instanceof Error ? err.message : String(err)}`)
}

export class RedisStore implements HistoryStore {
  readonly #source: RedisSource
  readonly #connection: RedisConnectionOptions
  readonly #retention: Retention
  readonly #streamMaxLen: number
  readonly #k: string
  #client: Redis | undefined
  #epoch = ''

  constructor (opts: RedisStoreOptions) {
    this.#source = opts.redis
    this.#connection = { ...(opts.commandTimeoutMs !== undefined ? { commandTimeoutMs: opts.commandTimeoutMs } : {}), ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}) }
    this.#k = keyspace(opts.prefix ?? DEFAULT_REDIS_PREFIX)
    this.#retention = { ...DEFAULT_RETENTION, ...opts.retention }
    this.#streamMaxLen = opts.streamMaxLen ?? DEFAULT_STREAM_MAX_LEN
  }

  get epoch (): string { return this.#epoch }

  /** The URL this store was opened with (undefined for an ioredis instance or factory). */
  get url (): string | undefined { return typeof this.#source === 'string' ? this.#source : undefined }

  /** The hash-tagged prefix of every key of this deployment (e.g. '{un}:'). */
  get keyPrefix (): string { return this.#k }

  get #meta (): string { return this.#k + 'meta' }

  get #redis (): Redis {
    if (!this.#client) throw new Error('RedisStore used before init() or after close()')
    return this.#client
  }

  async init (): Promise<void> {
    const client = await openRedis(this.#source, this.#connection)
    client.defineCommand('unAppend', { numberOfKeys: 1, lua: APPEND })
    client.defineCommand('unPrune', { numberOfKeys: 1, lua: PRUNE })
    client.defineCommand('unWalk', { numberOfKeys: 1, lua: WALK })
    client.defineCommand('unMarkRead', { numberOfKeys: 1, lua: MARK_READ })
    client.defineCommand('unMarkAllRead', { numberOfKeys: 1, lua: MARK_ALL_READ })
    client.defineCommand('unRevoke', { numberOfKeys: 1, lua: REVOKE })
    this.#client = client
    await client.hsetnx(this.#meta, 'epoch', randomUUID())
    await this.#refreshEpoch()
    await this.prune(Date.now())
  }

  async #refreshEpoch (): Promise<void> {
    const epoch = await this.#redis.hget(this.#meta, 'epoch')
    if (epoch !== null) this.#epoch = epoch
  }

  get fanout (): RedisFanout {
    const redis = this.#redis
    return {
      client: redis,
      stream: this.#k + 'stream',
      meta: this.#meta,
      range: async (after, before) => {
        const seqs = await redis.zrangebyscore(this.#k + 'log', `(${after}`, `(${before}`)
        if (seqs.length === 0) return []
        const bodies = await redis.hmget(this.#k + 'n', ...seqs)
        return bodies.filter((b): b is string => b !== null).map(b => JSON.parse(b) as StoredNotification)
      }
    }
  }

  async append (draft: Draft, idempotencyKey?: string): Promise<AppendResult> {
    const [result] = await this.appendMany([{ draft, ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) }])
    return result!
  }

  async appendMany (items: ReadonlyArray<{ draft: Draft, idempotencyKey?: string }>): Promise<AppendResult[]> {
    // Serialised before the script runs: a draft that cannot be read fails the batch untouched.
    const args: Arg[] = []
    const drafts: Draft[] = []
    for (const { draft, idempotencyKey } of items) {
      const body = JSON.stringify(draft)
      const copy = JSON.parse(body) as Draft
      const index: Record<string, unknown> = {
        id: copy.id,
        c: copy.category,
        t: String(Date.parse(copy.createdAt)),
        u: copy.audience?.users ?? [],
        r: copy.audience?.roles ?? []
      }
      if (copy.expiresAt !== undefined) index.x = String(Date.parse(copy.expiresAt))
      if (copy.collapseKey !== undefined) index.k = copy.collapseKey
      if (idempotencyKey !== undefined) index.i = idempotencyKey
      args.push(JSON.stringify(index), body)
      drafts.push(copy)
    }
    const now = Date.now()
    let reply: Array<string | number>
    try {
      reply = await this.#redis.unAppend(this.#meta, this.#k, now, this.#retention.maxCount, now - this.#retention.maxAgeMs,
        this.#streamMaxLen, randomUUID(), PRUNE_BATCH, ...args)
    } catch (err) {
      throw unavailable(err)
    }
    this.#epoch = String(reply[0])
    return drafts.map((draft, i) => {
      const r = reply[i + 1]!
      if (typeof r === 'number') return { notification: { ...draft, seq: r }, duplicate: false }
      return { notification: JSON.parse(r) as StoredNotification, duplicate: true }
    })
  }

  async lastSeq (): Promise<number> {
    // With the epoch: a connection is told the last seq of the log it names (another instance may have started a new one).
    const [seq, epoch] = await this.#redis.hmget(this.#meta, 'seq', 'epoch')
    if (epoch !== null && epoch !== undefined) this.#epoch = epoch
    return Number(seq ?? 0)
  }

  async prunedThrough (): Promise<number> {
    return Number(await this.#redis.hget(this.#meta, 'pruned') ?? 0)
  }

  #walkArgs (mode: 'page' | 'count', user: User, categories: readonly string[], o: { after?: number, before?: number, asc: boolean, limit: number, unreadOnly: boolean, now: number }): Arg[] {
    return [this.#k, mode, user.id, user.role, JSON.stringify(categories), o.after ?? 0, o.before ?? '', o.asc ? '1' : '0', o.limit, o.unreadOnly ? '1' : '0', o.now]
  }

  async query (q: HistoryQuery): Promise<ClientNotification[]> {
    if (q.categories.length === 0 || q.limit <= 0) return []
    const reply = await this.#redis.unWalk(this.#meta, ...this.#walkArgs('page', q.user, q.categories, {
      ...(q.after !== undefined ? { after: q.after } : {}),
      ...(q.before !== undefined ? { before: q.before } : {}),
      asc: q.order === 'asc',
      limit: q.limit,
      unreadOnly: q.unreadOnly === true,
      now: q.now
    })) as Array<string | number>
    const out: ClientNotification[] = []
    for (let i = 0; i < reply.length; i += 2) {
      // The parsed body is this call's own object: completed in place rather than copied.
      const n = JSON.parse(String(reply[i])) as ClientNotification & { audience?: unknown }
      delete n.audience
      n.read = reply[i + 1] === 1
      out.push(n)
    }
    return out
  }

  async unreadCount (user: User, categories: readonly string[], now: number): Promise<number> {
    if (categories.length === 0) return 0
    return await this.#redis.unWalk(this.#meta, ...this.#walkArgs('count', user, categories, {
      asc: false, limit: UNREAD_COUNT_CAP, unreadOnly: true, now
    })) as number
  }

  async markRead (userId: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return
    await this.#redis.unMarkRead(this.#meta, this.#k, userId, ...ids)
  }

  async markAllRead (userId: string, upToSeq: number): Promise<void> {
    await this.#redis.unMarkAllRead(this.#meta, this.#k, userId, upToSeq)
  }

  async getMuted (userId: string): Promise<string[]> {
    const json = await this.#redis.hget(this.#k + 'muted', userId)
    return json === null ? [] : JSON.parse(json) as string[]
  }

  async setMuted (userId: string, muted: readonly string[]): Promise<void> {
    if (muted.length === 0) await this.#redis.hdel(this.#k + 'muted', userId)
    else await this.#redis.hset(this.#k + 'muted', userId, JSON.stringify([...new Set(muted)]))
  }

  async getMutedMany (userIds: readonly string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>()
    if (userIds.length === 0) return out
    const lists = await this.#redis.hmget(this.#k + 'muted', ...userIds)
    userIds.forEach((id, i) => { const json = lists[i]; if (json != null) out.set(id, JSON.parse(json) as string[]) })
    return out
  }

  async idOfIdempotencyKey (key: string): Promise<string | null> {
    const json = await this.#redis.hget(this.#k + 'idem', key)
    return json === null ? null : (JSON.parse(json) as { id: string }).id
  }

  async idOfCollapseKey (collapseKey: string): Promise<string | null> {
    const seq = await this.#redis.hget(this.#k + 'ck', collapseKey)
    if (seq === null) return null
    const json = await this.#redis.hget(this.#k + 'n', seq)
    return json === null ? null : (JSON.parse(json) as { id: string }).id
  }

  async revokeTokens (userId: string, issuedAtOrBefore: number, until: number): Promise<void> {
    try {
      await this.#redis.unRevoke(this.#meta, this.#k, userId, Math.floor(issuedAtOrBefore), Math.ceil(until))
    } catch (err) {
      throw unavailable(err)
    }
  }

  async revokedThrough (userId: string, now: number): Promise<number> {
    const v = await this.#redis.hget(this.#k + 'revoked', userId)
    if (v === null) return 0
    const [cut, until] = v.split(':').map(Number) as [number, number]
    return until > now ? cut : 0
  }

  async prune (now: number): Promise<void> {
    const cutoff = now - this.#retention.maxAgeMs
    // A backlog (a long outage of the timer, a lowered limit) is removed in bounded steps.
    while (await this.#redis.unPrune(this.#meta, this.#k, now, this.#retention.maxCount, cutoff, PRUNE_BATCH) >= PRUNE_BATCH) { /* next batch */ }
  }

  async ping (): Promise<void> {
    await this.#redis.ping()
    await this.#refreshEpoch()
  }

  async close (): Promise<void> {
    const client = this.#client
    this.#client = undefined
    if (client) await client.quit().catch(() => client.disconnect())
  }
}
