// Socket.IO 4: io.emit for broadcasts, io.to(room).emit for one user (each
// user joins room u:<id>). Same control channel as raw-ws.mjs. auth.since
// replays the in-memory log, then emits 'replayed'.
import http from 'node:http'
import { Server } from 'socket.io'
import { exitOnSignals, json, makeNotification, readBody } from './common.mjs'

const log = [] // notification objects; index + 1 = seq

const server = http.createServer(async (req, res) => {
  // Socket.IO attaches its own 'request' listener for /socket.io/; leave those alone.
  if (req.url.startsWith('/socket.io/')) return
  try {
    if (req.method === 'GET' && req.url === '/health') return json(res, 200, { ok: true, clients: io.engine.clientsCount })
    if (req.method === 'POST' && req.url === '/publish') {
      const { messages } = JSON.parse(await readBody(req))
      for (const m of messages) {
        const n = makeNotification(log.length + 1, m.data)
        log.push(n)
        if (m.to !== undefined) io.to('u:' + m.to).emit('notification', n)
        else io.emit('notification', n)
      }
      return json(res, 202, { lastSeq: log.length })
    }
    json(res, 404, { error: 'not found' })
  } catch (err) {
    json(res, 500, { error: String(err) })
  }
})

const io = new Server(server, { transports: ['websocket'], perMessageDeflate: false, serveClient: false })
io.on('connection', (socket) => {
  const { id, since } = socket.handshake.auth ?? {}
  if (id !== undefined) socket.join('u:' + id)
  if (since !== undefined) {
    let count = 0
    for (let i = Number(since); i < log.length; i++) { socket.emit('notification', log[i]); count++ }
    socket.emit('replayed', { count, complete: true })
  }
})

exitOnSignals(() => new Promise(resolve => { io.close(() => resolve()) }))
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: server.address().port }))
})
