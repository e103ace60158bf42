// GET /docs/asyncapi.json: the AsyncAPI document of the WebSocket protocol,
// built once at start from the frame schemas (src/asyncapi.ts). The server
// entry names the host the client asked for, so the document works as served.
import type { FastifyInstance } from 'fastify'
import { asyncApiDocument } from '../src/asyncapi.js'

export const ASYNCAPI_URL = '/docs/asyncapi.json'

export async function asyncApiRoute (app: FastifyInstance, opts: { path: string }): Promise<void> {
  const doc = asyncApiDocument({ path: opts.path, host: 'localhost' })
  const servers = doc.servers as { default: Record<string, unknown> }

  app.get(ASYNCAPI_URL, {
    schema: { summary: 'AsyncAPI 3 document of the WebSocket protocol', tags: ['documentation'] }
  }, async (request) => {
    const server = { ...servers.default, host: request.host, protocol: request.protocol === 'https' ? 'wss' : 'ws' }
    return { ...doc, servers: { default: server } }
  })
}
