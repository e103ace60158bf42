// The framework ceiling for REST publish: a Fastify route that parses the
// JSON body and answers 202, with nothing behind it.
import Fastify from 'fastify'
import { exitOnSignals } from './common.mjs'

const app = Fastify({ logger: false })
let seq = 0
app.get('/health', async () => ({ ok: true }))
app.post('/api/notifications', async (request, reply) => reply.code(202).send({ id: 'x', seq: ++seq, createdAt: new Date().toISOString(), duplicate: false }))

exitOnSignals(() => app.close())
await app.listen({ port: Number(process.env.PORT ?? 0), host: process.env.HOST ?? '127.0.0.1' })
console.log(JSON.stringify({ listening: app.server.address().port }))
