// The client SDK: a typed protocol v1 client that reconnects and resumes from
// the last seq it saw, so a dropped connection loses nothing and repeats
// nothing. It keeps the user's unread count in step with the server, renews
// its token in-band before it expires, and reports its connection status.
// It imports nothing at run time, so the compiled file is the browser module
// served at /client.js; in Node pass `WebSocket` from the `ws` package.
import type {
  ClientNotification, ConnectedFrame, ErrorFrame, LegacyFrame, PreferencesFrame, ReplayedFrame, ServerFrame
} from '../schemas.js'

export type { ClientNotification, ConnectedFrame, ErrorFrame, LegacyFrame, ReplayedFrame, ServerFrame }

/** The part of the WebSocket API the client uses (browser WebSocket and `ws` both have it). */
export interface WebSocketLike {
  readonly readyState: number
  send (data: string): void
  close (code?: number, reason?: string): void
  addEventListener (type: 'open' | 'message' | 'close' | 'error', listener: (ev: any) => void): void
}
export type WebSocketConstructor = new (url: string) => WebSocketLike

export interface ClientOptions {
  /** ws:// or wss:// URL of the /ws route. */
  url: string
  /**
   * A token, or a function returning a fresh one. A function is called on every
   * connect and again before the token's `exp`, and the new token is sent
   * in-band (`refresh`) without reconnecting. A fixed string cannot be renewed:
   * after a 4001 or 4003 close the client stops.
   */
  token: string | (() => string | Promise<string>)
  /** Initial subscriptions; default: every category the role may see. */
  categories?: string[]
  /** Ask for legacy frames too (during a migration). */
  legacy?: boolean
  /** WebSocket implementation; default globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor
  /** Reconnect automatically (default true), with jittered exponential backoff between these bounds. */
  reconnect?: boolean
  minReconnectDelayMs?: number
  maxReconnectDelayMs?: number
  /** How long a request waits for its reply. */
  requestTimeoutMs?: number
  /** How long before the token's `exp` a new one is fetched (at most half its remaining life). Default 30 s. */
  refreshMarginMs?: number
  /** Source of the backoff jitter, in [0, 1). Default Math.random. */
  random?: () => number
}

/** The connection, for a status indicator. */
export type ClientStatus =
  | { state: 'connecting' }
  /** Connected with a cursor: what was missed is being replayed. */
  | { state: 'catching_up' }
  | { state: 'open' }
  | { state: 'reconnecting', delayMs: number, attempt: number }
  | { state: 'closed', code: number, reason: string }

/** The unread count changed; `ids` or `through` say what was marked read, when that is why. */
export interface UnreadChange {
  unread: number
  /** These notifications were marked read (on this or another device). */
  ids?: string[]
  /** Every notification up to this seq was marked read. */
  through?: number
}

export interface ClientEvents {
  connected: ConnectedFrame
  notification: ClientNotification
  replayed: ReplayedFrame
  legacy: LegacyFrame
  /** The user's muted categories changed (on this device or another): this connection's subscriptions now. */
  preferences: PreferencesFrame
  /** An error frame that answered no request of ours. */
  error: ErrorFrame
  close: { code: number, reason: string, willReconnect: boolean }
  status: ClientStatus
  unread: UnreadChange
}

export class RequestError extends Error {
  constructor (readonly code: string, message: string) {
    super(message)
    this.name = 'RequestError'
  }
}

type Listener<T> = (value: T) => void

// Close codes after which reconnecting cannot help.
const FATAL = new Set([1008, 4008])
// Token expired (4001) or access revoked (4003): only a new token helps.
const NEEDS_NEW_TOKEN = new Set([4001, 4003])
// The server caps the unread count at this (docs/protocol.md); the local count stays within it too.
const UNREAD_CAP = 1000
const OPEN = 1

/** The `exp` of a JWT, in epoch ms, read without verifying (the server verifies); undefined when absent or unreadable. */
export function tokenExpiry (token: string): number | undefined {
  const payload = token.split('.')[1]
  if (payload === undefined) return undefined
  try {
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(payload.length / 4) * 4, '=')
    const claims = JSON.parse(atob(base64)) as { exp?: unknown }
    return typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp * 1000 : undefined
  } catch {
    return undefined
  }
}

/** The wait before reconnect attempt `attempt` (0-based): between half and all of min·2^attempt, capped at max. */
export function backoffDelay (attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30))
  // Equal jitter: never hammers a restarted server in step with every other client, never waits longer than the cap.
  return cap / 2 + random() * (cap / 2)
}

export interface HistoryQuery {
  limit?: number
  before?: number
  categories?: string[]
  unreadOnly?: boolean
}

export interface NotificationClient {
  on<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): () => void
  subscribe (categories: string[]): Promise<{ subscriptions: string[] }>
  unsubscribe (categories: string[]): Promise<{ subscriptions: string[] }>
  history (opts?: HistoryQuery): Promise<{ notifications: ClientNotification[], hasMore: boolean }>
  markRead (ids: string[] | 'all'): Promise<{ unread: number }>
  ping (): Promise<{ time: string }>
  refresh (token: string): Promise<{ expiresAt: string | null }>
  /** Mutes these categories (replacing the list) on every device of the user; [] unmutes all. */
  setPreferences (muted: string[]): Promise<{ muted: string[], subscriptions: string[] }>
  /** The resume cursor: the highest seq received. */
  readonly lastSeq: number
  /** The user's unread count, as the server last said plus what arrived since. */
  readonly unread: number
  readonly status: ClientStatus
  /** Closes for good: no reconnect; pending and later requests reject with code 'closed'. */
  close (): void
}

interface Pending {
  resolve: (v: any) => void
  reject: (e: Error) => void
  timer: ReturnType<typeof setTimeout>
  /** Written to a socket (else still queued until the next `connected`). */
  sent: boolean
  text: string
}

export function createClient (opts: ClientOptions): NotificationClient {
  const WS: WebSocketConstructor | undefined = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
  if (WS === undefined) throw new TypeError('No WebSocket implementation: pass { WebSocket } (e.g. from the ws package)')
  const minDelay = opts.minReconnectDelayMs ?? 500
  const maxDelay = opts.maxReconnectDelayMs ?? 30_000
  const timeoutMs = opts.requestTimeoutMs ?? 10_000
  const refreshMargin = opts.refreshMarginMs ?? 30_000
  const random = opts.random ?? Math.random
  const renewable = typeof opts.token === 'function'
  const listeners = new Map<keyof ClientEvents, Set<Listener<any>>>()
  const pending = new Map<string, Pending>()
  let socket: WebSocketLike | undefined
  let lastSeq: number | undefined
  let epoch: string | undefined
  let subscriptions = opts.categories
  let attempt = 0
  let nextId = 0
  let stopped = false
  let reconnectTimer: ReturnType<typeof setTimeout> | undefined
  let refreshTimer: ReturnType<typeof setTimeout> | undefined
  let token: string | undefined
  let status: ClientStatus = { state: 'connecting' }
  let unread = 0
  /** Notifications newer than this were not in the `connected` frame's unread count. */
  let countedThrough = 0
  /** The unread notification counted for each collapse key: a newer one with the key replaces it, it does not add one. */
  const unreadByKey = new Map<string, { id: string, seq: number }>()

  const emit = <K extends keyof ClientEvents>(event: K, value: ClientEvents[K]) => {
    for (const l of listeners.get(event) ?? []) {
      // A listener's bug must not break the connection's bookkeeping.
      try { l(value) } catch (err) { queueMicrotask(() => { throw err }) }
    }
  }
  const setStatus = (s: ClientStatus) => { status = s; emit('status', s) }
  const setUnread = (change: UnreadChange) => {
    unread = Math.min(UNREAD_CAP, change.unread)
    if (change.through !== undefined) {
      for (const [key, n] of unreadByKey) if (n.seq <= change.through) unreadByKey.delete(key)
    }
    if (change.ids !== undefined) {
      const read = new Set(change.ids)
      for (const [key, n] of unreadByKey) if (read.has(n.id)) unreadByKey.delete(key)
    }
    emit('unread', { ...change, unread })
  }

  async function getToken (): Promise<string> {
    return typeof opts.token === 'function' ? await opts.token() : opts.token
  }

  async function connect (): Promise<void> {
    setStatus({ state: 'connecting' })
    const fresh = await getToken()
    // close() may have been called while the token was being fetched.
    if (stopped) return
    token = fresh
    const url = new URL(opts.url)
    url.searchParams.set('token', fresh)
    if (lastSeq !== undefined) url.searchParams.set('since', String(lastSeq))
    if (epoch !== undefined) url.searchParams.set('epoch', epoch)
    if (subscriptions !== undefined && subscriptions.length > 0) url.searchParams.set('categories', subscriptions.join(','))
    if (opts.legacy === true) url.searchParams.set('legacy', '1')
    const ws = new WS!(url.toString())
    socket = ws
    ws.addEventListener('message', (ev: { data: unknown }) => onFrame(String(ev.data)))
    ws.addEventListener('close', (ev: { code: number, reason: string }) => onClose(ws, ev.code, ev.reason))
    ws.addEventListener('error', () => { /* a close event follows */ })
  }

  function onFrame (text: string): void {
    let frame: ServerFrame
    try {
      frame = JSON.parse(text) as ServerFrame
    } catch {
      return
    }
    switch (frame.type) {
      case 'connected': {
        attempt = 0
        const resuming = lastSeq !== undefined && epoch === frame.epoch
        // A new log (epoch) invalidates the cursor: start over from what the server says.
        if (epoch !== undefined && epoch !== frame.epoch) lastSeq = undefined
        epoch = frame.epoch
        if (lastSeq === undefined) lastSeq = frame.lastSeq
        subscriptions = frame.subscriptions
        // The count covers the log up to lastSeq, replayed notifications included.
        countedThrough = frame.lastSeq
        unreadByKey.clear()
        setUnread({ unread: frame.unread })
        setStatus({ state: resuming ? 'catching_up' : 'open' })
        emit('connected', frame)
        for (const p of pending.values()) {
          if (p.sent) continue
          p.sent = true
          socket?.send(p.text)
        }
        scheduleRefresh()
        return
      }
      case 'notification': {
        const n = frame.notification
        if (lastSeq !== undefined && n.seq <= lastSeq) return
        lastSeq = n.seq
        if (!n.read && n.seq > countedThrough) countNew(n)
        emit('notification', n)
        return
      }
      case 'replayed':
        if (status.state === 'catching_up') setStatus({ state: 'open' })
        emit('replayed', frame)
        return
      case 'legacy':
        emit('legacy', frame)
        return
      case 'unread':
        setUnread({
          unread: frame.unread,
          ...(frame.ids !== undefined ? { ids: frame.ids } : {}),
          ...(frame.through !== undefined ? { through: frame.through } : {})
        })
        return
      case 'preferences':
        // Not remembered as the subscriptions to ask for on reconnect: the server leaves muted ones out itself.
        emit('preferences', frame)
        return
      case 'reply':
      case 'error': {
        const p = frame.id !== undefined ? pending.get(frame.id) : undefined
        if (!p) {
          if (frame.type === 'error') emit('error', frame)
          return
        }
        settle(frame.id!)
        if (frame.type === 'reply') p.resolve(frame.result)
        else p.reject(new RequestError(frame.code, frame.message))
      }
    }
  }

  function countNew (n: ClientNotification): void {
    if (n.collapseKey !== undefined) {
      const replaced = unreadByKey.has(n.collapseKey)
      unreadByKey.set(n.collapseKey, { id: n.id, seq: n.seq })
      // The server keeps only the newest of a collapse key: its count did not grow.
      if (replaced) return
    }
    setUnread({ unread: unread + 1 })
  }

  function rememberCollapsed (notifications: readonly ClientNotification[]): void {
    for (const n of notifications) {
      if (n.collapseKey !== undefined && !n.read && !unreadByKey.has(n.collapseKey)) unreadByKey.set(n.collapseKey, { id: n.id, seq: n.seq })
    }
  }

  function settle (id: string): void {
    const p = pending.get(id)
    if (!p) return
    clearTimeout(p.timer)
    pending.delete(id)
  }

  function rejectPending (which: (p: Pending) => boolean, code: string, message: string): void {
    for (const [id, p] of pending) {
      if (!which(p)) continue
      settle(id)
      p.reject(new RequestError(code, message))
    }
  }

  function scheduleRefresh (): void {
    clearTimeout(refreshTimer)
    refreshTimer = undefined
    if (!renewable || stopped || token === undefined) return
    const exp = tokenExpiry(token)
    if (exp === undefined) return
    const left = exp - Date.now()
    const wait = Math.max(0, left - Math.min(refreshMargin, left / 2))
    refreshTimer = setTimeout(() => { void renew(socket) }, wait)
  }

  /** Fetches a new token and hands it to the open connection; on failure the server's 4001 at `exp` leads to a reconnect. */
  async function renew (on: WebSocketLike | undefined): Promise<void> {
    let fresh: string
    try {
      fresh = await getToken()
      if (stopped || on === undefined || on !== socket) return
      await request<{ expiresAt: string | null }>({ type: 'refresh', token: fresh })
    } catch {
      // Try once more halfway to the expiry, if there is time; else the 4001 close reconnects with a new token.
      const exp = token === undefined ? undefined : tokenExpiry(token)
      const left = exp === undefined ? 0 : exp - Date.now()
      if (!stopped && on === socket && left > 2000) refreshTimer = setTimeout(() => { void renew(socket) }, left / 2)
      return
    }
    token = fresh
    scheduleRefresh()
  }

  function onClose (ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== socket) return
    socket = undefined
    clearTimeout(refreshTimer)
    refreshTimer = undefined
    const willReconnect = !stopped && opts.reconnect !== false && !FATAL.has(code) && (renewable || !NEEDS_NEW_TOKEN.has(code))
    // Requests written to this socket will get no answer; queued ones wait for the next connection.
    rejectPending(p => p.sent || !willReconnect, 'closed', `connection closed (${code})`)
    emit('close', { code, reason, willReconnect })
    if (!willReconnect) {
      stopped = true
      setStatus({ state: 'closed', code, reason })
      return
    }
    scheduleReconnect()
  }

  function scheduleReconnect (): void {
    if (stopped) return
    const delayMs = backoffDelay(attempt, minDelay, maxDelay, random)
    attempt++
    setStatus({ state: 'reconnecting', delayMs, attempt })
    reconnectTimer = setTimeout(() => { connect().catch(scheduleReconnect) }, delayMs)
  }

  function request<T> (frame: Record<string, unknown>): Promise<T> {
    if (stopped) return Promise.reject(new RequestError('closed', 'the client is closed'))
    const id = String(++nextId)
    const text = JSON.stringify({ ...frame, id })
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id)
        reject(new RequestError('timeout', `no reply to ${String(frame.type)} within ${timeoutMs} ms`))
      }, timeoutMs)
      const open = socket !== undefined && socket.readyState === OPEN && status.state !== 'connecting'
      pending.set(id, { resolve, reject, timer, sent: open, text })
      if (open) socket!.send(text)
    })
  }

  /** A reconnect asks for the subscriptions the last reply named, not those of the first connect. */
  async function track (reply: Promise<{ subscriptions: string[] }>): Promise<{ subscriptions: string[] }> {
    const result = await reply
    subscriptions = result.subscriptions
    return result
  }

  connect().catch(scheduleReconnect)

  return {
    on (event, listener) {
      let set = listeners.get(event)
      if (!set) listeners.set(event, set = new Set())
      set.add(listener)
      return () => { set!.delete(listener) }
    },
    subscribe: categories => track(request({ type: 'subscribe_category', categories })),
    unsubscribe: categories => track(request({ type: 'unsubscribe_category', categories })),
    history: async (o = {}) => {
      const page = await request<{ notifications: ClientNotification[], hasMore: boolean }>({ type: 'request_notification_history', ...o })
      rememberCollapsed(page.notifications)
      return page
    },
    markRead: async ids => {
      const result = await request<{ unread: number }>(ids === 'all' ? { type: 'mark_read', all: true } : { type: 'mark_read', ids })
      // The unread frame brings the same count; the reply is enough should it not come (another instance's broker down).
      setUnread({ unread: result.unread, ...(ids === 'all' ? { through: lastSeq ?? 0 } : { ids }) })
      return result
    },
    ping: () => request({ type: 'ping' }),
    refresh: token => request({ type: 'refresh', token }),
    setPreferences: muted => request({ type: 'set_preferences', muted }),
    get lastSeq () { return lastSeq ?? 0 },
    get unread () { return unread },
    get status () { return status },
    close () {
      if (stopped) return
      stopped = true
      clearTimeout(reconnectTimer)
      clearTimeout(refreshTimer)
      rejectPending(() => true, 'closed', 'the client is closed')
      if (socket !== undefined) {
        socket.close(1000, 'client closed')
      } else {
        setStatus({ state: 'closed', code: 1000, reason: 'client closed' })
      }
    }
  }
}
