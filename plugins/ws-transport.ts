// Adapts a `ws` socket to the core's SocketLike, and frames a broadcast once:
// the first recipient builds the WebSocket frame of a shared notification, every
// other recipient writes the same bytes (as engine.io's `wsPreEncodedFrame`).
// Frames written to a socket in one turn of the event loop leave it in one write.
import type { Socket } from 'node:net'
import WebSocket from 'ws'
import type { SharedFrame } from '../src/protocol.js'
import type { SocketLike } from '../src/session.js'
import { senderIdle } from './ws-internals.js'

/**
 * Frames written to one socket in one turn of the event loop (a broker queue of
 * many notifications, a replay page) leave in at most two writes: the first goes
 * out at once (a lone notification is not delayed behind the others of its
 * turn), the following ones are held with the socket corked and written once
 * the turn's synchronous work is done (a microtask).
 */
const holding = new Set<WsTransport>()
/** Counts turns that wrote frames: a transport whose last write was in this one holds the next. */
let turn = 0
let turnEnding = false
/**
 * A socket holding this much is written out at once and the rest of the turn
 * held anew, so holding never delays much data.
 */
export const COALESCE_BYTES = 64 * 1024

/**
 * One unmasked, uncompressed WebSocket text frame (RFC 6455 5.2) in one
 * buffer: a single write per socket, where header and payload apart make a
 * writev (its chunk array and request) for every recipient.
 */
export function textFrameBuffer (text: string): Buffer {
  const length = Buffer.byteLength(text)
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10
  const buf = Buffer.allocUnsafe(header + length)
  buf[0] = 0x81 // FIN, text
  if (header === 2) {
    buf[1] = length
  } else if (header === 4) {
    buf[1] = 126
    buf.writeUInt16BE(length, 2)
  } else {
    buf[1] = 127
    buf.writeBigUInt64BE(BigInt(length), 2)
  }
  buf.write(text, header, 'utf8')
  return buf
}

export class WsTransport implements SocketLike {
  /** While holding: the bytes the socket had queued before (real backlog); -1 when not holding. */
  #backlog = -1
  /** The turn of this socket's last frame. */
  #turn = -1

  /**
   * No extension (compression) negotiated: frames may be written to the socket as they are.
   * Read once: the handshake fixed it, and ws builds the string anew on every read.
   */
  readonly #plain: boolean

  /** `socket` is the TCP socket `ws` was upgraded on (the upgrade request's socket). */
  constructor (readonly ws: WebSocket, readonly socket: Socket) {
    this.#plain = ws.extensions === ''
  }

  /** Unsent bytes, not counting frames held for this turn's single write: what the slow-consumer check needs. */
  get bufferedAmount (): number {
    const held = this.#backlog < 0 ? 0 : this.socket.writableLength - this.#backlog
    return this.ws.bufferedAmount - held
  }

  static #endTurn (): void {
    turn++
    turnEnding = false
    for (const transport of holding) transport.#release()
    holding.clear()
  }

  #hold (): void {
    const socket = this.socket
    if (this.#turn !== turn) {
      // This socket's first frame of the turn: written now.
      this.#turn = turn
      if (!turnEnding) {
        turnEnding = true
        queueMicrotask(WsTransport.#endTurn)
      }
      return
    }
    if (this.#backlog >= 0) {
      if (socket.writableLength - this.#backlog >= COALESCE_BYTES) {
        socket.uncork()
        this.#backlog = socket.writableLength
        socket.cork()
      }
      return
    }
    // A socket with writes still pending already gathers new ones until the kernel takes the
    // pending write, then writes them together: holding adds nothing there, and costs memory.
    if (socket.writableLength > 0) return
    this.#backlog = 0
    socket.cork()
    holding.add(this)
  }

  #release (): void {
    this.#backlog = -1
    this.socket.uncork()
  }

  send (data: string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.#hold()
    this.ws.send(data)
  }

  sendShared (frame: SharedFrame): void {
    // Anything unusual (closing, compression negotiated, ws holding frames back): the ordinary path.
    if (this.ws.readyState !== WebSocket.OPEN || !this.#plain || !senderIdle(this.ws)) {
      this.ws.send(frame.text)
      return
    }
    let wire = frame.wire as Buffer | undefined
    if (wire === undefined) {
      wire = textFrameBuffer(frame.text)
      frame.wire = wire
    }
    this.#hold()
    this.socket.write(wire)
  }

  close (code: number, reason: string): void {
    this.ws.close(code, reason)
  }

  /** Drops a peer that did not answer the close in time (a slow consumer), freeing its send buffer. */
  terminate (): void {
    this.ws.terminate()
  }

  ping (): void {
    this.ws.ping()
  }
}
