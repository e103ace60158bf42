// Test helpers: build(t) starts the standalone app on a real loopback port and
// closes it in teardown; connect() opens a real ws client whose frames are
// buffered from the first byte, so none is missed between awaits.
import type { Duplex } from 'node:stream'
import type { Test } from 'tap'
import WebSocket from 'ws'
import { SignJWT } from 'jose'
import type { FastifyInstance } from 'fastify'
import { buildServer, type ServerConfig } from '../server/index.js'
import { signToken } from '../src/tokens.js'
import { createStore, type HistoryStore } from '../src/stores/index.js'
import { SqliteStore } from '../src/stores/sqlite-store.js'

export const SECRET = 'test-secret-0123456789abcdef'
export const API_KEY = 'test-api-key-0123456789'

export interface Harness {
  app: FastifyInstance
  /** The app's history store, for checking what was (not) stored. */
  store: HistoryStore
  /** The server side of every upgraded connection still open (the TCP sockets). */
  upgraded: Set<Duplex>
  port: number
  http: string
  ws: string
  token (sub: string, role?: string, expiresIn?: string | number): Promise<string>
}

export async function build (t: Test, overrides: Partial<ServerConfig> = {}): Promise<Harness> {
  const store = await createStore(overrides.store ?? 'memory', {
    ...(overrides.retention !== undefined ? { retention: overrides.retention } : {}),
    ...(overrides.redisPrefix !== undefined ? { redisPrefix: overrides.redisPrefix } : {}),
    ...(overrides.redis !== undefined ? { redis: overrides.redis } : {})
  })
  const app = await buildServer({ jwtSecret: SECRET, apiKeys: [API_KEY], logger: false, ...overrides, store })
  t.teardown(() => app.close())
  const upgraded = new Set<Duplex>()
  app.server.on('upgrade', (_req, socket: Duplex) => {
    upgraded.add(socket)
    socket.once('close', () => upgraded.delete(socket))
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return {
    app,
    store,
    upgraded,
    port: address.port,
    http: `http://127.0.0.1:${address.port}`,
    ws: `ws://127.0.0.1:${address.port}/ws`,
    token: (sub, role = 'user', expiresIn = '1h') => signToken(SECRET, { sub, role, expiresIn })
  }
}

export type Frame = Record<string, any> & { type: string }

export interface Client {
  ws: WebSocket
  /** The next frame not yet taken, waiting up to `ms`. */
  next (ms?: number): Promise<Frame>
  /** The next frame of this type, dropping others before it. */
  nextOf (type: string, ms?: number): Promise<Frame>
  /** Frames received and not yet taken. */
  pending (): Frame[]
  send (frame: unknown): void
  /** Sends a request and waits for the reply or error with its id. */
  request (frame: Record<string, unknown>, ms?: number): Promise<Frame>
  /** Resolves with the close code and reason. */
  closed: Promise<{ code: number, reason: string }>
  close (): void
}

let requestCounter = 0

/** Opens a client; resolves once the socket is open (the connected frame is then in next()). */
export async function connect (url: string, opts: { token?: string, query?: Record<string, string>, headers?: Record<string, string>, maxPayload?: number } = {}): Promise<Client> {
  const u = new URL(url)
  for (const [k, v] of Object.entries(opts.query ?? {})) u.searchParams.set(k, v)
  const headers = { ...opts.headers, ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) }
  const ws = new WebSocket(u, { headers, ...(opts.maxPayload ? { maxPayload: opts.maxPayload } : {}) })
  const frames: Frame[] = []
  const waiters: Array<() => void> = []
  ws.on('message', (data) => {
    frames.push(JSON.parse(data.toString()) as Frame)
    for (const w of waiters.splice(0)) w()
  })
  const closed = new Promise<{ code: number, reason: string }>(resolve => {
    ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() })
      for (const w of waiters.splice(0)) w()
    })
  })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode })))
  })
  const take = async (match: (f: Frame) => boolean, ms: number, drop: boolean): Promise<Frame> => {
    const deadline = Date.now() + ms
    for (;;) {
      const i = frames.findIndex(match)
      if (i >= 0) {
        const [f] = drop ? frames.splice(0, i + 1).slice(-1) : frames.splice(i, 1)
        return f!
      }
      if (ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed while waiting (pending: ${JSON.stringify(frames)})`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for a frame (pending: ${JSON.stringify(frames).slice(0, 500)})`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, left)
        waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }
  return {
    ws,
    next: (ms = 2000) => take(() => true, ms, true),
    nextOf: (type, ms = 2000) => take(f => f.type === type, ms, true),
    pending: () => [...frames],
    send: (frame) => ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    request: (frame, ms = 2000) => {
      const id = frame.id as string | undefined ?? `r${++requestCounter}`
      ws.send(JSON.stringify({ ...frame, id }))
      return take(f => (f.type === 'reply' || f.type === 'error') && f.id === id, ms, false)
    },
    closed,
    close: () => ws.close()
  }
}

/** Publishes through the REST API with the API key; returns the parsed body. */
export async function publish (h: Harness, body: Record<string, unknown>): Promise<{ id: string, seq: number, createdAt: string, duplicate: boolean }> {
  const res = await h.app.inject({ method: 'POST', url: '/api/notifications', headers: { authorization: `Bearer ${API_KEY}` }, payload: body })
  if (res.statusCode !== 202 && res.statusCode !== 200) throw new Error(`publish failed: ${res.statusCode} ${res.body}`)
  return res.json()
}

// ---- added for the socket integration suites (ws-protocol, client, server) ----

/** The ws socket upgraded on a TCP socket: ws keeps it there under a private symbol (test/ws-internals.test.ts checks it). */
export function webSocketOf (socket: Duplex): WebSocket | undefined {
  const key = Object.getOwnPropertySymbols(socket).find(s => s.description === 'websocket')
  const ws = key === undefined ? undefined : (socket as unknown as Record<symbol, unknown>)[key]
  return ws instanceof WebSocket ? ws : undefined
}

/** The server side of every open connection (the ws sockets behind the sessions), e.g. to terminate() them. */
export function serverSockets (h: Harness): WebSocket[] {
  const out: WebSocket[] = []
  for (const socket of h.upgraded) {
    const ws = webSocketOf(socket)
    if (ws !== undefined && ws.readyState === WebSocket.OPEN) out.push(ws)
  }
  return out
}

export interface Refusal {
  statusCode: number
  body: Record<string, any>
  /** Whether the socket opened anyway (it must not). */
  opened: boolean
}

/** Attempts an upgrade that the server should refuse; resolves with the HTTP status and the JSON body. */
export async function refusedUpgrade (url: string, opts: { token?: string, query?: Record<string, string>, headers?: Record<string, string>, ms?: number } = {}): Promise<Refusal> {
  const u = new URL(url)
  for (const [k, v] of Object.entries(opts.query ?? {})) u.searchParams.set(k, v)
  const headers = { ...opts.headers, ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) }
  const ws = new WebSocket(u, { headers })
  let opened = false
  ws.on('open', () => { opened = true; ws.terminate() })
  return new Promise<Refusal>((resolve, reject) => {
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('upgrade was neither refused nor accepted in time')) }, opts.ms ?? 3000)
    ws.on('error', err => { clearTimeout(timer); reject(err) })
    ws.on('close', () => { if (opened) { clearTimeout(timer); reject(new Error('the socket opened: the upgrade was not refused')) } })
    ws.on('unexpected-response', (req, res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        clearTimeout(timer)
        const text = Buffer.concat(chunks).toString('utf8')
        let body: Record<string, any>
        try { body = JSON.parse(text) } catch { body = { unparsed: text } }
        req.destroy()
        resolve({ statusCode: res.statusCode ?? 0, body, opened })
      })
    })
  })
}

/** Publishes through the REST API over the real port (not inject), with the API key. */
export async function publishHttp (h: Pick<Harness, 'http'>, body: Record<string, unknown>): Promise<{ id: string, seq: number, createdAt: string, duplicate: boolean }> {
  const res = await fetch(`${h.http}/api/notifications`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })
  const text = await res.text()
  if (res.status !== 202 && res.status !== 200) throw new Error(`publish failed: ${res.status} ${text}`)
  return JSON.parse(text)
}

/**
 * A user token whose exp is at least `minMs` away, with that exp in epoch ms.
 * exp has whole seconds: a token signed with expiresIn n can end anywhere from
 * n - 1 to n seconds later (at once, for n = 1, near a second's end), so a test
 * that must act before exp asks for the time it needs instead.
 */
export async function expiringToken (sub: string, role: string, minMs: number): Promise<{ token: string, expMs: number }> {
  const now = Date.now()
  const exp = Math.ceil((now + minMs) / 1000)
  const token = await new SignJWT({ role }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub)
    .setIssuedAt(Math.floor(now / 1000)).setExpirationTime(exp).sign(new TextEncoder().encode(SECRET))
  return { token, expMs: exp * 1000 }
}

export const sleep = (ms: number) => new Promise<void>(resolve => setTimeout(resolve, ms))

/** `promise`, or a rejection naming `what` after `ms`; the timer is cleared either way, so nothing lingers. */
export async function within<T> (promise: Promise<T>, ms: number, what = 'the operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Counts the writes a server-side socket makes to the kernel (each _write or _writev is one). */
export function countWrites (socket: unknown): { writes: number } {
  const raw = socket as { _write: (...a: unknown[]) => unknown, _writev: (...a: unknown[]) => unknown }
  const counter = { writes: 0 }
  const write = raw._write.bind(raw)
  const writev = raw._writev.bind(raw)
  raw._write = (...a: unknown[]) => { counter.writes++; return write(...a) }
  raw._writev = (...a: unknown[]) => { counter.writes++; return writev(...a) }
  return counter
}

/**
 * A SQLite store that runs `after` (once set) right after the /ws handshake has
 * read `userId`'s revocation and muted categories: a change made there races
 * the registration, as a real one stored between the two would.
 */
export class HandshakeRaceStore extends SqliteStore {
  after: (() => Promise<unknown>) | undefined

  constructor (path: string, readonly userId: string) {
    super(path)
  }

  override async handshakeState (userId: string, now: number): ReturnType<SqliteStore['handshakeState']> {
    const state = await super.handshakeState(userId, now)
    if (userId === this.userId) await this.after?.()
    return state
  }
}
