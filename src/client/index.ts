// The client SDK: a typed protocol v1 client that reconnects and resumes from
// the last seq it saw, so a dropped connection loses nothing. Works with the
// browser's WebSocket or with `ws` in Node (pass it as `WebSocket`).
import type {
  ClientNotification, ConnectedFrame, ErrorFrame, LegacyFrame, ReplayedFrame, ServerFrame
} from '../schemas.js'

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
  /** A token, or a function returning a fresh one (called on every connect; refresh() sends a new one on an open connection). */
  token: string | (() => string | Promise<string>)
  /** Initial subscriptions; default: every category the role may see. */
  categories?: string[]
  /** Ask for legacy frames too (during a migration). */
  legacy?: boolean
  /** WebSocket implementation; default globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor
  /** Reconnect automatically (default true), with exponential backoff between these bounds. */
  reconnect?: boolean
  minReconnectDelayMs?: number
  maxReconnectDelayMs?: number
  /** How long a request waits for its reply. */
  requestTimeoutMs?: number
}

export interface ClientEvents {
  connected: ConnectedFrame
  notification: ClientNotification
  replayed: ReplayedFrame
  legacy: LegacyFrame
  /** An error frame that answered no request of ours. */
  error: ErrorFrame
  close: { code: number, reason: string, willReconnect: boolean }
}

export class RequestError extends Error {
  constructor (readonly code: string, message: string) {
    super(message)
  }
}

type Listener<T> = (value: T) => void

// Close codes after which reconnecting cannot help.
const FATAL = new Set([1008, 4008])

export interface NotificationClient {
  on<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): () => void
  subscribe (categories: string[]): Promise<{ subscriptions: string[] }>
  unsubscribe (categories: string[]): Promise<{ subscriptions: string[] }>
  history (opts?: { limit?: number, before?: number, categories?: string[], unreadOnly?: boolean }): Promise<{ notifications: ClientNotification[], hasMore: boolean }>
  markRead (ids: string[] | 'all'): Promise<{ unread: number }>
  ping (): Promise<{ time: string }>
  refresh (token: string): Promise<{ expiresAt: string | null }>
  /** The resume cursor: the highest seq received. */
  readonly lastSeq: number
  close (): void
}

export function createClient (opts: ClientOptions): NotificationClient {
  const WS: WebSocketConstructor | undefined = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
  if (WS === undefined) throw new TypeError('No WebSocket implementation: pass { WebSocket } (e.g. from the ws package)')
  const minDelay = opts.minReconnectDelayMs ?? 500
  const maxDelay = opts.maxReconnectDelayMs ?? 30_000
  const timeoutMs = opts.requestTimeoutMs ?? 10_000
  const listeners = new Map<keyof ClientEvents, Set<Listener<any>>>()
  const pending = new Map<string, { resolve: (v: any) => void, reject: (e: Error) => void, timer: ReturnType<typeof setTimeout> }>()
  let socket: WebSocketLike | undefined
  let lastSeq: number | undefined
  let epoch: string | undefined
  let subscriptions = opts.categories
  let attempt = 0
  let nextId = 0
  let stopped = false
  let reconnectTimer: ReturnType<typeof setTimeout> | undefined
  const queue: string[] = []

  const emit = <K extends keyof ClientEvents>(event: K, value: ClientEvents[K]) => {
    for (const l of listeners.get(event) ?? []) l(value)
  }

  async function connect (): Promise<void> {
    const token = typeof opts.token === 'function' ? await opts.token() : opts.token
    // close() may have been called while the token was being fetched.
    if (stopped) return
    const url = new URL(opts.url)
    url.searchParams.set('token', token)
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
      case 'connected':
        attempt = 0
        // A new log (epoch) invalidates the cursor: start over from what the server says.
        if (epoch !== undefined && epoch !== frame.epoch) lastSeq = undefined
        epoch = frame.epoch
        if (lastSeq === undefined) lastSeq = frame.lastSeq
        subscriptions = frame.subscriptions
        emit('connected', frame)
        for (const q of queue.splice(0)) socket?.send(q)
        return
      case 'notification':
        if (lastSeq !== undefined && frame.notification.seq <= lastSeq) return
        lastSeq = frame.notification.seq
        emit('notification', frame.notification)
        return
      case 'replayed':
        emit('replayed', frame)
        return
      case 'legacy':
        emit('legacy', frame)
        return
      case 'reply':
      case 'error': {
        const p = frame.id !== undefined ? pending.get(frame.id) : undefined
        if (!p) {
          if (frame.type === 'error') emit('error', frame)
          return
        }
        pending.delete(frame.id!)
        clearTimeout(p.timer)
        if (frame.type === 'reply') p.resolve(frame.result)
        else p.reject(new RequestError(frame.code, frame.message))
      }
    }
  }

  function onClose (ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== socket) return
    socket = undefined
    const willReconnect = !stopped && opts.reconnect !== false && !FATAL.has(code)
    emit('close', { code, reason, willReconnect })
    if (!willReconnect) {
      for (const [id, p] of pending) {
        clearTimeout(p.timer)
        p.reject(new RequestError('closed', `connection closed (${code})`))
        pending.delete(id)
      }
      return
    }
    scheduleReconnect()
  }

  function scheduleReconnect (): void {
    // Full jitter, so a restarted server is not hit by every client at once.
    const delay = Math.random() * Math.min(maxDelay, minDelay * 2 ** attempt++)
    reconnectTimer = setTimeout(() => { connect().catch(scheduleReconnect) }, delay)
  }

  function request<T> (frame: Record<string, unknown>): Promise<T> {
    const id = String(++nextId)
    const text = JSON.stringify({ ...frame, id })
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id)
        reject(new RequestError('timeout', `no reply to ${String(frame.type)} within ${timeoutMs} ms`))
      }, timeoutMs)
      pending.set(id, { resolve, reject, timer })
      if (socket !== undefined && socket.readyState === 1) socket.send(text)
      else queue.push(text)
    })
  }

  connect().catch(scheduleReconnect)

  return {
    on (event, listener) {
      let set = listeners.get(event)
      if (!set) listeners.set(event, set = new Set())
      set.add(listener)
      return () => { set!.delete(listener) }
    },
    subscribe: categories => request({ type: 'subscribe_category', categories }),
    unsubscribe: categories => request({ type: 'unsubscribe_category', categories }),
    history: (o = {}) => request({ type: 'request_notification_history', ...o }),
    markRead: ids => request(ids === 'all' ? { type: 'mark_read', all: true } : { type: 'mark_read', ids }),
    ping: () => request({ type: 'ping' }),
    refresh: token => request({ type: 'refresh', token }),
    get lastSeq () { return lastSeq ?? 0 },
    close () {
      stopped = true
      clearTimeout(reconnectTimer)
      socket?.close(1000, 'client closed')
    }
  }
}
