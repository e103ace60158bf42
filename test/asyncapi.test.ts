// GET /docs/asyncapi.json: a valid AsyncAPI 3 document with a message for every
// frame type of the protocol table, each carrying the schema the server checks with.
import { readFileSync } from 'node:fs'
import { Parser } from '@asyncapi/parser'
import t from 'tap'
import { asyncApiDocument } from '../src/asyncapi.js'
import { CloseCode } from '../src/errors.js'
import { CLIENT_FRAME_SCHEMAS, CLIENT_FRAME_TYPES, SERVER_FRAME_SCHEMAS, SERVER_FRAME_TYPES } from '../src/protocol.js'
import { WsQuery } from '../src/schemas.js'
import { build } from './helper.js'

const plain = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown

t.test('the served document validates with @asyncapi/parser and lists every frame type', async t => {
  const h = await build(t)
  const res = await h.app.inject({ method: 'GET', url: '/docs/asyncapi.json', headers: { host: 'notify.example:8443' } })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  const { document, diagnostics } = await new Parser().parse(res.body)
  // Severity 0 is an error, 1 a warning; 2 and 3 are information and hints (e.g. "3.1 exists").
  t.same(diagnostics.filter(d => d.severity < 2).map(d => `${d.code}: ${d.message} at ${d.path.join('.')}`), [], 'no errors or warnings')
  if (document === undefined) throw new Error('the document did not parse')
  t.equal(document.version(), '3.0.0')

  const names = document.messages().all().map(m => m.name())
  t.same([...names].sort(), [...CLIENT_FRAME_TYPES, ...SERVER_FRAME_TYPES].sort(), 'one message per frame type, no other')

  const channel = document.channels().get('notifications')
  t.equal(channel?.address(), '/ws')
  const server = document.servers().get('default')
  t.equal(server?.host(), 'notify.example:8443', 'the host the client asked for')
  t.equal(server?.protocol(), 'ws')

  for (const type of CLIENT_FRAME_TYPES) {
    const op = document.operations().get(`receive_${type}`)
    t.ok(op?.isReceive(), `${type}: an operation the server receives`)
    t.same(op?.reply()?.messages().all().map(m => m.name()).sort(), ['error', 'reply'], `${type}: answered by reply or error`)
  }
  for (const type of SERVER_FRAME_TYPES) t.ok(document.operations().get(`send_${type}`)?.isSend(), `${type}: an operation the server sends`)
})

t.test('each message payload is the schema the frames are checked with', async t => {
  const doc = asyncApiDocument({ path: '/ws', host: 'localhost' }) as { components: { schemas: Record<string, unknown> }, channels: Record<string, any> }
  for (const [type, schema] of [...Object.entries(CLIENT_FRAME_SCHEMAS), ...Object.entries(SERVER_FRAME_SCHEMAS)]) {
    t.same(doc.components.schemas[`${type}Frame`], plain(schema), `${type}: same schema`)
  }
  const ws = doc.channels.notifications.bindings.ws
  t.same(ws.query, plain(WsQuery), 'the query parameters are the handshake schema')
  t.same(Object.keys(ws.query.properties).sort(), ['categories', 'epoch', 'legacy', 'since', 'token'])
  const codes = (doc.channels.notifications['x-close-codes'] as Array<{ code: number }>).map(c => c.code)
  for (const code of Object.values(CloseCode)) t.ok(codes.includes(code), `close code ${code} is described`)
})

t.test('every frame type docs/protocol.md shows is in the document', async t => {
  const text = readFileSync(new URL('../docs/protocol.md', import.meta.url), 'utf8')
  const shown = new Set([...text.matchAll(/\{"type":"([a-z_]+)"/g)].map(m => m[1]!))
  t.ok(shown.size >= 10, 'the protocol page shows the frames')
  const doc = asyncApiDocument({ path: '/ws', host: 'localhost' }) as { components: { messages: Record<string, unknown> } }
  for (const type of shown) t.ok(type in doc.components.messages, `${type} has a message`)
})

t.test('a configured path is the channel address; the OpenAPI description links the document', async t => {
  const h = await build(t, { path: '/notify' })
  const doc = (await h.app.inject({ method: 'GET', url: '/docs/asyncapi.json' })).json()
  t.equal(doc.channels.notifications.address, '/notify')
  const openapi = (await h.app.inject({ method: 'GET', url: '/docs/json' })).json()
  t.match(openapi.info.description, '/docs/asyncapi.json')
})
