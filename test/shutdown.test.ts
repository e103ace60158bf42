// Shutdown: during the drain every route answers in the documented shape
// (UN_UNAVAILABLE, the /health body), and every socket is closed or destroyed
// within the drain: an idle TCP connection, an upgrade refused during the drain
// whose client keeps the socket open. The real process exits 0, in bounded time.
import { once } from 'node:events'
import { spawn } from 'node:child_process'
import { connect as tcp, type Socket } from 'node:net'
import { resolve } from 'node:path'
import t from 'tap'
import { DRAIN_MS } from '../server/index.js'
import { signToken } from '../src/tokens.js'
import { API_KEY, SECRET, build, connect, within } from './helper.js'
import { listeningPort } from './instances.js'

const ROOT = resolve(import.meta.dirname, '..')
// Spawned processes compile their entry point first: on a loaded machine that alone can take most of a minute.
t.setTimeout(300_000)
const UPGRADE = 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
  'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'

async function openTcp (port: number): Promise<Socket> {
  const socket = tcp(port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  return socket
}

/** Sends a raw upgrade request and never ends the socket itself; resolves with the answer's head and body. */
async function upgradeAndHold (port: number): Promise<{ socket: Socket, status: number, headers: string, body: string, closed: Promise<void> }> {
  const socket = await openTcp(port)
  const closed = once(socket, 'close').then(() => {})
  let text = ''
  const answered = new Promise<void>(resolve => {
    socket.on('data', (d: Buffer) => {
      text += d.toString()
      const end = text.indexOf('\r\n\r\n')
      const length = /content-length: (\d+)/i.exec(text)
      if (end >= 0 && length && text.length >= end + 4 + Number(length[1])) resolve()
    })
  })
  socket.write(UPGRADE)
  await within(answered, 3000, 'the answer to the upgrade')
  const [head = '', body = ''] = text.split('\r\n\r\n')
  return { socket, status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1]), headers: head, body, closed }
}

/** A client that stopped reading: it never answers the 1001 close, so the WebSocket drain lasts its whole grace. */
async function mutePeer (ws: string, token: string) {
  const mute = await connect(ws, { token })
  await mute.next()
  ;(mute.ws as unknown as { _socket: { pause (): void } })._socket.pause()
  return mute
}

t.test('during the drain: publish and upgrades answer UN_UNAVAILABLE, /health its body, and every socket closes', async t => {
  const h = await build(t)
  const watcher = await connect(h.ws, { token: await h.token('watcher') })
  await watcher.next()
  await mutePeer(h.ws, await h.token('mute'))
  const idle = await openTcp(h.port)
  const idleClosed = once(idle, 'close')

  const started = Date.now()
  const drainStarted = watcher.closed
  const closing = h.app.close()
  t.equal((await within(drainStarted, 2000, 'the drain to start')).code, 1001)

  const publish = await fetch(`${h.http}/api/notifications`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ category: 'system', title: 'during the drain' })
  })
  t.equal(publish.status, 503)
  t.match(await publish.json(), { statusCode: 503, code: 'UN_UNAVAILABLE', error: 'Service Unavailable', message: /shutting down|not accepting/ }, 'publish: the documented code')
  t.equal(publish.headers.get('connection'), 'close', 'and the client is told to reconnect elsewhere')

  const health = await fetch(`${h.http}/health`)
  t.equal(health.status, 503)
  t.strictSame(await health.json(), { status: 'unavailable', store: 'up', broker: 'up' }, '/health: its documented body')

  const upgrade = await upgradeAndHold(h.port)
  t.equal(upgrade.status, 503, 'an upgrade during the drain is refused')
  t.match(JSON.parse(upgrade.body), { statusCode: 503, code: 'UN_UNAVAILABLE' })
  await within(upgrade.closed, 1000, 'the server to close the refused upgrade it answered')

  await within(idleClosed, 1000, 'the connection that never sent a request to be closed')
  await within(closing, DRAIN_MS + 1000, 'app.close()')
  t.ok(Date.now() - started < DRAIN_MS + 1000, 'the drain is bounded')
})

t.test('a connection opened during the drain that sends nothing is closed after a moment, not held to the deadline', async t => {
  const h = await build(t)
  const watcher = await connect(h.ws, { token: await h.token('watcher') })
  await watcher.next()
  await mutePeer(h.ws, await h.token('mute'))
  const closing = h.app.close()
  await within(watcher.closed, 2000, 'the drain to start')
  // Opened during the drain: it gets a moment to ask, then it is destroyed.
  const late = await openTcp(h.port)
  const started = Date.now()
  await within(once(late, 'close'), 3000, 'the late idle connection to be closed')
  t.ok(Date.now() - started < 2500, 'well before the drain deadline')
  await within(closing, DRAIN_MS + 1000, 'app.close()')
})

const tsNode = (entry: string) => [...process.execArgv, entry]

t.test('the process exits 0 within the drain with an idle TCP connection and an upgrade held open during the drain', async t => {
  const child = spawn(process.execPath, tsNode('server/main.ts'), {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', NOTIFY_STORE: 'memory', NOTIFY_JWT_SECRET: SECRET, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  child.stderr.resume()
  const port = await listeningPort(child, exited)

  const ws = `ws://127.0.0.1:${port}/ws`
  const watcher = await connect(ws, { token: await signToken(SECRET, { sub: 'watcher', role: 'user' }) })
  await watcher.next()
  await mutePeer(ws, await signToken(SECRET, { sub: 'mute', role: 'user' }))
  const idle = await openTcp(port)

  const started = Date.now()
  child.kill('SIGTERM')
  await within(watcher.closed, 3000, 'the drain to start')
  const upgrade = await upgradeAndHold(port)
  t.equal(upgrade.status, 503, 'the upgrade during the drain is answered 503')
  t.match(JSON.parse(upgrade.body), { code: 'UN_UNAVAILABLE' })

  const { code, signal } = await within(exited, DRAIN_MS + 3000, 'exit after SIGTERM')
  t.equal(code, 0, 'exit code 0, not the hard kill')
  t.equal(signal, null)
  t.ok(Date.now() - started < DRAIN_MS + 3000, `exited in ${Date.now() - started} ms`)
  t.ok(idle.destroyed || idle.readableEnded, 'the idle connection is gone')
})
