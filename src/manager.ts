// The NotificationManager: every notification enters through publish(), is
// validated, stamped and appended to history, then handed to the broker. The
// broker calls deliver() back on every instance (this one included), and only
// deliver() writes to local sockets.
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { TypeCompiler, type ValueError } from '@sinclair/typebox/compiler'
import { FormatRegistry } from '@sinclair/typebox'
import type { Broker, BrokerMessage, ControlMessage } from './brokers/broker.js'
import { describeDryRun } from './dry-run.js'
import {
  BadRequestError, CloseCode, DataTooDeepError, DataTooLargeError, ForbiddenError, InvalidPublishError, UnavailableError,
  UnknownCategoryError
} from './errors.js'
import { events, preciseNow, type DeliveredEvent, type PublishedEvent } from './events.js'
import { nestedDeeperThan } from './json-depth.js'
import { dataJson, keepPieces, liveFrame } from './notification-json.js'
import { DEFAULT_LIMITS, type Limits } from './limits.js'
import { uuidv7 } from './ids.js'
import type { Logger } from './logger.js'
import type { AdapterReport, MigrationReport } from './migration-report.js'
import type { NotificationService } from './notification-service.js'
import { RolePolicy } from './policy.js'
import { DEFAULT_LOCKED_CATEGORIES, checkMuted } from './preferences.js'
import { LocalPresence, type ClusterSizes, type Presence, type PresenceEntry } from './presence/presence.js'
import { legacyFrame, notificationFrame, unreadFrame, type SharedFrame } from './protocol.js'
import { ConnectionRegistry, type Connection, type RegistrySizes } from './registry.js'
import { SharedReads, type KnownReads, type ReplayItem } from './shared-reads.js'
import {
  MAX_DATA_BYTES, MAX_DATA_DEPTH, PublishInput, type ClientNotification, type DryRunResult, type Preferences, type StoredNotification, type User
} from './schemas.js'
import { UNREAD_COUNT_CAP, isExpired, type Draft, type HistoryStore, type ReplayRequest } from './stores/history-store.js'
import { DEFAULT_MAX_TOKEN_AGE_SECONDS } from './tokens.js'

if (!FormatRegistry.Has('date-time')) {
  FormatRegistry.Set('date-time', v => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(v) && !Number.isNaN(Date.parse(v)))
}
const checkPublishInput = TypeCompiler.Compile(PublishInput)

/** A schema error in words; a union of literals (type, priority) names its allowed values. */
function describeFirstError (e: ValueError | undefined): string {
  if (e === undefined) return '/ is invalid'
  const options = (e.schema as { anyOf?: Array<{ const?: unknown }> }).anyOf
  if (options !== undefined && options.every(o => typeof o.const === 'string')) {
    return `${e.path} must be one of: ${options.map(o => o.const).join(', ')}`
  }
  return `${e.path || '/'} ${e.message}`
}

/** Control message: a user's unread count changed (mark_read); every instance tells that user's connections. */
const UNREAD_CONTROL = 'unread'

/**
 * Inputs the REST layer has validated against the same PublishInput schema
 * (Fastify's strict Ajv): publish() skips its own check for them. Not part of
 * the package's exports; in-process callers are always checked here.
 */
const prevalidated = new WeakSet<object>()
export function markValidated (inputs: readonly object[]): void {
  for (const input of inputs) prevalidated.add(input)
}

export interface PublishOptions {
  /** 'api', 'app' or an adapter's name. */
  source?: string
  /** The legacy payload, forwarded as {"type":"legacy"} to connections opened with legacy=1. */
  legacy?: { event: string, data: unknown }
  /** The REST request behind the publish: carried to the delivery log lines on every instance. */
  requestId?: string
}

export interface PublishOutcome {
  notification: StoredNotification
  duplicate: boolean
}

export interface HistoryOptions {
  limit?: number
  before?: number
  categories?: readonly string[]
  unreadOnly?: boolean
}

export interface HistoryPage {
  notifications: ClientNotification[]
  hasMore: boolean
}

/** What markRead() marks: `ids`, or everything with `all: true`. */
export interface MarkReadRequest {
  ids?: readonly string[]
  all?: boolean
}

export interface ResumeStatus {
  /** false when history no longer reaches back to the cursor, or the cursor belongs to another log. */
  complete: boolean
  /** Whether anything should be replayed at all (not when the cursor is from another log). */
  replay: boolean
}

export interface ManagerStats {
  published: number
  duplicates: number
  delivered: number
  connections: number
  users: number
  /** Open connections per door: 'ws' always, 'socketio' once a Socket.IO client has connected. */
  transports: Record<string, number>
  subscriptions: Record<string, number>
}

/** Closes one door's connections at shutdown; every door's drain runs at once. */
export type Drain = () => Promise<void>

/** A provider of one adapter's migration counters (see adapters/). */
export type MigrationReportProvider = () => AdapterReport

/** A provider of one component's per-connection state sizes (e.g. the WebSocket plugin's sockets and timers). */
export type InternalsProvider = () => Record<string, number>

/** Sizes of every index, timer and per-connection table: all return to their baseline when connections go. */
export interface InternalSizes {
  registry: Omit<RegistrySizes, 'subscriptions'> & { subscriptions: number }
  [component: string]: Record<string, number>
}

export interface ManagerOptions {
  store: HistoryStore
  broker: Broker
  policy?: RolePolicy
  logger: Logger
  limits?: Partial<Limits>
  /** Who is online across instances; default: this instance's registry alone. */
  presence?: Presence
  /** This instance's id (stats, presence, log lines); default host name and a random suffix. */
  instance?: string
  /** Categories a user cannot mute (default: security). */
  lockedCategories?: readonly string[]
  /** Longest a token is honoured: how long a token revocation is kept (default 24 h). */
  maxTokenAgeMs?: number
}

export interface DisconnectOptions {
  /** Why, for the logs (the client's close reason is always "access revoked: get a new token"). */
  reason?: string
  /** Also refuse every token of the user issued up to now (iat at or before this second). */
  revokeTokens?: boolean
}

/** Control message: a user's muted categories changed. */
type PreferencesControl = { type: 'preferences', userId: string, muted: string[] }
/** Control message: close every connection of a user with 4003. */
type DisconnectControl = { type: 'disconnect', userId: string }

export const REVOKED_REASON = 'access revoked: get a new token'

/** Whether a revocation cut (epoch seconds, 0: none) refuses a token issued at `issuedAt` (epoch ms; a token without iat is refused). */
function revokedBy (cut: number, issuedAt: number | undefined): boolean {
  if (cut === 0) return false
  // The cut is in whole seconds, as iat is.
  return issuedAt === undefined || Math.floor(issuedAt / 1000) <= cut
}

/** What a registered session reads before `connected` (NotificationManager.connectState). */
export interface ConnectReads {
  lastSeq: number
  unread: number
  /** The user's muted categories as stored now. */
  muted: string[]
  revoked: boolean
  /** Read along when the store reads all of it at once: resumeStatus and replayPage need not read them again. */
  prunedThrough?: number
  known?: KnownReads
}

export class NotificationManager implements NotificationService {
  readonly store: HistoryStore
  readonly broker: Broker
  readonly policy: RolePolicy
  readonly registry = new ConnectionRegistry()
  readonly limits: Limits
  readonly log: Logger
  /** This instance's id, unique among the instances of a deployment. */
  readonly instance: string
  readonly #presence: Presence
  readonly lockedCategories: readonly string[]
  readonly #locked: ReadonlySet<string>
  readonly #maxTokenAgeMs: number
  readonly #reports = new Map<string, MigrationReportProvider>()
  readonly #internals = new Map<string, InternalsProvider>()
  readonly #drains = new Map<string, Drain>()
  /** Replay pages and unread counts that many connecting clients share, when the store can split its reads. */
  readonly #shared: SharedReads | undefined
  #published = 0
  #duplicates = 0
  #delivered = 0
  /** The history log live sessions' cursors refer to, when the broker says which (Redis). */
  #logEpoch: string | undefined
  #accepting = false

  constructor (opts: ManagerOptions) {
    this.store = opts.store
    this.broker = opts.broker
    this.policy = opts.policy ?? new RolePolicy()
    this.log = opts.logger
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits }
    this.instance = opts.instance ?? `${hostname()}-${randomUUID().slice(0, 8)}`
    this.#presence = opts.presence ?? new LocalPresence()
    this.registry.onUserChange = userId => this.#presence.changed(userId)
    this.lockedCategories = [...new Set(opts.lockedCategories ?? DEFAULT_LOCKED_CATEGORIES)]
    this.#locked = new Set(this.lockedCategories)
    this.#maxTokenAgeMs = opts.maxTokenAgeMs ?? DEFAULT_MAX_TOKEN_AGE_SECONDS * 1000
    this.#shared = opts.store.split !== undefined ? new SharedReads(opts.store.split) : undefined
  }

  async start (): Promise<void> {
    await this.store.init()
    this.#logEpoch = this.store.epoch
    await this.#presence.start({ user: id => this.registry.presenceOf(id), users: () => this.registry.presence() })
    await this.broker.start(m => {
      try {
        this.deliver(m)
      } catch (err) {
        // Stored already: the clients that missed it get it when they resume.
        this.log.error({ err, id: m.notification.id, seq: m.notification.seq }, 'delivery failed')
      }
    }, c => {
      try {
        this.applyControl(c)
      } catch (err) {
        this.log.error({ err, control: c.type }, 'control message failed')
      }
    })
    this.#accepting = true
  }

  get accepting (): boolean {
    return this.#accepting
  }

  /** Validates, stamps and stores one notification, then hands it to the broker. */
  async publish (input: PublishInput, opts: PublishOptions = {}): Promise<PublishOutcome> {
    const publishedAt = preciseNow()
    try {
      this.#assertAccepting()
      const draft = this.#prepare(input, opts.source ?? 'app')
      const { notification, duplicate } = await this.store.append(draft, input.idempotencyKey)
      await this.#afterAppend(notification, duplicate, publishedAt, opts)
      return { notification, duplicate }
    } catch (err) {
      this.#publishFailed(err, opts)
      throw err
    }
  }

  /** All valid or none published; stored in one transaction, in order. */
  async publishMany (inputs: readonly PublishInput[], opts: PublishOptions = {}): Promise<PublishOutcome[]> {
    const publishedAt = preciseNow()
    try {
      this.#assertAccepting()
      const source = opts.source ?? 'app'
      const items = inputs.map((input, i) => {
        try {
          // By assignment, not a spread of a conditional object: one item per notification.
          const item: { draft: Draft, idempotencyKey?: string } = { draft: this.#prepare(input, source) }
          if (input.idempotencyKey !== undefined) item.idempotencyKey = input.idempotencyKey
          return item
        } catch (err) {
          if (err instanceof Error) err.message = `notifications[${i}]: ${err.message}`
          throw err
        }
      })
      const results = await this.store.appendMany(items)
      const { legacy: _legacy, ...each } = opts
      // Handed to the broker in order, without a turn of the event loop between them.
      await Promise.all(results.map(r => this.#afterAppend(r.notification, r.duplicate, publishedAt, each)))
      return results
    } catch (err) {
      this.#publishFailed(err, opts)
      throw err
    }
  }

  /** Reports a refused or failed publish on the event seam (the metrics count 503s by code). */
  #publishFailed (err: unknown, opts: PublishOptions): void {
    if (!events.publishFailed.hasSubscribers) return
    const code = (err as { code?: unknown } | null)?.code
    events.publishFailed.publish({
      origin: this,
      code: typeof code === 'string' && code.startsWith('UN_') ? code : 'internal',
      source: opts.source ?? 'app',
      ...(opts.requestId !== undefined ? { requestId: opts.requestId } : {})
    })
  }

  #assertAccepting (): void {
    if (!this.#accepting) throw new UnavailableError('The notification service is not accepting publishes (starting or shutting down)')
  }

  async #afterAppend (n: StoredNotification, duplicate: boolean, publishedAt: number, opts: PublishOptions): Promise<void> {
    const requestId = opts.requestId
    if (duplicate) {
      this.#duplicates++
      this.log.info({ id: n.id, seq: n.seq, reqId: requestId }, 'duplicate publish ignored (idempotency key seen)')
      return
    }
    this.#published++
    this.log.debug({ id: n.id, seq: n.seq, category: n.category, source: n.source, reqId: requestId }, 'notification published')
    if (events.published.hasSubscribers) {
      // Built by assignment, not a spread of a conditional object: one of these for every notification.
      const e: PublishedEvent = { origin: this, notification: n }
      if (requestId !== undefined) e.requestId = requestId
      events.published.publish(e)
    }
    const message: BrokerMessage = { notification: n, publishedAt }
    if (opts.legacy) message.legacy = opts.legacy
    if (requestId !== undefined) message.requestId = requestId
    // The notification is durable from here on; a broker failure must not make it look unaccepted.
    try {
      await this.broker.publish(message)
    } catch (err) {
      this.log.error({ err, id: n.id, seq: n.seq }, 'broker publish failed; stored, clients will get it on resume')
    }
  }

  #prepare (input: PublishInput, source: string): Draft {
    if (!prevalidated.has(input) && !checkPublishInput.Check(input)) {
      throw new InvalidPublishError(describeFirstError(checkPublishInput.Errors(input).First()))
    }
    if (!this.policy.hasCategory(input.category)) throw new UnknownCategoryError(input.category)
    // The data's JSON, measured here and kept for the stored body and the frame (notification-json.ts).
    let data: string | undefined
    if (input.data !== undefined) {
      // Depth first: serialising a deeply nested object overflows the stack.
      if (nestedDeeperThan(input.data, MAX_DATA_DEPTH)) throw new DataTooDeepError(MAX_DATA_DEPTH)
      data = dataJson(input.data)
      // A UTF-16 unit is at most 3 bytes of UTF-8: most data is measured by its length alone.
      if (data === undefined || data.length * 3 > MAX_DATA_BYTES) {
        if (Buffer.byteLength(data ?? JSON.stringify(input.data)) > MAX_DATA_BYTES) throw new DataTooLargeError(MAX_DATA_BYTES)
      }
    }
    for (const role of input.audience?.roles ?? []) {
      if (!this.policy.hasRole(role)) throw new InvalidPublishError(`audience.roles names unknown role '${role}'`)
    }
    const now = Date.now()
    let expiresAt: string | undefined
    if (input.expiresAt !== undefined) {
      const at = Date.parse(input.expiresAt)
      if (at <= now) throw new InvalidPublishError('expiresAt is in the past')
      expiresAt = new Date(at).toISOString()
    }
    const users = input.audience?.users ?? []
    const roles = input.audience?.roles ?? []
    const draft: Draft = {
      id: uuidv7(now),
      category: input.category,
      type: input.type ?? 'info',
      priority: input.priority ?? 'normal',
      title: input.title,
      message: input.message ?? '',
      createdAt: new Date(now).toISOString(),
      source
    }
    if (input.data !== undefined) draft.data = input.data
    if (input.action !== undefined) draft.action = input.action
    if (expiresAt !== undefined) draft.expiresAt = expiresAt
    if (input.collapseKey !== undefined) draft.collapseKey = input.collapseKey
    if (users.length > 0 || roles.length > 0) {
      draft.audience = {}
      if (users.length > 0) draft.audience.users = users
      if (roles.length > 0) draft.audience.roles = roles
    }
    keepPieces(draft, data)
    return draft
  }

  /**
   * The store lost its log (Redis lost its data): seq started again, so every live cursor, here and in
   * the clients, points into a log that is gone, and the new log's first notifications would be dropped
   * as already seen. Each connection is closed as in a restart; the clients reconnect, and resuming
   * with the old epoch answers complete:false, so they reload their view from the new log.
   */
  #logStartedOver (epoch: string): void {
    this.log.warn({ epoch, previous: this.#logEpoch, connections: this.registry.sizes().connections }, 'the history log started over: closing every connection')
    this.#logEpoch = epoch
    for (const conn of [...this.registry.all()]) conn.close(CloseCode.goingAway, 'history log started over')
  }

  /** Broker callback: writes one notification to the local sockets entitled to it. */
  deliver (message: BrokerMessage): void {
    if (message.epoch !== undefined && message.epoch !== this.#logEpoch) {
      this.#logStartedOver(message.epoch)
      return
    }
    const n = message.notification
    if (isExpired(n, Date.now())) return
    const recipients = this.registry.recipients(n)
    if (message.legacyOnly === true) {
      if (message.legacy && recipients.length > 0) {
        const legacy: SharedFrame = { text: legacyFrame(message.legacy.event, message.legacy.data) }
        for (const conn of recipients) if (conn.legacy) conn.deliverLegacy(legacy)
      }
      return
    }
    if (recipients.length > 0) {
      // Serialised once; every recipient gets the same frame object (and the transport frames it once).
      const frame: SharedFrame = { text: liveFrame(n) }
      // One connection that throws is closed; every other recipient still gets the notification.
      for (const conn of recipients) {
        try {
          conn.deliver(n.seq, frame)
        } catch (err) {
          this.#dropFaulty(conn, n, err)
        }
      }
      if (message.legacy) {
        const legacy: SharedFrame = { text: legacyFrame(message.legacy.event, message.legacy.data) }
        for (const conn of recipients) {
          if (!conn.legacy) continue
          try {
            conn.deliverLegacy(legacy)
          } catch (err) {
            this.#dropFaulty(conn, n, err)
          }
        }
      }
    }
    this.#delivered += recipients.length
    if (events.delivered.hasSubscribers) {
      const e: DeliveredEvent = {
        origin: this,
        notification: n,
        recipients: recipients.length,
        // A message read back from Redis carries no publishedAt: createdAt is the same instant, to the millisecond.
        publishedAt: message.publishedAt ?? Date.parse(n.createdAt)
      }
      if (message.requestId !== undefined) e.requestId = message.requestId
      events.delivered.publish(e)
    }
    this.log.debug({ id: n.id, seq: n.seq, category: n.category, recipients: recipients.length, reqId: message.requestId }, 'notification delivered')
  }

  #dropFaulty (conn: Connection, n: StoredNotification, err: unknown): void {
    this.log.error({ err, sessionId: conn.id, userId: conn.user.id, id: n.id, seq: n.seq }, 'delivery failed; closing the connection (1011)')
    try {
      conn.close(CloseCode.internal, 'internal error')
    } catch (closeErr) {
      this.log.error({ err: closeErr, sessionId: conn.id }, 'closing a faulty connection failed')
    }
  }

  // ---- reading ------------------------------------------------------------------

  /** Narrows requested categories to what the role may see; a category it may not see is an error. */
  categoriesFor (user: User, requested?: readonly string[]): string[] {
    const visible = this.policy.visibleTo(user.role)
    if (requested === undefined || requested.length === 0) return visible
    for (const c of requested) {
      if (!this.policy.hasCategory(c)) throw new UnknownCategoryError(c)
      if (!this.policy.canSee(user.role, c)) throw new ForbiddenError(`Role '${user.role}' may not see category '${c}'`)
    }
    return [...new Set(requested)]
  }

  async history (user: User, opts: HistoryOptions = {}): Promise<HistoryPage> {
    const limit = opts.limit ?? 50
    const rows = await this.store.query({
      user,
      categories: this.categoriesFor(user, opts.categories),
      ...(opts.before !== undefined ? { before: opts.before } : {}),
      order: 'desc',
      limit: limit + 1,
      unreadOnly: opts.unreadOnly === true,
      now: Date.now()
    })
    return { notifications: rows.slice(0, limit), hasMore: rows.length > limit }
  }

  /** Entitled notifications after `after`, oldest first, in the given categories, as frames (resume). */
  async replayPage (user: User, categories: readonly string[], after: number, limit: number, known?: KnownReads): Promise<ReplayItem[]> {
    const now = Date.now()
    const items = await this.#shared?.page(user, categories, after, limit, now, known)
    if (items !== undefined) return items
    const rows = await this.store.query({ user, categories, after, order: 'asc', limit, now })
    return rows.map(n => ({ seq: n.seq, frame: { text: notificationFrame(n) } }))
  }

  /** `lastSeq`, `prunedThrough`: the store's, when the caller has just read them (a connecting session has). */
  async resumeStatus (since: number, epoch?: string, lastSeq?: number, prunedThrough?: number): Promise<ResumeStatus> {
    // The epoch is compared after the last seq is read: a shared store (Redis) refreshes it with that read.
    const [last, pruned] = await Promise.all([lastSeq ?? this.store.lastSeq(), prunedThrough ?? this.store.prunedThrough()])
    if (epoch !== undefined && epoch !== this.store.epoch) return { complete: false, replay: false }
    if (since > last) return { complete: false, replay: false }
    return { complete: since >= pruned, replay: true }
  }

  /**
   * What a /ws handshake checks before the upgrade, in one store call where the store allows:
   * whether a revocation refuses the token, and the user's muted categories.
   */
  async handshakeState (user: User, issuedAt: number | undefined): Promise<{ revoked: boolean, muted: string[] }> {
    const store = this.store
    if (store.handshakeState === undefined) {
      const [revoked, muted] = await Promise.all([this.isRevoked(user.id, issuedAt), store.getMuted(user.id)])
      return { revoked, muted }
    }
    const state = await store.handshakeState(user.id, Date.now())
    return { revoked: revokedBy(state.revokedThrough, issuedAt), muted: state.muted }
  }

  /**
   * What a session reads once registered, in one store call where the store allows (SQLite: one
   * statement): the last seq, the muted categories and revocation as stored now (the handshake's
   * may be stale), and the unread count with `muted` (the handshake's) left out.
   */
  async connectState (user: User, muted: readonly string[], issuedAt: number | undefined, replay?: ReplayRequest): Promise<ConnectReads> {
    const now = Date.now()
    const store = this.store
    if (store.connectState === undefined) {
      const [lastSeq, unread, stored, revoked] = await Promise.all([
        store.lastSeq(), this.unread(user, muted), store.getMuted(user.id), this.isRevoked(user.id, issuedAt)
      ])
      return { lastSeq, unread, muted: stored, revoked }
    }
    // The first replay page's own rows are read along only where the page shares its reads.
    const state = await store.connectState(user, this.#unmuted(user, muted), now, this.#shared === undefined ? undefined : replay)
    return {
      lastSeq: state.lastSeq,
      unread: Math.min(UNREAD_COUNT_CAP, state.unread),
      muted: state.muted,
      revoked: revokedBy(state.revokedThrough, issuedAt),
      prunedThrough: state.prunedThrough,
      known: { reader: state.reader, writes: state.writes, audience: state.audience, replay }
    }
  }

  /** The categories the user's role sees, less `muted`. */
  #unmuted (user: User, muted: readonly string[]): string[] {
    const visible = this.policy.visibleTo(user.role)
    if (muted.length === 0) return visible
    const leftOut = new Set(muted)
    return visible.filter(c => !leftOut.has(c))
  }

  /** Unread entitled notifications, muted categories left out (`muted`: the user's, when the caller holds them). */
  async unread (user: User, muted?: readonly string[]): Promise<number> {
    const categories = this.#unmuted(user, muted ?? await this.store.getMuted(user.id))
    if (categories.length === 0) return 0
    const now = Date.now()
    // The stores cap the count themselves; the min holds the documented cap for a custom store too.
    return Math.min(UNREAD_COUNT_CAP, await this.store.unreadCount(user, categories, now))
  }

  /** Marks `ids`, or everything (`all: true`), read: exactly one of the two. Resolves with the unread count (muted categories left out). */
  async markRead (user: User, what: MarkReadRequest, muted?: readonly string[]): Promise<number> {
    if (what.all !== undefined && what.ids !== undefined) throw new BadRequestError("mark_read takes either 'ids' or 'all': true, not both")
    let read: { ids: string[] } | { through: number }
    if (what.all === true) {
      const through = await this.store.lastSeq()
      await this.store.markAllRead(user.id, through)
      read = { through }
    } else if (what.ids !== undefined && what.ids.length > 0) {
      await this.store.markRead(user.id, what.ids)
      read = { ids: [...what.ids] }
    } else {
      throw new BadRequestError("mark_read needs 'ids' (1 to 500) or 'all': true")
    }
    const unread = await this.unread(user, muted)
    // The read state is stored: a failed fan-out only leaves other devices' badges stale until they reconnect.
    try {
      await this.broker.publishControl({ type: UNREAD_CONTROL, user: user.id, unread, ...read })
    } catch (err) {
      this.log.warn({ err, userId: user.id }, 'unread count not sent to the other connections')
    }
    return unread
  }

  // ---- preferences ----------------------------------------------------------------

  async preferences (user: User): Promise<Preferences> {
    return { muted: await this.store.getMuted(user.id), locked: [...this.lockedCategories] }
  }

  /** The user's muted categories: stored, then applied to every connection of theirs on every instance. */
  async setPreferences (user: User, muted: readonly string[]): Promise<Preferences> {
    const checked = checkMuted(this.policy, this.#locked, user, muted)
    await this.store.setMuted(user.id, checked)
    const control: PreferencesControl = { type: 'preferences', userId: user.id, muted: checked }
    try {
      await this.broker.publishControl(control)
    } catch (err) {
      // Stored: every later connect applies it; only already-open connections elsewhere miss it.
      this.log.error({ err, userId: user.id }, 'broker control publish failed; preferences stored')
    }
    return { muted: checked, locked: [...this.lockedCategories] }
  }

  // ---- revocation -----------------------------------------------------------------

  /**
   * Closes every connection of the user, on every instance, with 4003; with revokeTokens,
   * refuses their tokens issued up to this second for as long as such a token could be valid.
   * `closed` counts them on every instance (from presence; this instance's alone when presence cannot answer).
   */
  async disconnectUser (userId: string, opts: DisconnectOptions = {}): Promise<{ closed: number }> {
    if (opts.revokeTokens === true) {
      const now = Date.now()
      await this.store.revokeTokens(userId, Math.floor(now / 1000), now + this.#maxTokenAgeMs)
    }
    const closed = await this.#connectionsOf(userId)
    const control: DisconnectControl = { type: 'disconnect', userId }
    await this.broker.publishControl(control)
    this.log.info({ userId, reason: opts.reason, revokeTokens: opts.revokeTokens === true, closed }, 'user disconnected')
    return { closed }
  }

  /** Whether a revocation refuses this user's token issued at `issuedAt` (epoch ms; a token without iat is refused). */
  async isRevoked (userId: string, issuedAt: number | undefined): Promise<boolean> {
    return revokedBy(await this.store.revokedThrough(userId, Date.now()), issuedAt)
  }

  async #connectionsOf (userId: string): Promise<number> {
    try {
      const entry = (await this.presence([userId]))[userId]
      return entry?.online === true ? entry.connections : 0
    } catch (err) {
      this.log.warn({ err, userId }, 'presence unavailable: counting this instance only')
      return this.registry.ofUser(userId).size
    }
  }

  /** Broker control callback, on every instance: applies an instruction to this instance's connections. */
  applyControl (m: ControlMessage): void {
    if (m.type === UNREAD_CONTROL) {
      this.#applyUnread(m)
      return
    }
    const userId = m.userId
    if (typeof userId !== 'string') {
      this.log.warn({ type: m.type }, 'control message without a userId ignored')
      return
    }
    // A copy: closing a connection removes it from the registry's set.
    const connections = [...this.registry.ofUser(userId)]
    switch (m.type) {
      case 'preferences': {
        const muted = Array.isArray(m.muted) ? m.muted.filter((c): c is string => typeof c === 'string') : []
        for (const conn of connections) conn.applyMuted(muted)
        break
      }
      case 'disconnect':
        for (const conn of connections) conn.close(CloseCode.revoked, REVOKED_REASON)
        break
      default:
        this.log.warn({ type: m.type }, 'unknown control message ignored')
    }
  }

  #applyUnread (message: ControlMessage): void {
    const { user, unread, ids, through } = message
    if (typeof user !== 'string' || typeof unread !== 'number') return
    const conns = this.registry.ofUser(user)
    if (conns.size === 0) return
    const frame: SharedFrame = {
      text: unreadFrame({
        unread,
        ...(Array.isArray(ids) ? { ids: ids.filter((id): id is string => typeof id === 'string') } : {}),
        ...(typeof through === 'number' ? { through } : {})
      })
    }
    for (const conn of conns) conn.deliverFrame(frame)
  }

  // ---- dry run ----------------------------------------------------------------------

  /** Validates as publish() does, then says who would get it now; stores, delivers and counts nothing. */
  async dryRun (input: PublishInput, opts: Pick<PublishOptions, 'source'> = {}): Promise<DryRunResult> {
    this.#assertAccepting()
    const draft = this.#prepare(input, opts.source ?? 'app')
    const named = draft.audience?.users ?? []
    const [duplicateOf, collapses, muted] = await Promise.all([
      input.idempotencyKey !== undefined ? this.store.idOfIdempotencyKey(input.idempotencyKey) : null,
      input.collapseKey !== undefined ? this.store.idOfCollapseKey(input.collapseKey) : null,
      named.length > 0 ? this.store.getMutedMany(named) : new Map<string, string[]>()
    ])
    return describeDryRun(this.registry, this.policy, draft, { duplicateOf, collapses, muted })
  }

  // ---- connections ----------------------------------------------------------------

  /** Checks a new connection against the per-user limit; throws ForbiddenError when over. */
  assertCanConnect (user: User): void {
    if (this.registry.ofUser(user.id).size >= this.limits.maxConnectionsPerUser) {
      throw new ForbiddenError(`User already has ${this.limits.maxConnectionsPerUser} open connections`)
    }
  }

  // ---- reporting ------------------------------------------------------------------

  registerMigrationReport (adapter: string, provider: MigrationReportProvider): void {
    this.#reports.set(adapter, provider)
  }

  unregisterMigrationReport (adapter: string): void {
    this.#reports.delete(adapter)
  }

  /** The adapters' migration report: per adapter, per legacy event, what was received, published, rejected. */
  migration (): MigrationReport {
    const out: MigrationReport = {}
    for (const [name, provider] of this.#reports) out[name] = provider()
    return out
  }

  /** Lets a component (the WebSocket plugin) report the sizes of its per-connection state. */
  registerInternals (component: string, provider: InternalsProvider): void {
    this.#internals.set(component, provider)
  }

  /** Sizes of the registry's indexes and of every registered component's per-connection state. */
  sizes (): InternalSizes {
    const { subscriptions, ...registry } = this.registry.sizes()
    const out: InternalSizes = { registry: { ...registry, subscriptions: Object.values(subscriptions).reduce((a, b) => a + b, 0) } }
    for (const [name, provider] of this.#internals) out[name] = provider()
    return out
  }

  stats (): ManagerStats {
    const sizes = this.registry.sizes()
    return {
      published: this.#published,
      duplicates: this.#duplicates,
      delivered: this.#delivered,
      connections: sizes.connections,
      users: sizes.users,
      transports: { ws: 0, ...this.registry.transports() },
      subscriptions: sizes.subscriptions
    }
  }

  /** Whether each user has a connection on any instance, how many, and since when. */
  async presence (userIds: readonly string[]): Promise<Record<string, PresenceEntry>> {
    return this.#presence.lookup(userIds)
  }

  /** Live instances, connections and distinct users across the deployment. */
  async cluster (): Promise<ClusterSizes> {
    return this.#presence.cluster()
  }

  async health (): Promise<{ store: boolean, broker: boolean }> {
    const ok = (p: Promise<void>) => p.then(() => true, () => false)
    return { store: await ok(this.store.ping()), broker: await ok(this.broker.ping()) }
  }

  /** Stops accepting publishes. Connections are closed by their owner (the WebSocket plugin). */
  stopAccepting (): void {
    this.#accepting = false
  }

  /** Lets a door (/ws, Socket.IO) close its connections when the service shuts down. */
  registerDrain (door: string, drain: Drain): void {
    this.#drains.set(door, drain)
  }

  /** Stops accepting, then closes every door's connections in one drain (the doors in parallel). */
  async drain (): Promise<void> {
    this.stopAccepting()
    await Promise.all([...this.#drains.values()].map(d => d()))
  }

  async close (): Promise<void> {
    this.#accepting = false
    await this.#presence.close()
    await this.broker.close()
    await this.store.close()
  }
}
