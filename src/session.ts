// One WebSocket connection speaking protocol v1, framework-free: it talks to a
// small socket interface, so it can be driven by @fastify/websocket, plain ws
// or a test double alike.
import { randomUUID } from 'node:crypto'
import { systemClock, type Clock, type ClockTimer } from './clock.js'
import { BadRequestError, CloseCode, FrameErrorCode, InvalidTokenError, UnknownCategoryError, frameErrorOf } from './errors.js'
import { events } from './events.js'
import { expiryTimersOf, type Expiring } from './expiry-timers.js'
import type { Logger } from './logger.js'
import { REVOKED_REASON, type ConnectReads, type NotificationManager, type ResumeStatus } from './manager.js'
import { effectiveSubscriptions } from './preferences.js'
import {
  checkClientFrame, connectedFrame, errorFrame, parseClientFrame, preferencesFrame, replayedFrame, replyFrame,
  type ParsedFrame, type SharedFrame
} from './protocol.js'
import type { Connection } from './registry.js'
import type { ReplayItem } from './shared-reads.js'
import type { ClientFrame, User } from './schemas.js'
import { TokenBucket } from './token-bucket.js'
import { TokenError, type TokenVerifier } from './tokens.js'

/** The little of a WebSocket that a session needs. */
export interface SocketLike {
  send (data: string): void
  /** Writes a frame shared with other sockets; transports that can reuse one encoding implement it. */
  sendShared? (frame: SharedFrame): void
  close (code: number, reason?: string): void
  readonly bufferedAmount: number
  /** Drops the connection at once (ws `terminate()`); used when the peer does not answer a close in time. */
  terminate? (): void
  /** Sends a WebSocket ping (liveness); the transport reports the pong through Session.onPong(). */
  ping? (): void
}

export interface SessionOptions {
  manager: NotificationManager
  socket: SocketLike
  user: User
  /** Epoch ms at which the credentials expire (close 4001 unless refreshed). */
  expiresAt?: number
  /** Epoch ms the credentials were issued at (a token's iat), checked again against revocations once registered. */
  issuedAt?: number
  /** Initial subscriptions, already checked against the role policy (muted ones are left out here). */
  subscriptions: readonly string[]
  /** The user's muted categories as read before the upgrade (checked again once registered). */
  muted?: readonly string[]
  /** Opened with legacy=1. */
  legacy?: boolean
  /** Resume cursor: replay everything entitled after it. */
  since?: number
  /** The log the cursor belongs to (from a previous `connected` frame). */
  epoch?: string
  /** Verifies a token sent in a refresh frame; absent when the host app authenticates on its own. */
  verifyToken?: TokenVerifier
  log: Logger
  /** The upgrade request's id, for the `connection opened` log line (ties it to the request's own logs). */
  reqId?: string
  /** Time and timers; default the system clock. */
  clock?: Clock
  /** The door the client came through, for the stats: 'ws' (default) or 'socketio'. */
  transport?: string
  /**
   * Lets out what the door held back since before the upgrade (the upgrade response), called once
   * `connected` and the first replay page are written: all of it leaves in one write.
   */
  release?: () => void
}

const REPLAY_PAGE = 500
/** How long a replay may wait for a full send buffer to drain before the client counts as a slow consumer. */
const REPLAY_DRAIN_MS = 30_000
/** Per-connection state a session holds: timers and frames waiting (all zero once its socket is gone). */
export interface SessionHeld { expiryTimers: number, closeTimers: number, pendingFrames: number }

/** Live notifications held for a connection still writing its replay. */
const MAX_PENDING = 10_000
/** After the server closes, how long the peer has to answer before the socket (and its unsent buffer) is dropped. */
export const CLOSE_GRACE_MS = 2000
/** What ws reports when the peer dropped the connection without a close frame. */
const ABNORMAL_CLOSURE = 1006

function sameMembers (list: readonly string[], set: ReadonlySet<string>): boolean {
  return list.length === set.size && list.every(c => set.has(c))
}

/** Shared by every connection of a user who muted nothing (most of them): no Set each. */
const NOTHING_MUTED: ReadonlySet<string> = new Set()

/**
 * Subscription sets shared, read-only, by the connections that have the same
 * ones in the same order (most connections of a role): a connection copies its
 * set on its first change. Bounded: emptied when full, while the sets in use
 * stay marked as shared.
 */
const sharedSets = new Map<string, ReadonlySet<string>>()
const isShared = new WeakSet<ReadonlySet<string>>()
const MAX_SHARED_SETS = 256

function sharedSubscriptions (categories: Iterable<string>): ReadonlySet<string> {
  // Keyed by the list as given (the lists come without duplicates): a connection whose set is
  // known builds none.
  const list = Array.isArray(categories) ? categories as readonly string[] : [...categories]
  const key = list.join('\n')
  const known = sharedSets.get(key)
  if (known !== undefined) return known
  const set = new Set(list)
  if (sharedSets.size >= MAX_SHARED_SETS) sharedSets.clear()
  sharedSets.set(key, set)
  isShared.add(set)
  return set
}

export class Session implements Connection, Expiring {
  readonly id = randomUUID()
  readonly openedAt = Date.now()
  readonly user: User
  readonly legacy: boolean
  readonly transport: string
  /** What this connection receives: what it asked for, less the user's muted categories (shared until changed). */
  #subscriptions: ReadonlySet<string>
  /**
   * What the client asked for (connect, subscribe, unsubscribe), muted or not: unmuting restores it.
   * Kept only while something is muted; otherwise it is `subscriptions` itself.
   */
  #wanted: Set<string> | undefined
  #muted: ReadonlySet<string> = NOTHING_MUTED
  /** `connected` is written: later preference changes are announced with a frame. */
  #announced = false
  readonly #manager: NotificationManager
  readonly #socket: SocketLike
  readonly #log: Logger
  readonly #verifyToken: TokenVerifier | undefined
  readonly #clock: Clock
  // Made on first use: an idle connection (most of them) holds neither.
  #requests: TokenBucket | undefined
  #badFrames: TokenBucket | undefined
  #rateLimitedInARow = 0
  #expiresAt: number | undefined
  /** The deadline this session waits for in its clock's expiry timers (shared: no timer per connection). */
  #expiryAt: number | undefined
  /** Armed by close(): drops a peer that does not read its close frame (a slow consumer), so its buffer is freed. */
  #closeTimer: ClockTimer | undefined
  /** Heartbeats since the peer last answered a ping. */
  #missedPongs = 0
  /** Highest seq written to the socket: nothing at or below it is sent again. */
  #lastSent = 0
  /** Live frames that arrived before `connected` and the replay were written. */
  #pending: Array<{ seq: number, frame: SharedFrame, legacy?: true }> | undefined = []
  #closed = false
  /** Counted for the `connection closed` line and the metrics; cheap enough to count always. */
  #framesIn = 0
  #framesOut = 0
  /** The code this server closed with; undefined when the peer closed first. */
  #closeCode: number | undefined
  /** Registered by start(): only a connection that was reported opened is reported closed. */
  #registered = false
  /** A policy close (4008) is queued behind the answers already owed; no further frame is read. */
  #closing = false
  /** Client frames are handled one at a time, in arrival order, after start() finished. */
  #queue: Promise<void>
  /** Let go once start() is done: an open connection keeps no closure for it. */
  #resolveStarted: (() => void) | undefined

  /** What only start() needs; let go once it is done, so an open connection does not keep its options. */
  #start: Pick<SessionOptions, 'since' | 'epoch' | 'reqId' | 'issuedAt' | 'release'> | undefined

  constructor (opts: SessionOptions) {
    this.#start = { since: opts.since, epoch: opts.epoch, reqId: opts.reqId, issuedAt: opts.issuedAt, release: opts.release }
    this.#manager = opts.manager
    this.#socket = opts.socket
    this.user = opts.user
    this.legacy = opts.legacy === true
    this.transport = opts.transport ?? 'ws'
    if (opts.muted !== undefined && opts.muted.length > 0) {
      this.#muted = new Set(opts.muted)
      this.#wanted = new Set(opts.subscriptions)
      this.#subscriptions = sharedSubscriptions(effectiveSubscriptions(this.#wanted, this.#muted))
    } else {
      this.#subscriptions = sharedSubscriptions(opts.subscriptions)
    }
    this.#verifyToken = opts.verifyToken
    this.#clock = opts.clock ?? systemClock
    // No child logger per session: its bindings would be held by every idle connection.
    this.#log = opts.log
    this.#expiresAt = opts.expiresAt
    this.#queue = new Promise(resolve => { this.#resolveStarted = resolve })
  }

  /** Who a log line is about (bound per call instead of a child logger per session). */
  #ids (): { sessionId: string, userId: string } {
    return { sessionId: this.id, userId: this.user.id }
  }

  get subscriptions (): ReadonlySet<string> {
    return this.#subscriptions
  }

  /** This connection's own subscription set, to change: a shared one is copied first. */
  #ownSubscriptions (): Set<string> {
    if (isShared.has(this.#subscriptions)) this.#subscriptions = new Set(this.#subscriptions)
    return this.#subscriptions as Set<string>
  }

  /** The transport this session writes to. */
  get socket (): SocketLike {
    return this.#socket
  }

  get closed (): boolean {
    return this.#closed
  }

  /** What `sessions` hold together, for a door's internals (the leak checks and the stats route). */
  static heldBy (sessions: Iterable<Session>): SessionHeld {
    const sum: SessionHeld = { expiryTimers: 0, closeTimers: 0, pendingFrames: 0 }
    for (const session of sessions) {
      const held = session.held
      sum.expiryTimers += held.expiryTimers
      sum.closeTimers += held.closeTimers
      sum.pendingFrames += held.pendingFrames
    }
    return sum
  }

  /** Per-connection state this session holds, for the leak checks (all zero once the socket is gone). */
  get held (): SessionHeld {
    return {
      expiryTimers: this.#expiryAt === undefined ? 0 : 1,
      closeTimers: this.#closeTimer === undefined ? 0 : 1,
      pendingFrames: this.#pending?.length ?? 0
    }
  }

  /**
   * Registers the connection, then writes `connected`, the replay and whatever
   * arrived live meanwhile. Live frames are held from the moment of
   * registration, so nothing published during the replay is missed, and the
   * seq high-water mark drops what the replay already covered.
   */
  async start (): Promise<void> {
    const manager = this.#manager
    manager.registry.add(this)
    this.#registered = true
    if (events.connectionOpened.hasSubscribers) events.connectionOpened.publish({ origin: manager, sessionId: this.id, user: this.user })
    this.#armExpiry()
    try {
      // The muted categories and the revocation are read again once registered: a change stored
      // before registration sent its control message too early for us.
      const since = this.#start?.since
      // A resume's first page of its own rows is read along (where the store can).
      const replay = since === undefined ? undefined : { categories: [...this.subscriptions], after: since, limit: REPLAY_PAGE }
      const state = await manager.connectState(this.user, this.#muted === NOTHING_MUTED ? [] : [...this.#muted], this.#start?.issuedAt, replay)
      if (this.#closed) return
      if (state.revoked) {
        // A revocation between the handshake's check and registration found no connection to close: close it here.
        this.close(CloseCode.revoked, REVOKED_REASON)
        return
      }
      const lastSeq = state.lastSeq
      let unread = state.unread
      if (!sameMembers(state.muted, this.#muted)) {
        this.applyMuted(state.muted)
        unread = await manager.unread(this.user, state.muted)
        if (this.#closed) return
      }
      const { epoch, reqId } = this.#start ?? {}
      // A resume reads where it stands and its first page before writing anything, so that
      // `connected`, the page and `replayed` are written in one synchronous run (one write).
      const resume = since === undefined ? undefined : await this.#firstPage(since, epoch, state)
      if (this.#closed) return
      this.#announced = true
      this.#write(connectedFrame({
        sessionId: this.id,
        user: { id: this.user.id, role: this.user.role },
        categories: manager.policy.visibleTo(this.user.role),
        subscriptions: [...this.subscriptions],
        unread,
        lastSeq,
        epoch: manager.store.epoch
      }))
      // Live delivery starts after lastSeq: anything older is history, not news, for a client that
      // does not resume (and the client SDK takes lastSeq as its cursor).
      this.#lastSent = lastSeq
      if (resume !== undefined) await this.#replay(since!, resume)
      if (this.#closed) return
      const pending = this.#pending ?? []
      this.#pending = undefined
      for (const p of pending) {
        if (p.legacy) this.#write(p.frame)
        else this.deliver(p.seq, p.frame)
      }
      // Every connect passes here: the line's object is built only when it is written.
      if (this.#log.isLevelEnabled?.('info') !== false) {
        this.#log.info({ ...this.#ids(), reqId, role: this.user.role, instance: manager.instance, subscriptions: this.subscriptions.size, since, legacy: this.legacy }, 'connection opened')
      }
    } catch (err) {
      this.#log.error({ ...this.#ids(), err }, 'connection start failed')
      this.close(CloseCode.internal, 'internal error')
    } finally {
      this.#release()
      this.#start = undefined
      this.#resolveStarted?.()
      this.#resolveStarted = undefined
    }
  }

  /** What the door held back is let out once (see SessionOptions.release). */
  #release (): void {
    const release = this.#start?.release
    if (release === undefined) return
    this.#start!.release = undefined
    release()
  }

  /** Whether the cursor can be replayed, and the first page of what follows it. */
  async #firstPage (since: number, epoch: string | undefined, state: ConnectReads): Promise<{ status: ResumeStatus, categories: string[], page: ReplayItem[] }> {
    const status = await this.#manager.resumeStatus(since, epoch, state.lastSeq, state.prunedThrough)
    const categories = [...this.subscriptions]
    // The page read along is for the subscriptions at that time: replayPage checks it is the one asked for.
    const page = status.replay && categories.length > 0 ? await this.#manager.replayPage(this.user, categories, since, REPLAY_PAGE, state.known) : []
    return { status, categories, page }
  }

  async #replay (since: number, first: { status: ResumeStatus, categories: string[], page: ReplayItem[] }): Promise<void> {
    const { status, categories } = first
    let page = first.page
    let count = 0
    if (status.replay) {
      // Within this log: everything after the client's cursor, replayed or live, is sent once.
      this.#lastSent = since
      let after = since
      for (;;) {
        // One synchronous run: a transport that holds a turn's frames (ws-transport) writes the page at once.
        for (const item of page) {
          this.#write(item.frame)
          this.#lastSent = item.seq
          after = item.seq
          count++
        }
        if (page.length < REPLAY_PAGE) break
        // A long replay waits for the socket to drain rather than tripping the slow-consumer limit.
        this.#release()
        if (!await this.#drained()) return
        page = await this.#manager.replayPage(this.user, categories, after, REPLAY_PAGE)
        if (this.#closed) return
      }
    }
    this.#write(replayedFrame(count, status.complete))
    if (events.replayed.hasSubscribers) {
      events.replayed.publish({ origin: this.#manager, sessionId: this.id, user: this.user, count, complete: status.complete })
    }
  }

  /** Waits until at most half the send buffer is in use; false (and closed 4009) when it never drains. */
  async #drained (): Promise<boolean> {
    const limit = this.#manager.limits.sendBufferBytes / 2
    const deadline = this.#clock.now() + REPLAY_DRAIN_MS
    while (this.#socket.bufferedAmount > limit) {
      if (this.#closed) return false
      if (this.#clock.now() > deadline) {
        this.close(CloseCode.slowConsumer, 'slow consumer')
        return false
      }
      await new Promise<void>(resolve => { this.#clock.setTimeout(resolve, 10) })
    }
    return !this.#closed
  }

  // ---- outgoing ---------------------------------------------------------------------

  deliver (seq: number, frame: SharedFrame): void {
    if (this.#closed) return
    if (this.#pending) {
      // Held while connected/replay are written; a connection that cannot start in time is a slow consumer.
      if (this.#pending.length >= MAX_PENDING) {
        this.close(CloseCode.slowConsumer, 'slow consumer')
        return
      }
      this.#pending.push({ seq, frame })
      return
    }
    if (seq <= this.#lastSent) return
    this.#lastSent = seq
    this.#write(frame)
  }

  deliverLegacy (frame: SharedFrame): void {
    this.deliverFrame(frame)
  }

  deliverFrame (frame: SharedFrame): void {
    if (this.#closed) return
    if (this.#pending) {
      // Frames outside the notification stream are never replayed, so the seq high-water mark does not apply to them.
      this.#pending.push({ seq: 0, frame, legacy: true })
      return
    }
    this.#write(frame)
  }

  #write (frame: string | SharedFrame): void {
    if (this.#closed) return
    if (this.#socket.bufferedAmount > this.#manager.limits.sendBufferBytes) {
      this.#log.warn({ ...this.#ids(), bufferedAmount: this.#socket.bufferedAmount }, 'slow consumer: closing')
      this.close(CloseCode.slowConsumer, 'slow consumer')
      return
    }
    this.#framesOut++
    if (typeof frame === 'string') this.#socket.send(frame)
    else if (this.#socket.sendShared) this.#socket.sendShared(frame)
    else this.#socket.send(frame.text)
  }

  // ---- incoming ---------------------------------------------------------------------

  /** Entry point for every client message. Never throws. */
  onMessage (data: Buffer | string, isBinary: boolean): void {
    if (!this.#admit()) return
    if (isBinary) {
      this.#badFrame(undefined, FrameErrorCode.badRequest, 'Binary frames are not supported: send JSON text')
      return
    }
    this.#accept(parseClientFrame(typeof data === 'string' ? data : data.toString('utf8')))
  }

  /** Entry point for a request its transport has already decoded (a Socket.IO event): same limits and answers. */
  onRequest (value: unknown): void {
    if (!this.#admit()) return
    this.#accept(checkClientFrame(value))
  }

  /** A request its transport could not take as it came (e.g. a Socket.IO event without an ack): a bad frame. */
  refuseRequest (message: string): void {
    if (!this.#admit()) return
    this.#badFrame(undefined, FrameErrorCode.badRequest, message)
  }

  /** The per-connection request rate: false when the request is refused (or the connection is going). */
  #admit (): boolean {
    if (this.#closed || this.#closing) return false
    this.#framesIn++
    const limits = this.#manager.limits
    const now = this.#clock.now()
    this.#requests ??= new TokenBucket(limits.requestsPerSecond, limits.requestBurst, now)
    if (!this.#requests.take(now)) {
      this.#rateLimitedInARow++
      if (this.#rateLimitedInARow > limits.rateLimitedBeforeClose) {
        this.#closeAfterReplies(CloseCode.policy, 'request rate limit exceeded')
        return false
      }
      this.#rejected(FrameErrorCode.rateLimited)
      this.#reply(errorFrame(undefined, FrameErrorCode.rateLimited, 'Too many requests: slow down'))
      return false
    }
    this.#rateLimitedInARow = 0
    return true
  }

  #accept (parsed: ParsedFrame): void {
    if (!parsed.ok) {
      this.#badFrame(parsed.id, parsed.code, parsed.message)
      return
    }
    const frame = parsed.frame
    this.#queue = this.#queue.then(() => this.#handle(frame))
  }

  #badFrame (id: string | undefined, code: FrameErrorCode, message: string): void {
    const limits = this.#manager.limits
    const now = this.#clock.now()
    this.#badFrames ??= new TokenBucket(limits.badFramesPerMinute / 60, limits.badFramesPerMinute, now)
    if (!this.#badFrames.take(now)) {
      this.#closeAfterReplies(CloseCode.policy, 'too many bad frames')
      return
    }
    this.#rejected(code)
    this.#reply(errorFrame(id, code, message))
  }

  /** A client frame answered with an error frame: one warn line and one event, with its code. */
  #rejected (code: FrameErrorCode): void {
    this.#log.warn({ ...this.#ids(), code }, 'frame rejected')
    if (events.frameRejected.hasSubscribers) {
      events.frameRejected.publish({ origin: this.#manager, sessionId: this.id, user: this.user, code })
    }
  }

  /** Closes once every answer owed (replies, rate_limited, bad_request) is written, so the client sees why. */
  #closeAfterReplies (code: number, reason: string): void {
    this.#closing = true
    this.#queue = this.#queue.then(() => this.close(code, reason))
  }

  /** Writes after every earlier request is answered (and after `connected`), so answers keep request order. */
  #reply (frame: string): void {
    this.#queue = this.#queue.then(() => this.#write(frame))
  }

  async #handle (frame: ClientFrame): Promise<void> {
    if (this.#closed) return
    try {
      const result = await this.#dispatch(frame)
      if (result !== undefined) this.#write(replyFrame(frame.id, result))
    } catch (err) {
      const { code, message } = frameErrorOf(err)
      if (code === FrameErrorCode.internal) this.#log.error({ ...this.#ids(), err, frameType: frame.type }, 'request failed')
      this.#rejected(code)
      this.#write(errorFrame(frame.id, code, message))
    }
  }

  async #dispatch (frame: ClientFrame): Promise<Record<string, unknown> | undefined> {
    switch (frame.type) {
      case 'subscribe_category': {
        const categories = this.#manager.categoriesFor(this.user, frame.categories)
        for (const c of categories) this.#wanted?.add(c)
        // A muted category is remembered as wanted and received once unmuted.
        const added = effectiveSubscriptions(categories, this.#muted)
        const own = this.#ownSubscriptions()
        for (const c of added) own.add(c)
        this.#manager.registry.subscribe(this, added)
        return { subscriptions: [...this.subscriptions] }
      }
      case 'unsubscribe_category': {
        for (const c of frame.categories) {
          if (!this.#manager.policy.hasCategory(c)) throw new UnknownCategoryError(c)
        }
        const own = this.#ownSubscriptions()
        for (const c of frame.categories) {
          this.#wanted?.delete(c)
          own.delete(c)
        }
        this.#manager.registry.unsubscribe(this, frame.categories)
        return { subscriptions: [...this.subscriptions] }
      }
      case 'request_notification_history': {
        const page = await this.#manager.history(this.user, {
          ...(frame.limit !== undefined ? { limit: frame.limit } : {}),
          ...(frame.before !== undefined ? { before: frame.before } : {}),
          ...(frame.categories !== undefined ? { categories: frame.categories } : {}),
          unreadOnly: frame.unreadOnly === true
        })
        return { notifications: page.notifications, hasMore: page.hasMore }
      }
      case 'mark_read':
        return { unread: await this.#manager.markRead(this.user, frame, [...this.#muted]) }
      case 'set_preferences': {
        const prefs = await this.#manager.setPreferences(this.user, frame.muted)
        // Applied here at once, so the reply says what this connection now receives; the control message repeats it.
        this.#apply(prefs.muted, false)
        return { muted: prefs.muted, subscriptions: [...this.subscriptions] }
      }
      case 'ping':
        return { time: new Date(this.#clock.now()).toISOString() }
      case 'refresh':
        return this.#refresh(frame.token)
    }
  }

  async #refresh (token: string): Promise<Record<string, unknown> | undefined> {
    if (!this.#verifyToken) throw new BadRequestError('refresh is not available: this server authenticates connections itself')
    let verified
    try {
      verified = await this.#verifyToken(token)
    } catch (err) {
      if (err instanceof TokenError) throw new InvalidTokenError(`refresh rejected: ${err.message}`)
      throw err
    }
    if (verified.user.id !== this.user.id || verified.user.role !== this.user.role) {
      this.#log.warn(this.#ids(), 'refresh with a token for another identity: closing')
      this.close(CloseCode.tokenExpired, 'refresh token is for another user')
      return undefined
    }
    if (await this.#manager.isRevoked(this.user.id, verified.issuedAt)) {
      this.#log.warn(this.#ids(), 'refresh with a revoked token: closing')
      this.close(CloseCode.revoked, REVOKED_REASON)
      return undefined
    }
    this.#expiresAt = verified.expiresAt
    this.#armExpiry()
    return { expiresAt: verified.expiresAt === undefined ? null : new Date(verified.expiresAt).toISOString() }
  }

  // ---- preferences ------------------------------------------------------------------

  /** The user's muted categories changed (on any instance): subscriptions follow, and the client is told. */
  applyMuted (muted: readonly string[]): void {
    this.#apply(muted, true)
  }

  #apply (muted: readonly string[], announce: boolean): void {
    if (this.#closed) return
    const wanted = this.#wanted ?? new Set(this.subscriptions)
    this.#muted = muted.length > 0 ? new Set(muted) : NOTHING_MUTED
    this.#wanted = muted.length > 0 ? wanted : undefined
    const next = new Set(effectiveSubscriptions(wanted, this.#muted))
    const gone = [...this.subscriptions].filter(c => !next.has(c))
    const back = [...next].filter(c => !this.subscriptions.has(c))
    if (gone.length > 0 || back.length > 0) {
      const own = this.#ownSubscriptions()
      for (const c of gone) own.delete(c)
      for (const c of back) own.add(c)
    }
    this.#manager.registry.unsubscribe(this, gone)
    this.#manager.registry.subscribe(this, back)
    // Before `connected`, that frame carries the subscriptions itself.
    if (announce && this.#announced) this.#write(preferencesFrame([...this.#muted], [...this.subscriptions]))
  }

  #armExpiry (): void {
    this.#disarmExpiry()
    if (this.#expiresAt === undefined || this.#closed) return
    if (this.#expiresAt <= this.#clock.now()) {
      this.close(CloseCode.tokenExpired, 'token expired')
      return
    }
    this.#expiryAt = this.#expiresAt
    expiryTimersOf(this.#clock).add(this, this.#expiryAt)
  }

  #disarmExpiry (): void {
    if (this.#expiryAt === undefined) return
    expiryTimersOf(this.#clock).delete(this, this.#expiryAt)
    this.#expiryAt = undefined
  }

  /** The deadline armed by the credentials has come (told by the clock's expiry timers). */
  onExpiry (): void {
    this.#expiryAt = undefined
    this.#armExpiry()
  }

  // ---- liveness ---------------------------------------------------------------------

  /** Called once per heartbeat interval: a peer that missed two pongs in a row is dropped, else pinged. */
  heartbeat (): void {
    if (this.#closed || !this.#socket.ping) return
    if (this.#missedPongs >= 2) {
      this.#log.info(this.#ids(), 'missed two pongs: terminating')
      this.#socket.terminate?.()
      return
    }
    this.#missedPongs++
    this.#socket.ping()
  }

  /** The peer answered a ping. */
  onPong (): void {
    this.#missedPongs = 0
  }

  // ---- end --------------------------------------------------------------------------

  /** Closes the socket (once) and releases everything the session holds. */
  close (code: number, reason: string): void {
    if (this.#closed) return
    this.#closeCode = code
    this.#socket.close(code, reason)
    this.dispose()
    const socket = this.#socket
    if (socket.terminate) {
      this.#closeTimer = this.#clock.setTimeout(() => { this.#closeTimer = undefined; socket.terminate!() }, CLOSE_GRACE_MS)
    }
  }

  /**
   * Releases the session's indexes and timers; called when the socket is gone,
   * with the close code the transport saw (the peer's, 1005 none, 1006 dropped).
   */
  dispose (peerCode?: number): void {
    if (!this.#closed) this.#reportClosed(this.#closeCode ?? peerCode ?? ABNORMAL_CLOSURE)
    this.#closed = true
    this.#pending = undefined
    this.#disarmExpiry()
    // Called again when the socket is really gone: the close grace is over.
    this.#clock.clearTimeout(this.#closeTimer)
    this.#closeTimer = undefined
    this.#manager.registry.remove(this)
  }

  #reportClosed (code: number): void {
    const durationMs = Date.now() - this.openedAt
    if (this.#log.isLevelEnabled?.('info') !== false) this.#log.info({
      ...this.#ids(),
      role: this.user.role,
      instance: this.#manager.instance,
      code,
      durationMs,
      framesIn: this.#framesIn,
      framesOut: this.#framesOut,
      pending: this.#pending?.length ?? 0
    }, 'connection closed')
    if (this.#registered && events.connectionClosed.hasSubscribers) {
      events.connectionClosed.publish({
        origin: this.#manager, sessionId: this.id, user: this.user, code, durationMs, framesIn: this.#framesIn, framesOut: this.#framesOut
      })
    }
  }
}
