// What the bench servers (not ours) share: the notification frame they send,
// shaped and sized like ours, and a tiny HTTP control channel for the harness.
import { randomUUID } from 'node:crypto'
import http from 'node:http'

/** A notification shaped like the project's, so every server puts the same bytes on the wire. */
export function makeNotification (seq, data) {
  return {
    id: randomUUID(),
    seq,
    category: 'system',
    type: 'info',
    priority: 'normal',
    title: 'bench',
    message: '',
    data,
    createdAt: new Date().toISOString(),
    source: 'api',
    read: false
  }
}

export function readBody (req) {
  return new Promise((resolve, reject) => {
    const chunks = []
    req.on('data', c => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

export function json (res, status, body) {
  const s = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) })
  res.end(s)
}

export function exitOnSignals (close) {
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.once(sig, () => {
      const timer = setTimeout(() => process.exit(0), 2000)
      timer.unref()
      Promise.resolve(close()).finally(() => process.exit(0))
    })
  }
}

/**
 * The harness's control channel, the same on every bench server: GET /health
 * answers {ok, clients}; POST /publish {messages:[{data, to?}]} hands each
 * message to publish() in order (to: one user, else everyone) and answers 202
 * {lastSeq}. `skip(req)` leaves a request to another listener (Socket.IO's own).
 */
export function controlServer ({ clients, publish, lastSeq, skip }) {
  return http.createServer(async (req, res) => {
    if (skip?.(req)) return
    try {
      if (req.method === 'GET' && req.url === '/health') return json(res, 200, { ok: true, clients: clients() })
      if (req.method === 'POST' && req.url === '/publish') {
        const { messages } = JSON.parse(await readBody(req))
        for (const m of messages) publish(m)
        return json(res, 202, { lastSeq: lastSeq() })
      }
      json(res, 404, { error: 'not found' })
    } catch (err) {
      json(res, 500, { error: String(err) })
    }
  })
}

/** Listens on PORT/HOST and tells the harness the port (one JSON line on stdout). */
export function listen (server) {
  server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
    console.log(JSON.stringify({ listening: server.address().port }))
  })
}
