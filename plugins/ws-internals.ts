// The one place that relies on what `ws` (8.x) does not type or document;
// test/ws-internals.test.ts fails loudly when a ws upgrade changes any of it.
import type WebSocket from 'ws'
import * as wsModule from 'ws'

interface SenderStatic {
  frame (data: Buffer, options: { fin: boolean, rsv1: boolean, opcode: number, mask: boolean, readOnly: boolean }): Buffer[]
}
// Exported by ws's ES module (ws's own API) but absent from @types/ws. Not WebSocket.Sender: only
// ws's CommonJS entry sets that, so it is missing until some other module has require()d 'ws'.
const Sender = (wsModule as unknown as { Sender: SenderStatic }).Sender
const TEXT = 0x1

/** The bytes of one unmasked, uncompressed text frame, as ws would write them: built once, written to many sockets. */
export function textFrame (text: string): Buffer[] {
  return Sender.frame(Buffer.from(text), { fin: true, rsv1: false, opcode: TEXT, mask: false, readOnly: false })
}

/** Sender's `_state` when it holds nothing back (not compressing, not reading a Blob). */
export const SENDER_IDLE = 0

/**
 * Whether bytes written to the socket now go out after every frame ws has
 * accepted: private (`_sender._state`), since no public API says whether ws is
 * still holding frames back (compressing, reading a Blob).
 */
export function senderIdle (ws: WebSocket): boolean {
  const sender = (ws as unknown as { _sender?: { _state?: unknown } })._sender
  return sender !== undefined && sender._state === SENDER_IDLE
}
