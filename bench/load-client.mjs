// The load client: a separate process (forked by bench/run.mjs, never inside a
// server) that holds N WebSocket connections, counts delivered notifications
// per connection and records publish-to-receive latency from the timestamp the
// publisher put in the payload (data.t, epoch ms). Driven over IPC.
import { SignJWT } from 'jose'
import WebSocket from 'ws'
import { io as ioClient } from 'socket.io-client'
import { createHistogram, record, summarise } from './lib/histogram.mjs'

const now = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

let conns = [] // ws.WebSocket | socket.io-client Socket
let counts = new Uint32Array(0)
let caught = new Uint8Array(0)
let hist = createHistogram()
let total = 0
let caughtTotal = 0
let firstAt = 0
let lastAt = 0
let lastCaughtAt = 0
let waiter // { target, caughtTarget, resolve }

const T_OFFSET = 4 // '"t":'.length
const NOTIFICATION = 'n'.charCodeAt(0)
const REPLAYED = 'r'.charCodeAt(0)

function onNotification (i, t) {
  const at = now()
  if (firstAt === 0) firstAt = at
  lastAt = at
  counts[i]++
  total++
  if (t > 0) record(hist, at - t)
  if (waiter !== undefined && total >= waiter.target && caughtTotal >= waiter.caughtTarget) waiter.resolve()
}

function onReplayed (i) {
  if (caught[i] === 0) { caught[i] = 1; caughtTotal++; lastCaughtAt = now() }
  if (waiter !== undefined && total >= waiter.target && caughtTotal >= waiter.caughtTarget) waiter.resolve()
}

/** data.t from a serialised frame, without parsing the whole frame. */
function timestampOf (buf) {
  const at = buf.indexOf('"t":')
  if (at < 0) return 0
  let v = 0
  let frac = 0
  let scale = 1
  for (let k = at + T_OFFSET; k < buf.length; k++) {
    const c = buf[k]
    if (c === 46) { frac = 1; continue } // '.'
    if (c < 48 || c > 57) break
    if (frac) { scale /= 10; v += (c - 48) * scale } else v = v * 10 + (c - 48)
  }
  return v
}

// Frames all start with {"type":"<type>": byte 9 tells notification, replayed, connected.
function openWs (kind, port, i, user, token, since) {
  const q = kind === 'ours'
    ? `/ws?token=${token}${since !== undefined ? `&since=${since}` : ''}`
    : `/?id=${user}${since !== undefined ? `&since=${since}` : ''}`
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${q}`, { perMessageDeflate: false })
    let done = false
    const finish = (ok, why) => { if (!done) { done = true; resolve(ok ? ws : why) } }
    const timer = setTimeout(() => { finish(false, 'timeout'); ws.terminate() }, 30_000)
    ws.on('message', (data) => {
      const c = data[9]
      if (c === NOTIFICATION) onNotification(i, timestampOf(data))
      else if (c === REPLAYED) onReplayed(i)
      else if (kind === 'ours') { clearTimeout(timer); finish(true) } // connected
    })
    if (kind !== 'ours') ws.once('open', () => { clearTimeout(timer); finish(true) })
    ws.on('unexpected-response', (_req, res) => { clearTimeout(timer); finish(false, `http ${res.statusCode}`); ws.terminate() })
    ws.on('error', (err) => { clearTimeout(timer); finish(false, err.code ?? err.message) })
  })
}

/** kind 'sio': the plain Socket.IO server (auth.id); 'ours-sio': our Socket.IO endpoint (auth.token, frame payloads). */
function openSio (kind, port, i, user, token, since) {
  const ours = kind === 'ours-sio'
  return new Promise((resolve) => {
    const s = ioClient(`http://127.0.0.1:${port}`, {
      transports: ['websocket'], forceNew: true, reconnection: false, timeout: 30_000,
      auth: { ...(ours ? { token } : { id: user }), ...(since !== undefined ? { since } : {}) }
    })
    if (ours) s.on('notification', (f) => onNotification(i, f?.notification?.data?.t ?? 0))
    else s.on('notification', (n) => onNotification(i, n?.data?.t ?? 0))
    s.on('replayed', () => onReplayed(i))
    // Ours: ready once its connected event is in, as the /ws client waits for the connected frame.
    s.once(ours ? 'connected' : 'connect', () => resolve(s))
    s.once('connect_error', (err) => { resolve(err.message); s.close() })
  })
}

/** offset and total: clients offset..offset+n-1 of `total`, so one load can be split across several servers. */
async function connect ({ kind, port, n, secret, since, concurrency = 200, deadlineMs = 120_000, offset = 0, total: all = n }) {
  if (conns.length === 0) {
    counts = new Uint32Array(all)
    caught = new Uint8Array(all)
  }
  let tokens = []
  if (kind === 'ours' || kind === 'ours-sio') {
    const key = new TextEncoder().encode(secret)
    tokens = await Promise.all(Array.from({ length: n }, (_, k) => new SignJWT({ role: 'user' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(`u${offset + k}`).setIssuedAt().setExpirationTime('2h').sign(key)))
  }
  const t0 = now()
  const until = t0 + deadlineMs
  const failures = {}
  let next = 0
  let ok = 0
  const worker = async () => {
    while (next < n) {
      if (now() > until) {
        failures.deadline = n - next
        next = n
        break
      }
      const k = next++
      const i = offset + k
      const r = kind === 'sio' || kind === 'ours-sio' ? await openSio(kind, port, i, `u${i}`, tokens[k], since) : await openWs(kind, port, i, `u${i}`, tokens[k], since)
      if (typeof r === 'string') failures[r] = (failures[r] ?? 0) + 1
      else { conns[i] = r; ok++ }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker))
  return { connected: ok, failures, ms: Math.round(now() - t0) }
}

async function closeAll () {
  const t0 = now()
  const closing = conns.map(c => new Promise(resolve => {
    if (c === undefined) return resolve()
    if (c instanceof WebSocket) {
      if (c.readyState === WebSocket.CLOSED) return resolve()
      c.once('close', resolve)
      c.close(1000)
    } else {
      c.close()
      resolve()
    }
  }))
  const timer = sleep(10_000)
  await Promise.race([Promise.all(closing), timer])
  for (const c of conns) if (c instanceof WebSocket && c.readyState !== WebSocket.CLOSED) c.terminate()
  conns = []
  return { ms: Math.round(now() - t0) }
}

function reset () {
  counts.fill(0)
  caught.fill(0)
  hist = createHistogram()
  total = 0
  caughtTotal = 0
  firstAt = 0
  lastAt = 0
  lastCaughtAt = 0
  return { ok: true }
}

/** Waits until `target` notifications (and `caughtTarget` replayed markers) arrived, or the timeout. */
async function wait ({ target, caughtTarget = 0, timeoutMs, perClient }) {
  if (total < target || caughtTotal < caughtTarget) {
    await new Promise(resolve => {
      const timer = setTimeout(resolve, timeoutMs)
      waiter = { target, caughtTarget, resolve: () => { clearTimeout(timer); resolve() } }
    })
    waiter = undefined
  }
  // Let stragglers (duplicates would show here) land before counting.
  await sleep(100)
  let min = Infinity
  let max = 0
  let wrong = 0
  const n = counts.length
  for (let i = 0; i < n; i++) {
    const c = counts[i]
    if (c < min) min = c
    if (c > max) max = c
    if (perClient !== undefined && c !== perClient) wrong++
  }
  return { total, caughtTotal, firstAt, lastAt, lastCaughtAt, min: n ? min : 0, max, wrong, latency: summarise(hist) }
}

/** Waits until nothing has arrived for quietMs (a previous, overloaded scenario may still be draining). */
async function quiet ({ quietMs = 1000, timeoutMs = 30_000 }) {
  const t0 = now()
  let seen = total
  let since = now()
  while (now() - t0 < timeoutMs) {
    await sleep(100)
    if (total !== seen) { seen = total; since = now() } else if (now() - since >= quietMs) break
  }
  return { ms: Math.round(now() - t0), quiet: now() - since >= quietMs }
}

const commands = { connect, closeAll, reset, wait, quiet }
process.on('message', async (msg) => {
  try {
    const result = await commands[msg.cmd](msg.args ?? {})
    process.send({ id: msg.id, result })
  } catch (err) {
    process.send({ id: msg.id, error: err.stack ?? String(err) })
  }
})
process.on('disconnect', () => process.exit(0))
