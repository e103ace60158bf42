// What plugins/ws-internals.ts (and the test helpers) rely on in ws, checked on
// a real ws socket: a ws upgrade that changes any of it fails here, by name,
// instead of making delivery silently slower or out of order.
import { createServer, type Server } from 'node:http'
import { once } from 'node:events'
import type { Duplex } from 'node:stream'
import t, { type Test } from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import * as wsModule from 'ws'
import { SENDER_IDLE, senderIdle, textFrame } from '../plugins/ws-internals.js'
import { webSocketOf } from './helper.js'

async function pair (t: Test, perMessageDeflate = false): Promise<{ server: WebSocket, client: WebSocket, tcp: Duplex }> {
  const http: Server = createServer()
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate })
  let tcp: Duplex | undefined
  http.on('upgrade', (req, socket, head) => {
    tcp = socket
    wss.handleUpgrade(req, socket, head, ws => wss.emit('connection', ws))
  })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  const { port } = http.address() as { port: number }
  const connected = once(wss, 'connection') as Promise<[WebSocket]>
  const client = new WebSocket(`ws://127.0.0.1:${port}`)
  const [server] = await connected
  await once(client, 'open')
  t.teardown(async () => {
    client.terminate()
    server.terminate()
    wss.close()
    await new Promise(resolve => http.close(resolve))
  })
  return { server, client, tcp: tcp! }
}

t.test("ws's Sender keeps a numeric _state, idle (0) on an open uncompressed socket", async t => {
  const { server } = await pair(t)
  const sender = (server as unknown as { _sender?: { _state?: unknown } })._sender
  t.type(sender, 'object', 'ws socket has a _sender')
  t.type(sender?._state, 'number', '_sender._state is a number')
  t.equal(sender?._state, SENDER_IDLE, 'idle when nothing is held back')
  t.equal(senderIdle(server), true)
})

t.test('_sender._state leaves idle while ws compresses a frame, so the shared path steps aside', async t => {
  const { server, client } = await pair(t, true)
  t.match(server.extensions, /permessage-deflate/)
  const got = once(client, 'message')
  server.send('x'.repeat(10_000))
  t.equal(senderIdle(server), false, 'busy deflating')
  await got
  t.equal(senderIdle(server), true, 'idle again once written')
})

t.test("ws's ES module exports Sender, whose frame() builds a text frame that a ws client reads back", async t => {
  const { server, client, tcp } = await pair(t)
  t.type((wsModule as unknown as { Sender?: { frame?: unknown } }).Sender?.frame, 'function', 'Sender.frame exists')
  const text = JSON.stringify({ type: 'notification', body: 'é'.repeat(300) })
  const wire = textFrame(text)
  t.ok(Array.isArray(wire) && wire.every(b => Buffer.isBuffer(b)), 'an array of Buffers')
  const got = once(client, 'message') as Promise<[Buffer, boolean]>
  for (const chunk of wire) tcp.write(chunk)
  const [data, isBinary] = await got
  t.equal(isBinary, false)
  t.equal(data.toString('utf8'), text)
  t.equal(senderIdle(server), true)
})

t.test('the upgraded TCP socket leads back to its ws socket (test helpers rely on it)', async t => {
  const { server, tcp } = await pair(t)
  t.equal(webSocketOf(tcp), server)
})
