// Adapts a Socket.IO socket to the core's SocketLike: server frames become
// events of the same name carrying the frame object, replies and errors answer
// the client's ack, and a broadcast notification is encoded once for every
// Socket.IO recipient (as socket.io's own broadcast does).
import type { Socket } from 'socket.io'
import { CloseCode } from '../src/errors.js'
import type { SharedFrame } from '../src/protocol.js'
import type { Session, SocketLike } from '../src/session.js'
import { textFrame } from './ws-internals.js'

type Ack = (answer: unknown) => void

/** A shared frame as Socket.IO sends it: the packet, and lazily that packet's WebSocket frame. */
interface Encoded {
  packet: string
  wsFrame?: Buffer[]
}

/** The little of an engine.io packet and transport that buffering needs. */
interface EnginePacket { data?: string | Buffer }
interface EngineTransport { name: string, socket?: { bufferedAmount?: number, terminate? (): void } }

/** Closes after which socket.io-client should reconnect by itself (it does after a transport close, not after a server disconnect). */
const RECONNECTABLE = new Set<number>([CloseCode.goingAway, CloseCode.internal, CloseCode.slowConsumer])

/** The event name a serialised server frame is sent as: frames start with {"type":"…". */
const TYPE_PREFIX = /^\{"type":"([a-z_]+)"/

/**
 * Counts turns of the event loop that wrote packets. engine.io holds a turn's
 * packets in its writeBuffer until the WebSocket has taken the previous ones
 * (a poll phase later): bytes written in this turn are no backlog yet, as
 * WsTransport does not count the frames it holds for one write.
 */
let turn = 0
let turnEnding = false
function endTurn (): void {
  turn++
  turnEnding = false
}

function packetSize (p: EnginePacket): number {
  return p.data === undefined ? 0 : typeof p.data === 'string' ? p.data.length : p.data.byteLength
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value) && !(value instanceof ArrayBuffer)
}

export class SocketIoTransport implements SocketLike {
  /** Requests in arrival order; the session answers them in that order, at most once each. */
  readonly #pending: Array<{ id: string, ack: Ack | undefined }> = []
  #nextId = 0
  /** Bytes in engine.io's writeBuffer (packets created and not yet handed to the transport). */
  #queued = 0
  /** Bytes of packets created in turn `#turn`. */
  #turnBytes = 0
  #turn = -1

  constructor (readonly socket: Socket) {
    const conn = socket.conn
    conn.on('packetCreate', (p: EnginePacket) => {
      const size = packetSize(p)
      this.#queued += size
      if (this.#turn !== turn) {
        this.#turn = turn
        this.#turnBytes = 0
        if (!turnEnding) {
          turnEnding = true
          setImmediate(endTurn)
        }
      }
      this.#turnBytes += size
    })
    conn.on('flush', (buffer: EnginePacket[]) => { for (const p of buffer) this.#queued -= packetSize(p) })
  }

  /** Feeds the client's events to the session, as requests with the ack as the answer's destination. */
  bind (session: Session): void {
    this.socket.onAny((event: unknown, ...args: unknown[]) => {
      const ack = typeof args.at(-1) === 'function' ? args.pop() as Ack : undefined
      const type = String(event).slice(0, 64)
      const id = String(++this.#nextId)
      this.#pending.push({ id, ack })
      if (ack === undefined) {
        session.refuseRequest(`'${type}' needs an acknowledgement callback: emit('${type}', payload, answer => …)`)
      } else if (args.length > 1 || (args.length === 1 && !isPlainObject(args[0]))) {
        session.refuseRequest(`'${type}' takes one payload object (or none) before the acknowledgement callback`)
      } else {
        session.onRequest({ ...(args[0] as Record<string, unknown> | undefined), type, id })
      }
    })
  }

  /** Unsent bytes: engine.io's writeBuffer from earlier turns plus what the WebSocket (after the upgrade) still holds. */
  get bufferedAmount (): number {
    const transport = this.socket.conn.transport as unknown as EngineTransport
    const fresh = this.#turn === turn ? this.#turnBytes : 0
    return Math.max(0, this.#queued - fresh) + (transport.socket?.bufferedAmount ?? 0)
  }

  send (data: string): void {
    const frame = JSON.parse(data) as { type: string, id?: string, result?: unknown, code?: string, message?: string }
    if (frame.type === 'reply') {
      this.#take(frame.id)?.ack?.(frame.result)
    } else if (frame.type === 'error') {
      const request = this.#take(frame.id)
      if (request?.ack) request.ack({ error: { code: frame.code, message: frame.message } })
      else this.socket.emit('error', { type: 'error', code: frame.code, message: frame.message })
    } else {
      this.socket.emit(frame.type, frame)
    }
  }

  /** The request an answer belongs to: its id, or the oldest one for an answer without id (rate_limited). */
  #take (id: string | undefined): { id: string, ack: Ack | undefined } | undefined {
    const at = id === undefined ? 0 : this.#pending.findIndex(r => r.id === id)
    if (at < 0) return undefined
    // Requests before it got no answer (a refresh that closed the connection): they never will.
    return this.#pending.splice(0, at + 1)[at]
  }

  sendShared (frame: SharedFrame): void {
    const conn = this.socket.conn
    if (conn.readyState !== 'open') return
    let encoded = frame.packet as Encoded | undefined
    if (encoded === undefined) {
      const type = TYPE_PREFIX.exec(frame.text)?.[1] ?? (JSON.parse(frame.text) as { type: string }).type
      // A Socket.IO EVENT packet of the main namespace: 2["<event>",<frame object>].
      encoded = { packet: `2[${JSON.stringify(type)},${frame.text}]` }
      frame.packet = encoded
    }
    if ((conn.transport as unknown as EngineTransport).name === 'websocket') {
      // "4" is engine.io's message packet type; the frame is built once, as socket.io's adapter does.
      encoded.wsFrame ??= textFrame('4' + encoded.packet)
      conn.write(encoded.packet, { wsPreEncodedFrame: encoded.wsFrame } as { compress?: boolean })
    } else {
      conn.write(encoded.packet)
    }
  }

  /**
   * An `error` event saying why, then the end: a transport close where the
   * client should come back by itself (shutdown, slow consumer), a server
   * disconnect (no automatic reconnection) where it should not (token expired, policy).
   */
  close (code: number, reason: string): void {
    if (!this.socket.connected) return
    this.socket.emit('error', { type: 'error', code: 'closed', close: code, message: reason })
    if (RECONNECTABLE.has(code)) this.socket.conn.close()
    else this.socket.disconnect(true)
  }

  /** Drops a peer that did not take its last packets in time, discarding what it still buffers. */
  terminate (): void {
    const transport = this.socket.conn.transport as unknown as EngineTransport
    if (transport.socket?.terminate) transport.socket.terminate()
    else this.socket.conn.close(true)
  }
}
