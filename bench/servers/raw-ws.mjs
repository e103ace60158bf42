// The ceiling: a bare `ws` server that loops over its clients and sends one
// pre-serialised string. Control (bench only): POST /publish
// {messages:[{data, to?}]}, GET /health. ?id=<user> names a client (targeted
// sends), ?since=<seq> replays the in-memory log, then {"type":"replayed"}.
import { WebSocketServer } from 'ws'
import { controlServer, exitOnSignals, listen, makeNotification } from './common.mjs'

const log = [] // pre-serialised frames; index + 1 = seq
const byId = new Map()

const server = controlServer({
  clients: () => wss.clients.size,
  lastSeq: () => log.length,
  publish (m) {
    const frame = JSON.stringify({ type: 'notification', notification: makeNotification(log.length + 1, m.data) })
    log.push(frame)
    if (m.to !== undefined) byId.get(m.to)?.send(frame)
    else for (const ws of wss.clients) ws.send(frame)
  }
})

const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024 })
wss.on('connection', (ws, req) => {
  const q = new URL(req.url, 'http://x').searchParams
  const id = q.get('id')
  if (id !== null) {
    byId.set(id, ws)
    ws.on('close', () => { if (byId.get(id) === ws) byId.delete(id) })
  }
  ws.on('error', () => {})
  const since = q.get('since')
  if (since !== null) {
    let count = 0
    for (let i = Number(since); i < log.length; i++) { ws.send(log[i]); count++ }
    ws.send(JSON.stringify({ type: 'replayed', count, complete: true }))
  }
})

exitOnSignals(() => new Promise(resolve => { for (const ws of wss.clients) ws.terminate(); server.close(resolve) }))
listen(server)
