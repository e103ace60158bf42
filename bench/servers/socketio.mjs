// Socket.IO 4: io.emit for broadcasts, io.to(room).emit for one user (each
// user joins room u:<id>). Same control channel as raw-ws.mjs. auth.since
// replays the in-memory log, then emits 'replayed'.
import { Server } from 'socket.io'
import { controlServer, exitOnSignals, listen, makeNotification } from './common.mjs'

const log = [] // notification objects; index + 1 = seq

const server = controlServer({
  // Socket.IO attaches its own 'request' listener for /socket.io/; leave those alone.
  skip: req => req.url.startsWith('/socket.io/'),
  clients: () => io.engine.clientsCount,
  lastSeq: () => log.length,
  publish (m) {
    const n = makeNotification(log.length + 1, m.data)
    log.push(n)
    if (m.to !== undefined) io.to('u:' + m.to).emit('notification', n)
    else io.emit('notification', n)
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
listen(server)
