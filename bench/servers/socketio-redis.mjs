// Socket.IO 4 with @socket.io/redis-streams-adapter (ioredis): one of several
// instances on one Redis stream (BENCH_SIO_STREAM). io.emit and io.to(room).emit
// reach the sockets of every instance; same control channel as socketio.mjs.
import { Redis } from 'ioredis'
import { Server } from 'socket.io'
import { createAdapter } from '@socket.io/redis-streams-adapter'
import { controlServer, exitOnSignals, listen, makeNotification } from './common.mjs'

const redis = new Redis(process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379')
let seq = 0

const server = controlServer({
  skip: req => req.url.startsWith('/socket.io/'),
  clients: () => io.engine.clientsCount,
  lastSeq: () => seq,
  publish (m) {
    const n = makeNotification(++seq, m.data)
    if (m.to !== undefined) io.to('u:' + m.to).emit('notification', n)
    else io.emit('notification', n)
  }
})

const io = new Server(server, {
  transports: ['websocket'],
  perMessageDeflate: false,
  serveClient: false,
  adapter: createAdapter(redis, { streamName: process.env.BENCH_SIO_STREAM ?? 'socket.io' })
})
io.on('connection', (socket) => {
  const { id } = socket.handshake.auth ?? {}
  if (id !== undefined) socket.join('u:' + id)
})

exitOnSignals(() => new Promise(resolve => { io.close(() => { redis.disconnect(); resolve() }) }))
listen(server)
