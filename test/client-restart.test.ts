// The client SDK across a killed server: the standalone server process gets
// SIGKILL in the middle of a burst and is restarted on the same SQLite file and
// port; the client reconnects by itself and has every accepted notification
// exactly once, in seq order.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { createClient, type ClientEvents, type NotificationClient, type WebSocketConstructor } from '../src/client/index.js'
import { signToken } from '../src/tokens.js'
import { API_KEY, SECRET, within } from './helper.js'
import { listeningPort, START_MS } from './instances.js'

const ROOT = resolve(import.meta.dirname, '..')
// Two server processes start in this file, one after the other.
t.setTimeout(3 * START_MS)
const WS = WebSocket as unknown as WebSocketConstructor

function nextEvent<K extends keyof ClientEvents> (client: NotificationClient, event: K, ms: number): Promise<ClientEvents[K]> {
  return within(new Promise(resolve => { const off = client.on(event, v => { off(); resolve(v) }) }), ms, `a '${event}' event`)
}

t.test('resume after the server process is killed (SIGKILL) and restarted on the same SQLite file: no loss, no duplicate', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'un-client-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const env = { NOTIFY_STORE: `sqlite:${join(dir, 'n.db')}`, NOTIFY_JWT_SECRET: SECRET, NOTIFY_API_KEYS: API_KEY, LOG_LEVEL: 'info' }
  const first = await startProcess(t, { ...env, PORT: '0' })
  const token = await signToken(SECRET, { sub: 'alice', role: 'user' })
  // Long enough delays that the publishes to the restarted server usually land before the client is back (a replay).
  const client = createClient({ url: `ws://127.0.0.1:${first.port}/ws`, token, WebSocket: WS, minReconnectDelayMs: 1000, maxReconnectDelayMs: 2000 })
  t.teardown(() => client.close())
  const got: number[] = []
  let replayed = 0
  client.on('notification', n => { got.push(n.seq) })
  client.on('replayed', r => { replayed += r.count })
  await nextEvent(client, 'connected', 10_000)
  const accepted: number[] = []
  const post = async (port: number, title: string) => {
    const res = await fetch(`http://127.0.0.1:${port}/api/notifications`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ category: 'dashboard', title })
    })
    if (res.status === 202) accepted.push(((await res.json()) as { seq: number }).seq)
  }
  for (let i = 0; i < 20; i++) await post(first.port, `before ${i}`)
  const closed = nextEvent(client, 'close', 10_000)
  // Killed in the middle of a burst: whatever was answered 202 is on disk, delivered or not.
  const burst = Array.from({ length: 40 }, (_, i) => post(first.port, `burst ${i}`).then(() => {
    if (accepted.length >= 30 && !first.child.killed) first.child.kill('SIGKILL')
  }).catch(() => undefined))
  await Promise.all(burst)
  t.ok(first.child.killed, 'killed during the burst')
  t.equal((await closed).willReconnect, true)
  const second = await startProcess(t, { ...env, PORT: String(first.port) })
  for (let i = 0; i < 10; i++) await post(second.port, `after ${i}`)
  const all = () => accepted.every(seq => got.includes(seq))
  await within(new Promise<void>(resolve => { const check = () => { if (all()) resolve() }; check(); client.on('notification', check) }), 20_000, 'every accepted notification')
  await client.ping()
  // A publish stored just before the kill may have lost its 202 with the process: it is stored, so it is delivered too.
  const res = await fetch(`http://127.0.0.1:${second.port}/api/notifications?limit=100`, { headers: { authorization: `Bearer ${token}` } })
  const stored = ((await res.json()) as { notifications: Array<{ seq: number }> }).notifications.map(n => n.seq).sort((x, y) => x - y)
  t.strictSame(got, stored, 'every stored notification, once, in seq order')
  t.ok(accepted.every(seq => stored.includes(seq)), 'every accepted one among them')
  t.ok(accepted.length >= 30, `${accepted.length} accepted, ${replayed} of them replayed on resume`)
})

/** The standalone server as a child process (same node and TypeScript loader as this test); resolves once it listens. */
async function startProcess (t: Test, env: Record<string, string>): Promise<{ child: ChildProcess, port: number }> {
  // Only the TypeScript loader: the child's coverage is not this test's concern, and it starts faster without.
  const loader = process.execArgv.filter(a => a.includes('@tapjs/typescript') || a === '--enable-source-maps')
  const child = spawn(process.execPath, [...loader, 'server/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  child.stderr.resume()
  const exited = new Promise(resolve => child.once('exit', resolve))
  const port = await listeningPort(child, exited)
  return { child, port }
}
