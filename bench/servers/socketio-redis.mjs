// Socket.IO 4 with @socket.io/redis-streams-adapter (ioredis): one of several
// instances on one Redis stream (BENCH_SIO_STREAM). io.emit and io.to(room).emit
// reach the sockets of every instance; same control channel as socketio.mjs.
import http from 'node:http'
import { Redis } from 'ioredis'
import { Server } from 'socket.io'
import { createAdapter } from '@socket.io/redis-streams-adapter'
import { exitOnSignals, json, makeNotification, readBody } from './common.mjs'

const redis = new Redis(process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379')
let seq = 0

const server = http.createServer(async (req, res) => {
  if (req.url.startsWith('/socket.io/')) return
  try {
    if (req.method === 'GET' && req.url === '/health') return json(res, 200, { ok: true, clients: io.engine.clientsCount })
    if (req.method === 'POST' && req.url === '/publish') {
      const { messages } = JSON.parse(await readBody(req))
      for (const m of messages) {
        const n = makeNotification(++seq, m.data)
        if (m.to !== undefined) io.to('u:' + m.to).emit('notification', n)
        else io.emit('notification', n)
      }
      return json(res, 202, { lastSeq: seq })
    }
    json(res, 404, { error: 'not found' })
  } catch (err) {
    json(res, 500, { error: String(err) })
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
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: server.address().port }))
})
