// Adapts a `ws` socket to the core's SocketLike, and frames a broadcast once:
// the first recipient builds the WebSocket frame of a shared notification, every
// other recipient writes the same bytes. socket.io does the same through
// engine.io (`wsPreEncodedFrame`); it saves ws re-measuring, re-framing and
// re-encoding the same string for each of N sockets. Frames written to a socket
// in one turn of the event loop leave it in one write.
import WebSocket from 'ws'
import type { SharedFrame } from '../src/protocol.js'
import type { SocketLike } from '../src/session.js'

// ws's Sender is public API at runtime (WebSocket.Sender) but absent from @types/ws.
interface SenderStatic {
  frame (data: Buffer, options: { fin: boolean, rsv1: boolean, opcode: number, mask: boolean, readOnly: boolean }): Buffer[]
}
interface SenderInstance {
  _state: number
  sendFrame (list: Buffer[], cb?: (err?: Error) => void): void
}
const Sender = (WebSocket as unknown as { Sender: SenderStatic }).Sender

interface Corkable { cork (): void, uncork (): void, readonly writableLength: number }

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
const TEXT = 0x1
/** Sender._state when it is not compressing or reading a blob: a frame written now goes out in order. */
const SENDER_IDLE = 0

export class WsTransport implements SocketLike {
  /** While holding: the bytes the socket had queued before (real backlog); -1 when not holding. */
  #backlog = -1
  /** The turn of this socket's last frame. */
  #turn = -1

  constructor (readonly ws: WebSocket) {}

  /** Unsent bytes, not counting frames held for this turn's single write: what the slow-consumer check needs. */
  get bufferedAmount (): number {
    const socket = this.#socket
    const held = this.#backlog < 0 || socket === undefined ? 0 : socket.writableLength - this.#backlog
    return this.ws.bufferedAmount - held
  }

  get #socket (): Corkable | undefined {
    return (this.ws as unknown as { _socket?: Corkable })._socket
  }

  static #endTurn (): void {
    turn++
    turnEnding = false
    for (const transport of holding) transport.#release()
    holding.clear()
  }

  #hold (): void {
    const socket = this.#socket
    if (socket === undefined) return
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
    // pending write, then writes them together: holding adds nothing there, and its larger
    // writes left the process about 80 MB bigger after an overload at 10,000 connections.
    if (socket.writableLength > 0) return
    this.#backlog = 0
    socket.cork()
    holding.add(this)
  }

  #release (): void {
    this.#backlog = -1
    this.#socket?.uncork()
  }

  send (data: string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.#hold()
    this.ws.send(data)
  }

  sendShared (frame: SharedFrame): void {
    const sender = (this.ws as unknown as { _sender?: SenderInstance })._sender
    // Anything unusual (closing, compression negotiated, a write in progress): the ordinary path.
    if (this.ws.readyState !== WebSocket.OPEN || sender === undefined || sender._state !== SENDER_IDLE || this.ws.extensions !== '') {
      this.ws.send(frame.text)
      return
    }
    let wire = frame.wire as Buffer[] | undefined
    if (wire === undefined) {
      wire = Sender.frame(Buffer.from(frame.text), { fin: true, rsv1: false, opcode: TEXT, mask: false, readOnly: false })
      frame.wire = wire
    }
    this.#hold()
    sender.sendFrame(wire)
  }

  close (code: number, reason: string): void {
    this.ws.close(code, reason)
  }

  /** Drops a peer that did not answer the close in time (a slow consumer), freeing its send buffer. */
  terminate (): void {
    this.ws.terminate()
  }
}
