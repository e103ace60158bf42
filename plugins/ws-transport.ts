// Adapts a `ws` socket to the core's SocketLike, and frames a broadcast once:
// the first recipient builds the WebSocket frame of a shared notification, every
// other recipient writes the same bytes. socket.io does the same through
// engine.io (`wsPreEncodedFrame`); it saves ws re-measuring, re-framing and
// re-encoding the same string for each of N sockets.
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
const TEXT = 0x1
/** Sender._state when it is not compressing or reading a blob: a frame written now goes out in order. */
const SENDER_IDLE = 0

export class WsTransport implements SocketLike {
  constructor (readonly ws: WebSocket) {}

  get bufferedAmount (): number {
    return this.ws.bufferedAmount
  }

  send (data: string): void {
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
    sender.sendFrame(wire)
  }

  batch (writes: () => void): void {
    // ws corks each frame itself; an outer cork holds them all until the last one.
    const socket = (this.ws as unknown as { _socket?: { cork (): void, uncork (): void } })._socket
    socket?.cork()
    try {
      writes()
    } finally {
      socket?.uncork()
    }
  }

  close (code: number, reason: string): void {
    this.ws.close(code, reason)
  }

  /** Drops a peer that did not answer the close in time (a slow consumer), freeing its send buffer. */
  terminate (): void {
    this.ws.terminate()
  }
}
