// Test helpers for the Socket.IO endpoint: an unmodified socket.io-client 4
// whose events are buffered from the first one, so none is missed between awaits.
import type { Test } from 'tap'
import { io as ioClient, type Socket as ClientSocket } from 'socket.io-client'
import type { ServerConfig } from '../server/index.js'
import { build, within, type Harness } from './helper.js'

export type Payload = Record<string, any>

export interface SioClient {
  socket: ClientSocket
  /** The engine.io transport the connection started on. */
  firstTransport: string
  /** Resolves when engine.io has upgraded the connection (at once if it started on websocket). */
  upgraded: Promise<void>
  /** The next event of this name not yet taken (events are buffered from the start), waiting up to `ms`. */
  next (event: string, ms?: number): Promise<Payload>
  /** The next event whatever its name. */
  nextEvent (ms?: number): Promise<{ event: string, payload: Payload }>
  /** Emits a client event with an ack and resolves with the answer. */
  ask (event: string, payload?: unknown, ms?: number): Promise<Payload>
  close (): void
}

export interface SioOptions {
  auth?: Record<string, unknown>
  query?: Record<string, string>
  /** Default: socket.io-client's own (polling first, then the upgrade). */
  transports?: Array<'polling' | 'websocket'>
  path?: string
}

export async function buildSio (t: Test, overrides: Partial<ServerConfig> = {}): Promise<Harness> {
  return build(t, { socketio: true, ...overrides })
}

/** Opens a Socket.IO client without reconnection; resolves once connected (its `connected` event is then buffered). */
export async function sio (h: Harness, opts: SioOptions = {}): Promise<SioClient> {
  const socket = ioClient(h.http, {
    path: opts.path ?? '/socket.io/',
    ...(opts.auth ? { auth: opts.auth } : {}),
    ...(opts.query ? { query: opts.query } : {}),
    ...(opts.transports ? { transports: opts.transports } : {}),
    reconnection: false,
    forceNew: true
  })
  const engine = socket.io.engine
  const firstTransport = engine.transport.name
  const upgraded = firstTransport === 'websocket' ? Promise.resolve() : new Promise<void>(resolve => engine.once('upgrade', () => resolve()))
  const events: Array<{ event: string, payload: Payload }> = []
  const waiters: Array<() => void> = []
  const wake = () => { for (const w of waiters.splice(0)) w() }
  socket.onAny((event: string, payload: Payload) => { events.push({ event, payload }); wake() })
  socket.on('disconnect', (reason) => { events.push({ event: 'disconnect', payload: { reason } }); wake() })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve())
    socket.once('connect_error', (err) => { socket.close(); reject(err) })
  })
  const take = async (match: (e: { event: string }) => boolean, what: string, ms: number): Promise<{ event: string, payload: Payload }> => {
    const deadline = Date.now() + ms
    for (;;) {
      const i = events.findIndex(match)
      if (i >= 0) return events.splice(0, i + 1).at(-1)!
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for ${what} (pending: ${JSON.stringify(events).slice(0, 500)})`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, left)
        waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }
  const next = async (event: string, ms = 3000): Promise<Payload> => (await take(e => e.event === event, `'${event}'`, ms)).payload
  return {
    socket,
    firstTransport,
    upgraded,
    next,
    nextEvent: (ms = 3000) => take(() => true, 'an event', ms),
    ask: (event, payload, ms = 3000) => within(
      payload === undefined ? socket.emitWithAck(event) : socket.emitWithAck(event, payload),
      ms, `the ack of '${event}'`
    ) as Promise<Payload>,
    close: () => { socket.close() }
  }
}

/** A handshake the server should refuse: resolves with the connect_error. */
export async function refused (h: Harness, opts: SioOptions = {}): Promise<Error & { data?: Payload }> {
  const socket = ioClient(h.http, { path: '/socket.io/', ...(opts.auth ? { auth: opts.auth } : {}), ...(opts.query ? { query: opts.query } : {}), transports: opts.transports ?? ['websocket'], reconnection: false, forceNew: true })
  try {
    return await within(new Promise<Error & { data?: Payload }>((resolve, reject) => {
      socket.once('connect', () => reject(new Error('connected: the handshake was not refused')))
      socket.once('connect_error', resolve)
    }), 3000, 'connect_error')
  } finally {
    socket.close()
  }
}
