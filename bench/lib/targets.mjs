// The servers under test: how to start each one and how to publish to it.
// Ours is published to through its real REST API with an API key; the others
// through the bench-only POST /publish of bench/servers/*.mjs.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, spawnServer, waitHealthy } from './proc.mjs'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const server = (name) => fileURLToPath(new URL(`../servers/${name}`, import.meta.url))

// Several publishers: the default publish rate limit is per credential (1000/s), and the
// REST scenario gives each autocannon connection its own key, as separate publishers would have.
/** SQLite temp dirs of running servers, removed on exit whatever happens. */
export const tempDirs = new Set()

export const API_KEYS = Array.from({ length: 64 }, () => 'bench-' + randomBytes(12).toString('hex'))
export const API_KEY = API_KEYS[0]
export const JWT_SECRET = randomBytes(32).toString('base64url')

/** Publishes as fast as the server answers: one request at a time. */
async function post (url, body, headers = {}) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  const text = await res.text()
  if (res.status >= 300) throw new Error(`POST ${url}: ${res.status} ${text.slice(0, 300)}`)
  return JSON.parse(text)
}

function toInput (m) {
  return { category: 'system', title: 'bench', data: m.data, ...(m.to !== undefined ? { audience: { users: [m.to] } } : {}) }
}

export const TARGETS = {
  ours: oursTarget('ours (unified-notifications)', 'ours', {}),
  // Socket.IO clients on our Socket.IO endpoint, compared with 'sio' (the plain Socket.IO server) under the same load.
  'ours-sio': oursTarget('ours, Socket.IO endpoint', 'ours-sio', { NOTIFY_SOCKETIO: '1' }),
  raw: benchServer('raw ws (naive)', 'raw-ws.mjs', 'raw'),
  // What ours does on the wire (framed once, a socket's frames of one turn written together), nothing more.
  'raw-batch': benchServer('raw ws, coalescing (ceiling)', 'raw-batch.mjs', 'raw'),
  sio: benchServer('Socket.IO 4', 'socketio.mjs', 'sio'),
  'fastify-ws': benchServer('Fastify + @fastify/websocket', 'fastify-ws.mjs', 'raw'),
  'bare-fastify': benchServer('bare Fastify route (202)', 'bare-fastify.mjs', null)
}

/** Our standalone server from `root`'s dist/ (default: this checkout), with `extraEnv` on top of the bench settings. */
export function oursTarget (label, client, extraEnv, root = ROOT) {
  return {
    label,
    client,
    async start (ctx) {
      const dir = mkdtempSync(join(tmpdir(), 'un-bench-'))
      tempDirs.add(dir)
      const port = await freePort()
      const child = spawnServer({
        ...ctx,
        cwd: root,
        script: join(root, 'dist/server/main.js'),
        env: {
          PORT: String(port),
          HOST: '127.0.0.1',
          NOTIFY_JWT_SECRET: JWT_SECRET,
          NOTIFY_API_KEYS: API_KEYS.join(','),
          NOTIFY_STORE: `sqlite:${join(dir, 'bench.db')}`,
          LOG_LEVEL: 'warn',
          NODE_ENV: 'production',
          ...extraEnv,
          ...ctx.env
        }
      })
      child.cleanup = () => { rmSync(dir, { recursive: true, force: true }); tempDirs.delete(dir) }
      await waitHealthy(port, child)
      return { port, child }
    },
    /** messages: [{data, to?}] → the highest seq. */
    async publish (port, messages) {
      const auth = { authorization: `Bearer ${API_KEY}` }
      if (messages.length === 1) {
        const r = await post(`http://127.0.0.1:${port}/api/notifications`, toInput(messages[0]), auth)
        return r.seq
      }
      const r = await post(`http://127.0.0.1:${port}/api/notifications/batch`, { notifications: messages.map(toInput) }, auth)
      return Math.max(...r.results.map(x => x.seq))
    }
  }
}

export function benchServer (label, file, client) {
  return {
    label,
    client,
    async start (ctx) {
      const port = await freePort()
      const child = spawnServer({ ...ctx, cwd: ROOT, script: server(file), env: { PORT: String(port), HOST: '127.0.0.1', NODE_ENV: 'production', ...ctx.env } })
      await waitHealthy(port, child)
      return { port, child }
    },
    async publish (port, messages) {
      const r = await post(`http://127.0.0.1:${port}/publish`, { messages })
      return r.lastSeq
    }
  }
}
