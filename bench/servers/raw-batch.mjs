// The real ceiling: a bare `ws` server that does on the wire what ours does
// (plugins/ws-transport.ts), and nothing else. Each notification is serialised
// once and its WebSocket frame built once; the same bytes go to every
// recipient. A socket's frames of one turn of the event loop are written
// together: the first at once, the rest held with the socket corked and
// released in a microtask (written out early past 64 KiB). No store, no auth.
// Same control API as raw-ws.mjs: POST /publish {messages:[{data, to?}]},
// GET /health, ?id=<user> names a client, ?since=<seq> replays the in-memory
// log, then {"type":"replayed"}.
import { Sender, WebSocket, WebSocketServer } from 'ws'
import { controlServer, exitOnSignals, listen, makeNotification } from './common.mjs'

/** As ours (COALESCE_BYTES): a socket holding this much is written out, so holding never delays much data. */
const COALESCE_BYTES = 64 * 1024

const log = [] // frame bytes; index + 1 = seq
const byId = new Map() // id → Peer

/** One unmasked text frame, header and payload in one Buffer: built once, written to many sockets. */
function frameOf (text) {
  return Buffer.concat(Sender.frame(Buffer.from(text), { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false }))
}

let turn = 0
let turnEnding = false
const holding = new Set()

function endTurn () {
  turn++
  turnEnding = false
  for (const peer of holding) { peer.held = -1; peer.socket.uncork() }
  holding.clear()
}

class Peer {
  constructor (ws, socket) {
    this.ws = ws
    this.socket = socket // the upgrade request's TCP socket
    this.turn = -1 // the turn of this socket's last frame
    this.held = -1 // bytes queued before holding began; -1 when not holding
  }

  write (frame) {
    if (this.ws.readyState !== WebSocket.OPEN) return
    const socket = this.socket
    if (this.turn !== turn) {
      // This socket's first frame of the turn: written now.
      this.turn = turn
      if (!turnEnding) { turnEnding = true; queueMicrotask(endTurn) }
    } else if (this.held >= 0) {
      if (socket.writableLength - this.held >= COALESCE_BYTES) { socket.uncork(); this.held = socket.writableLength; socket.cork() }
    } else if (socket.writableLength === 0) {
      // (A socket with a write pending gathers the next ones by itself.)
      this.held = 0
      socket.cork()
      holding.add(this)
    }
    socket.write(frame)
  }
}

const peers = new Set()

const server = controlServer({
  clients: () => peers.size,
  lastSeq: () => log.length,
  publish (m) {
    const frame = frameOf(JSON.stringify({ type: 'notification', notification: makeNotification(log.length + 1, m.data) }))
    log.push(frame)
    if (m.to !== undefined) byId.get(m.to)?.write(frame)
    else for (const peer of peers) peer.write(frame)
  }
})

const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024 })
wss.on('connection', (ws, req) => {
  const peer = new Peer(ws, req.socket)
  peers.add(peer)
  const q = new URL(req.url, 'http://x').searchParams
  const id = q.get('id')
  if (id !== null) byId.set(id, peer)
  ws.on('close', () => {
    peers.delete(peer)
    if (id !== null && byId.get(id) === peer) byId.delete(id)
  })
  ws.on('error', () => {})
  const since = q.get('since')
  if (since !== null) {
    let count = 0
    for (let i = Number(since); i < log.length; i++) { peer.write(log[i]); count++ }
    peer.write(frameOf(JSON.stringify({ type: 'replayed', count, complete: true })))
  }
})

exitOnSignals(() => new Promise(resolve => { for (const ws of wss.clients) ws.terminate(); server.close(resolve) }))
listen(server)
