// The contract every history backend satisfies. The store is the single source
// of order: it assigns seq, and a seq is never reused, even after a restart.
import type { StoredNotification, User, ClientNotification } from '../schemas.js'

/** A notification before the store has given it a seq. */
export type Draft = Omit<StoredNotification, 'seq'>

export interface AppendResult {
  notification: StoredNotification
  /** true when the idempotency key was seen before: `notification` is the first one, nothing was stored. */
  duplicate: boolean
}

export interface HistoryQuery {
  user: User
  /** Categories to include: already narrowed to what the role may see. */
  categories: readonly string[]
  /** Only seq > after (resume), ascending. */
  after?: number
  /** Only seq < before (paging back), descending. */
  before?: number
  order: 'asc' | 'desc'
  limit: number
  unreadOnly?: boolean
  /** Epoch ms; notifications expired at this time are left out. */
  now: number
}

export interface Retention {
  /** Keep at most this many notifications. */
  maxCount: number
  /** Drop notifications older than this (ms). */
  maxAgeMs: number
}

/** unreadCount counts at most this many; clients show the cap as "999+". See docs/protocol.md. */
export const UNREAD_COUNT_CAP = 1000

export const DEFAULT_RETENTION: Retention = { maxCount: 100_000, maxAgeMs: 30 * 24 * 3600 * 1000 }

export interface HistoryStore {
  /** Opens the log. Must be called (and awaited) before anything else. */
  init (): Promise<void>
  /** Identity of this log; changes when the log is lost (a fresh memory store, a new SQLite file). */
  readonly epoch: string
  /** Appends atomically; with `idempotencyKey` a key already seen returns the first notification. */
  append (draft: Draft, idempotencyKey?: string): Promise<AppendResult>
  /** All or nothing, in order. */
  appendMany (items: ReadonlyArray<{ draft: Draft, idempotencyKey?: string }>): Promise<AppendResult[]>
  /** Highest seq ever assigned (0 when empty). */
  lastSeq (): Promise<number>
  /** Highest seq removed by retention: a cursor below it can no longer be replayed completely. */
  prunedThrough (): Promise<number>
  query (q: HistoryQuery): Promise<ClientNotification[]>
  /**
   * Unread entitled notifications, counted up to UNREAD_COUNT_CAP: exact below the cap,
   * the cap itself at or above it (so a connect never counts a whole history).
   */
  unreadCount (user: User, categories: readonly string[], now: number): Promise<number>
  /** Marks the given ids read for this user; unknown ids are ignored. */
  markRead (userId: string, ids: readonly string[]): Promise<void>
  /** Marks everything up to `upToSeq` read for this user. */
  markAllRead (userId: string, upToSeq: number): Promise<void>
  /** The categories this user muted (for all of their devices); [] when none. */
  getMuted (userId: string): Promise<string[]>
  /** Replaces the user's muted categories. */
  setMuted (userId: string, muted: readonly string[]): Promise<void>
  /** The muted categories of many users in one query (a dry run names up to 1,000); users without any are absent. */
  getMutedMany (userIds: readonly string[]): Promise<Map<string, string[]>>
  /** Read-only: the id of the notification stored under this idempotency key, or null (a dry run's duplicateOf). */
  idOfIdempotencyKey (key: string): Promise<string | null>
  /** Read-only: the id of the notification currently holding this collapseKey, or null (a dry run's collapses). */
  idOfCollapseKey (collapseKey: string): Promise<string | null>
  /**
   * Refuses this user's tokens issued at or before `issuedAtOrBefore` (epoch seconds, a token's `iat`)
   * until `until` (epoch ms), after which no token it covers can still be valid. A later call with a
   * higher cut replaces an earlier one; a lower cut never lowers it.
   */
  revokeTokens (userId: string, issuedAtOrBefore: number, until: number): Promise<void>
  /** The revocation cut (epoch seconds) in force for this user at `now` (epoch ms), or 0 when none. */
  revokedThrough (userId: string, now: number): Promise<number>
  /** Applies retention now (and forgets revocations past their `until`). */
  prune (now: number): Promise<void>
  /** Throws when the backend cannot answer (health check). */
  ping (): Promise<void>
  close (): Promise<void>
  /** Present when the store can split its reads for a shared cache (SplitReads). */
  readonly split?: SplitReads
  /**
   * Optional: everything a connecting client's session reads, at once (one statement in SQLite
   * instead of seven). The manager falls back to the separate reads without it.
   */
  connectState? (user: User, categories: readonly string[], now: number, replay?: ReplayRequest): Promise<ConnectState>
  /** Optional: what a WebSocket handshake checks, at once (one statement in SQLite instead of two). */
  handshakeState? (userId: string, now: number): Promise<HandshakeState>
}

/** getMuted(userId) and revokedThrough(userId, now). */
export type HandshakeState = Pick<ConnectState, 'muted' | 'revokedThrough'>

/** What a connecting session reads once registered: each field as the method of the same name would answer. */
export interface ConnectState {
  lastSeq: number
  prunedThrough: number
  /** getMuted(user.id) */
  muted: string[]
  /** revokedThrough(user.id, now) */
  revokedThrough: number
  /** unreadCount(user, categories, now) */
  unread: number
  /** The reader's read state (SplitReads.reader). */
  reader: { upto: number, marks: boolean }
  /** SplitReads.writes as this read found it. */
  writes?: number
  /**
   * With `replay`, for a reader without marks: SplitReads.audiencePage(user, replay.categories,
   * replay.after, replay.limit, now, reader.upto), the resume's first page less its shared rows.
   */
  audience?: ClientNotification[]
}

/** The first replay page a resuming session will ask for, read along with its connect state. */
export interface ReplayRequest {
  categories: readonly string[]
  after: number
  limit: number
}

/** Whether the audience admits this user, for the stores that filter in JS (live delivery uses the registry's indexes). */
export function audienceAdmits (n: Pick<StoredNotification, 'audience'>, user: User): boolean {
  const a = n.audience
  if (a === undefined) return true
  const hasUsers = a.users !== undefined && a.users.length > 0
  const hasRoles = a.roles !== undefined && a.roles.length > 0
  if (!hasUsers && !hasRoles) return true
  return (hasUsers && a.users!.includes(user.id)) || (hasRoles && a.roles!.includes(user.role))
}

export function isExpired (n: Pick<StoredNotification, 'expiresAt'>, now: number): boolean {
  return n.expiresAt !== undefined && Date.parse(n.expiresAt) <= now
}

/** The client view of a stored notification: no audience, plus the reader's read flag. */
export function toClient (n: StoredNotification, read: boolean): ClientNotification {
  // Field by field, not a rest spread: one object of one shape, built for every delivery.
  const c: ClientNotification = {
    id: n.id,
    seq: n.seq,
    category: n.category,
    type: n.type,
    priority: n.priority,
    title: n.title,
    message: n.message,
    createdAt: n.createdAt,
    source: n.source,
    read
  }
  if (n.data !== undefined) c.data = n.data
  if (n.action !== undefined) c.action = n.action
  if (n.expiresAt !== undefined) c.expiresAt = n.expiresAt
  if (n.collapseKey !== undefined) c.collapseKey = n.collapseKey
  return c
}

/**
 * Optional: a store's reads split into the part every reader of the same
 * categories shares (rows without an audience) and the reader's own part, so
 * that many readers (a reconnect storm) share one read of the first
 * (src/shared-reads.ts). For readers without read marks above their read_upto
 * (most: mark-all-read clears them); a reader with marks takes query().
 */
export interface SplitReads {
  /** Changes with every write that can change what a query returns (append, collapse, retention): equal, the shared results are too. */
  readonly writes: number
  /** The reader's read_upto, and whether it has read marks above it. */
  reader (userId: string): Promise<{ upto: number, marks: boolean }>
  /** query() of rows without an audience only, ascending after `after`, read flags false. */
  broadcastPage (categories: readonly string[], after: number, limit: number, now: number): Promise<ClientNotification[]>
  /** query() of rows whose audience names the user or its role only, ascending, for a reader without marks. */
  audiencePage (user: User, categories: readonly string[], after: number, limit: number, now: number, upto: number): Promise<ClientNotification[]>
}
