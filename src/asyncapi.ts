// The AsyncAPI 3 document of WebSocket protocol v1, built from the frame table
// and the TypeBox schemas the server checks frames with, so it cannot drift
// from what the server accepts and sends.
import type { TSchema } from '@sinclair/typebox'
import { CloseCode, FrameErrorCode } from './errors.js'
import { CLIENT_FRAME_SCHEMAS, PROTOCOL_VERSION, SERVER_FRAME_SCHEMAS, type ClientFrameType, type ServerFrameType } from './protocol.js'
import { WsQuery } from './schemas.js'

/** What each close code means; typed against CloseCode, so a new code cannot be left out. */
const CLOSE_CODES: Record<CloseCode, string> & Record<number, string> = {
  [CloseCode.normal]: 'normal',
  [CloseCode.goingAway]: 'server shutting down: reconnect with backoff, resume with since',
  1006: 'terminated (seen by the client): missed two pongs, or did not answer a close within 2 s: reconnect, resume',
  1007: 'invalid UTF-8 in a text frame: fix the client',
  [CloseCode.tooBig]: 'frame too big: send smaller frames',
  [CloseCode.internal]: 'internal error: reconnect with backoff, resume',
  [CloseCode.tokenExpired]: 'token expired, or a refresh for another user: get a new token, reconnect, resume',
  [CloseCode.revoked]: 'access revoked: get a new token (do not retry the old one)',
  [CloseCode.policy]: 'policy: too many bad frames or requests: fix the client; long backoff',
  [CloseCode.slowConsumer]: 'slow consumer: reconnect, resume'
}

const CLIENT_FRAMES: Record<ClientFrameType, { summary: string, result: string }> = {
  subscribe_category: { summary: 'Adds categories to the live subscriptions', result: '{subscriptions}' },
  unsubscribe_category: { summary: 'Removes categories from the live subscriptions', result: '{subscriptions}' },
  request_notification_history: { summary: 'A page of the history the user is entitled to, newest first', result: '{notifications, hasMore}' },
  mark_read: { summary: 'Marks notifications (ids) or everything (all) read', result: '{unread}' },
  ping: { summary: 'Application-level ping', result: '{time}' },
  refresh: { summary: 'Replaces the connection\'s token with a newer one for the same user', result: '{expiresAt}' },
  set_preferences: { summary: 'Replaces the user\'s muted categories, on every device at once', result: '{muted, subscriptions}' }
}

const SERVER_FRAMES: Record<ServerFrameType, string> = {
  connected: 'Always the first frame: who the user is, what it may see and is subscribed to, the unread count and the newest seq',
  notification: 'A notification, live or replayed (the audience is never sent)',
  replayed: 'Ends a replay (only when since was given); complete:false when history no longer reaches back to since',
  reply: 'Answers a client frame; id echoes the request\'s id',
  error: `Refuses a client frame; code is one of ${Object.values(FrameErrorCode).join(', ')}`,
  legacy: 'A legacy event, only on connections opened with legacy=1, from adapters that forward them',
  unread: 'The user\'s unread count after a mark_read on any of their connections (or over REST), with the ids or the seq it covers',
  preferences: 'The user\'s muted categories changed (on any device or instance): this connection\'s subscriptions now'
}

/** A TypeBox schema as plain JSON Schema (TypeBox's symbol keys dropped). */
function jsonSchema (schema: TSchema): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>
}

export interface AsyncApiOptions {
  /** The WebSocket route (the root plugin's `path`). */
  path: string
  /** host[:port] clients connect to. */
  host: string
  /** ws, or wss behind TLS. */
  protocol?: 'ws' | 'wss'
  /** The service's version, shown in info. */
  version?: string
}

/** The AsyncAPI 3.0 document of the WebSocket protocol, as a JSON-serialisable object. */
export function asyncApiDocument (opts: AsyncApiOptions): Record<string, unknown> {
  const channelRef = { $ref: '#/channels/notifications' }
  const messageRef = (type: string) => ({ $ref: `#/channels/notifications/messages/${type}` })
  const messages: Record<string, unknown> = {}
  const schemas: Record<string, unknown> = {}
  const operations: Record<string, unknown> = {}

  for (const [type, schema] of Object.entries(SERVER_FRAME_SCHEMAS) as Array<[ServerFrameType, TSchema]>) {
    schemas[`${type}Frame`] = jsonSchema(schema)
    messages[type] = { name: type, title: `${type} (server → client)`, summary: SERVER_FRAMES[type], payload: { $ref: `#/components/schemas/${type}Frame` } }
    operations[`send_${type}`] = { action: 'send', channel: channelRef, summary: SERVER_FRAMES[type], messages: [messageRef(type)] }
  }
  for (const [type, schema] of Object.entries(CLIENT_FRAME_SCHEMAS) as Array<[ClientFrameType, TSchema]>) {
    const { summary, result } = CLIENT_FRAMES[type]
    schemas[`${type}Frame`] = jsonSchema(schema)
    messages[type] = { name: type, title: `${type} (client → server)`, summary, payload: { $ref: `#/components/schemas/${type}Frame` } }
    operations[`receive_${type}`] = {
      action: 'receive',
      channel: channelRef,
      summary,
      description: `Answered with a reply frame whose result is ${result}, or an error frame; answers keep request order.`,
      messages: [messageRef(type)],
      reply: { channel: channelRef, messages: [messageRef('reply'), messageRef('error')] }
    }
  }

  const closeCodes = Object.entries(CLOSE_CODES).map(([code, meaning]) => ({ code: Number(code), meaning }))
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'unified-notifications WebSocket protocol',
      version: opts.version ?? String(PROTOCOL_VERSION),
      description: `Protocol v${PROTOCOL_VERSION}. All frames are JSON text. Authenticate with Authorization: Bearer <JWT> or ?token=; ` +
        'a refused handshake is an HTTP 401/403/400/503 with a JSON error body, and no socket opens. ' +
        `Close codes: ${closeCodes.map(c => `${c.code} ${c.meaning}`).join('; ')}.`
    },
    defaultContentType: 'application/json',
    servers: {
      default: {
        host: opts.host,
        protocol: opts.protocol ?? 'ws',
        description: 'This server, as configured; behind a proxy, use its public host (and wss)',
        security: [{ $ref: '#/components/securitySchemes/bearer' }, { $ref: '#/components/securitySchemes/queryToken' }]
      }
    },
    channels: {
      notifications: {
        address: opts.path,
        title: 'Notifications',
        description: 'One connection per client: the server sends connected first, then (with since) the replay and replayed, then live notifications; ' +
          'the client sends requests, each answered by a reply or an error.',
        messages: Object.fromEntries(Object.keys(messages).map(type => [type, { $ref: `#/components/messages/${type}` }])),
        bindings: {
          ws: {
            method: 'GET',
            query: jsonSchema(WsQuery),
            headers: {
              type: 'object',
              properties: { Authorization: { type: 'string', description: 'Bearer <JWT>; or pass the token as ?token=' } }
            },
            bindingVersion: '0.1.0'
          }
        },
        'x-close-codes': closeCodes
      }
    },
    operations,
    components: {
      schemas,
      messages,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'User JWT (HS256; claims sub, role, exp)' },
        queryToken: { type: 'httpApiKey', name: 'token', in: 'query', description: 'The same JWT as a query parameter, for browsers' }
      }
    }
  }
}
