// The Socket.IO door (for old front ends during a migration): socket.io's own
// server on Fastify's HTTP server, authentication in a namespace middleware,
// then one Session per socket, exactly as /ws, on the same manager.
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyInstance } from 'fastify'
import { Server, type Socket } from 'socket.io'
import { BadRequestError, CloseCode, UnavailableError } from '../src/errors.js'
import type { NotificationManager } from '../src/manager.js'
import { CLOSE_GRACE_MS, Session } from '../src/session.js'
import type { VerifiedToken } from '../src/tokens.js'
import type { Auth } from './auth.js'
import { SocketIoTransport } from './socketio-transport.js'

export interface SocketIoRouteOptions {
  manager: NotificationManager
  auth: Auth
  /** Where Socket.IO is served, default '/socket.io/'. */
  path: string
  /** Origins whose pages may use long-polling across origins ('*': any); none: same origin only. */
  corsOrigins?: readonly string[]
  /** engine.io's ping interval (the /ws heartbeat's). */
  heartbeatMs: number
  /** The upgrade listeners that route through Fastify (@fastify/websocket's): Socket.IO's upgrades are kept from them. */
  routedUpgrades: readonly Function[]
}

/** What a page may put in its handshake `auth` (or the query string): the /ws query, as Socket.IO carries it. */
const HandshakeAuth = Type.Object({
  token: Type.Optional(Type.String({ minLength: 1, maxLength: 8192 })),
  since: Type.Optional(Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: '^\\d{1,15}$' })])),
  epoch: Type.Optional(Type.String({ maxLength: 64 })),
  categories: Type.Optional(Type.Union([
    Type.Array(Type.String({ maxLength: 64 }), { maxItems: 64 }),
    Type.String({ maxLength: 2048, description: 'Comma-separated' })
  ]))
})
type HandshakeAuth = Static<typeof HandshakeAuth>
const checkHandshake = TypeCompiler.Compile(HandshakeAuth)

interface Admitted {
  token: VerifiedToken
  subscriptions: string[]
  since?: number
  epoch?: string
}

/** The connect_error a refused handshake gets: the HTTP status /ws would answer, as a word. */
function refusal (err: unknown): Error & { data?: unknown } {
  const status = (err as { statusCode?: number }).statusCode
  const word = status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : status === 400 ? 'bad_request' : status === 503 ? 'unavailable' : 'internal'
  const out: Error & { data?: unknown } = new Error(word)
  if (word !== 'internal') out.data = { code: (err as { code?: string }).code, message: (err as Error).message }
  return out
}

function pick (auth: Record<string, unknown>, query: Record<string, unknown>, key: keyof HandshakeAuth): unknown {
  return auth[key] ?? query[key]
}

export async function socketIoRoute (app: FastifyInstance, opts: SocketIoRouteOptions): Promise<void> {
  const { manager, auth } = opts
  const io = new Server({
    path: opts.path,
    serveClient: false,
    maxHttpBufferSize: manager.limits.maxPayload,
    pingInterval: opts.heartbeatMs,
    perMessageDeflate: false,
    // engine.io answers its path's requests itself: the host's CORS plugin never sees a polling request.
    ...(opts.corsOrigins !== undefined
      ? { cors: { origin: opts.corsOrigins.includes('*') ? '*' : [...opts.corsOrigins], methods: ['GET', 'POST'] } }
      : {}),
    // Shutting down: refuse the engine.io handshake itself, so no new connection outlives the drain.
    allowRequest: (_req, callback) => { callback(manager.accepting ? null : 'shutting down', manager.accepting) }
  })
  // engine.io matches the path as a prefix ending in '/', as socket.io normalises it.
  const prefix = io.path() + '/'
  const live = new Map<Socket, Session>()
  const starting = new Set<Session>()
  const admitted = new WeakMap<Socket, Admitted>()

  // @fastify/websocket routes every upgrade through Fastify (a 404, then the socket destroyed, for
  // Socket.IO's path): its listener sees every upgrade but Socket.IO's. Other listeners see them all.
  type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void
  const server = app.server
  const routed = opts.routedUpgrades as UpgradeListener[]
  for (const listener of routed) server.removeListener('upgrade', listener)
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (req.url?.startsWith(prefix) === true) return
    for (const listener of routed) listener.call(server, req, socket, head)
  })
  // engine.io takes its path's requests from the one listener it wraps: Fastify's router alone, so
  // that other request listeners (connection bookkeeping) still see every request.
  const others = server.listeners('request').filter(l => l !== app.routing) as Array<(...args: unknown[]) => void>
  for (const listener of others) server.removeListener('request', listener)
  // Its own upgrade listener takes only its path.
  io.attach(server, { destroyUpgrade: false })
  for (const listener of others) server.prependListener('request', listener)

  io.use((socket, next) => {
    admit(socket).then(a => { admitted.set(socket, a); next() }, err => {
      if (refusal(err).message === 'internal') app.log.error({ err }, 'socket.io handshake failed')
      next(refusal(err))
    })
  })

  async function admit (socket: Socket): Promise<Admitted> {
    if (!manager.accepting) throw new UnavailableError('The notification service is shutting down')
    const handshake = socket.handshake
    const fromClient = typeof handshake.auth === 'object' && handshake.auth !== null ? handshake.auth : {}
    const values: Record<string, unknown> = {}
    for (const key of ['token', 'since', 'epoch', 'categories'] as const) {
      const value = pick(fromClient, handshake.query, key)
      if (value !== undefined) values[key] = value
    }
    if (!checkHandshake.Check(values)) {
      const first = checkHandshake.Errors(values).First()
      throw new BadRequestError(`handshake auth${first?.path ?? ''} ${first?.message ?? 'is invalid'}`)
    }
    const header = /^Bearer\s+(\S+)\s*$/i.exec(handshake.headers.authorization ?? '')?.[1]
    const tokens = new Set([fromClient.token, handshake.query.token, header].filter(v => v !== undefined))
    if (tokens.size > 1) throw new BadRequestError('Ambiguous credentials: auth.token, ?token= and the Authorization header carry different tokens; send one')
    const token = await auth.userFromToken(values.token ?? header)
    const requested = typeof values.categories === 'string'
      ? values.categories.split(',').map(s => s.trim()).filter(s => s !== '')
      : values.categories
    const subscriptions = manager.categoriesFor(token.user, requested)
    manager.assertCanConnect(token.user)
    return {
      token,
      subscriptions,
      ...(values.since !== undefined ? { since: Number(values.since) } : {}),
      ...(values.epoch !== undefined ? { epoch: values.epoch } : {})
    }
  }

  io.on('connection', (socket) => {
    const a = admitted.get(socket)!
    admitted.delete(socket)
    const transport = new SocketIoTransport(socket)
    const session = new Session({
      manager,
      socket: transport,
      user: a.token.user,
      ...(a.token.expiresAt !== undefined ? { expiresAt: a.token.expiresAt } : {}),
      // The check after registration compares it with a revocation cut; without it any cut in force refuses.
      ...(a.token.issuedAt !== undefined ? { issuedAt: a.token.issuedAt } : {}),
      subscriptions: a.subscriptions,
      ...(a.since !== undefined ? { since: a.since } : {}),
      ...(a.epoch !== undefined ? { epoch: a.epoch } : {}),
      ...(auth.verifyToken ? { verifyToken: auth.verifyToken } : {}),
      log: app.log,
      transport: 'socketio'
    })
    live.set(socket, session)
    // Listeners first, synchronously, before anything awaits: no event is lost.
    transport.bind(session)
    socket.on('disconnect', () => {
      live.delete(socket)
      session.dispose()
    })
    starting.add(session)
    void session.start().finally(() => starting.delete(session))
  })

  manager.registerDrain('socketio', async () => {
    const gone = [...live.keys()].map(socket => new Promise<void>(resolve => {
      if (socket.disconnected) return resolve()
      socket.once('disconnect', () => resolve())
    }))
    for (const session of live.values()) session.close(CloseCode.goingAway, 'server shutting down')
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.all(gone), new Promise(resolve => { timer = setTimeout(resolve, CLOSE_GRACE_MS) })])
    clearTimeout(timer)
    // Whoever is left (and any engine.io connection still in its handshake) is cut off.
    io.engine.close()
  })

  manager.registerInternals('socketio', () => {
    return { sockets: live.size, starting: starting.size, ...Session.heldBy(live.values()), engineClients: io.engine.clientsCount }
  })
}
