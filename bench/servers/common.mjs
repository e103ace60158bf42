// What the bench servers (not ours) share: the notification frame they send,
// shaped and sized like ours, and a tiny HTTP control channel for the harness.
import { randomUUID } from 'node:crypto'

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
