// Fastify 5 + @fastify/websocket and nothing else: the framework's share of
// the cost, between raw ws and ours. Same control channel as raw-ws.mjs.
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { exitOnSignals, makeNotification } from './common.mjs'

const log = []
const byId = new Map()
const app = Fastify({ logger: false })
await app.register(websocket, { options: { perMessageDeflate: false, maxPayload: 64 * 1024 } })

app.get('/health', async () => ({ ok: true, clients: app.websocketServer.clients.size }))
app.post('/publish', async (request, reply) => {
  for (const m of request.body.messages) {
    const frame = JSON.stringify({ type: 'notification', notification: makeNotification(log.length + 1, m.data) })
    log.push(frame)
    if (m.to !== undefined) byId.get(m.to)?.send(frame)
    else for (const ws of app.websocketServer.clients) ws.send(frame)
  }
  return reply.code(202).send({ lastSeq: log.length })
})
app.get('/', { websocket: true }, (socket, request) => {
  const { id, since } = request.query
  if (id !== undefined) {
    byId.set(id, socket)
    socket.on('close', () => { if (byId.get(id) === socket) byId.delete(id) })
  }
  if (since !== undefined) {
    let count = 0
    for (let i = Number(since); i < log.length; i++) { socket.send(log[i]); count++ }
    socket.send(JSON.stringify({ type: 'replayed', count, complete: true }))
  }
})

exitOnSignals(() => app.close())
await app.listen({ port: Number(process.env.PORT ?? 0), host: process.env.HOST ?? '127.0.0.1' })
console.log(JSON.stringify({ listening: app.server.address().port }))
