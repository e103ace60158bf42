// GET /ws: authentication before the upgrade, then one Session per socket,
// liveness pings, and closing every socket with 1001 on shutdown.
import websocket from '@fastify/websocket'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { CloseCode, UnavailableError } from '../src/errors.js'
import type { NotificationManager } from '../src/manager.js'
import { WsQuery } from '../src/schemas.js'
import { CLOSE_GRACE_MS, Session } from '../src/session.js'
import type { VerifiedToken } from '../src/tokens.js'
import { revokedError, type Auth } from './auth.js'
import { WsTransport } from './ws-transport.js'
import { ErrorResponse } from './rest-schemas.js'

export interface WebsocketRouteOptions {
  manager: NotificationManager
  auth: Auth
  path: string
  heartbeatMs: number
}


/**
 * @fastify/websocket keeps the upgrade's request and reply alive as long as the
 * socket: its error listener closes over them, and the TCP socket still points
 * at the hijacked ServerResponse. For a connection open for hours that is most
 * of its memory, so let them go: one error listener of our own, and the
 * response detached from the socket.
 */
function releaseUpgrade (socket: WebSocket, request: FastifyRequest, response: ServerResponse, onError: (this: WebSocket, err: Error) => void): void {
  socket.removeAllListeners('error')
  socket.on('error', onError)
  response.detachSocket(request.raw.socket)
}

/**
 * Upgrade sockets corked until their session has written `connected` and its first replay page
 * (one write for all of it and the upgrade response). A session whose store answers within the
 * turn (SQLite) releases its socket itself; the end of the turn releases the rest, so a slow store
 * never holds back the upgrade response itself.
 */
const corked = new Set<Socket>()

function releaseCorked (): void {
  for (const socket of corked) socket.uncork()
  corked.clear()
}

function cork (socket: Socket): void {
  if (corked.size === 0) setImmediate(releaseCorked)
  corked.add(socket)
  socket.cork()
}

function uncork (socket: Socket): void {
  if (corked.delete(socket)) socket.uncork()
}

export async function websocketRoute (app: FastifyInstance, opts: WebsocketRouteOptions): Promise<void> {
  const { manager, auth } = opts
  const live = new Map<WebSocket, Session>()
  /** Sessions whose start() (registration, connected, replay) has not finished yet. */
  const starting = new Set<Session>()
  const verified = new WeakMap<FastifyRequest, { token: VerifiedToken, subscriptions: string[], muted: string[], response?: ServerResponse }>()

  async function closeAll (): Promise<void> {
    manager.stopAccepting()
    const closed = [...live.keys()].map(socket => new Promise<void>(resolve => {
      if (socket.readyState === socket.CLOSED) return resolve()
      socket.once('close', () => resolve())
    }))
    for (const session of live.values()) session.close(CloseCode.goingAway, 'server shutting down')
    // Shutdown waits for the 1001 answers as long as one session's close does.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.all(closed), new Promise(resolve => { timer = setTimeout(resolve, CLOSE_GRACE_MS) })])
    clearTimeout(timer)
    for (const socket of live.keys()) socket.terminate()
  }

  if (!app.hasDecorator('websocketServer')) {
    await app.register(websocket, {
      options: { maxPayload: manager.limits.maxPayload, perMessageDeflate: false },
      preClose: function (done) {
        manager.drain().finally(() => app.websocketServer.close(() => done()))
      },
      errorHandler: (err, socket, request) => {
        // ws has already sent the close frame (1009, 1007, 1002); this only records it.
        request.log.warn({ err: { message: err.message, code: (err as { code?: string }).code } }, 'websocket protocol error')
        if (socket.readyState === socket.OPEN) socket.terminate()
      }
    })
  } else {
    app.addHook('preClose', () => manager.drain())
  }
  manager.registerDrain('ws', closeAll)

  // Per-connection state of this plugin, for the leak checks and the stats route: all back to 0 when every socket is gone.
  manager.registerInternals('websocket', () => {
    return { sockets: live.size, starting: starting.size, ...Session.heldBy(live.values()), wsClients: app.websocketServer.clients.size }
  })

  // The socket listeners, shared by every socket (no closures per connection): each finds its session in `live`.
  function onMessage (this: WebSocket, data: WebSocket.RawData, isBinary: boolean): void {
    live.get(this)?.onMessage(data as Buffer, isBinary)
  }
  function onPong (this: WebSocket): void {
    live.get(this)?.onPong()
  }
  function onClose (this: WebSocket, code: number): void {
    const session = live.get(this)
    live.delete(this)
    session?.dispose(code)
  }
  function onError (this: WebSocket, err: Error): void {
    // The app's logger, not request.log: that child logger would be kept alive with the socket.
    app.log.warn({ sessionId: live.get(this)?.id, err: { message: err.message, code: (err as { code?: string }).code } }, 'websocket error')
    this.terminate()
  }

  // One interval for every socket; each session keeps its own count of missed pongs.
  const heartbeat = setInterval(() => {
    for (const session of live.values()) session.heartbeat()
  }, opts.heartbeatMs)
  heartbeat.unref()
  app.addHook('onClose', async () => { clearInterval(heartbeat) })

  app.get<{ Querystring: WsQuery }>(opts.path, {
    websocket: true,
    schema: { querystring: WsQuery, response: { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse } },
    // Runs before the upgrade: a refused client gets an HTTP error and no socket.
    preValidation: async (request) => {
      // Shutting down: refuse new sessions even on a keep-alive connection that is still open.
      if (!manager.accepting) throw new UnavailableError('The notification service is shutting down')
      const token = await auth.unrevokedUser(request, (request.query as { token?: string }).token)
      // The revocation and the muted categories in one read (muted ones are left out even when categories= names them).
      const { revoked, muted } = await manager.handshakeState(token.user, token.issuedAt)
      if (revoked) throw revokedError()
      verified.set(request, { token, subscriptions: [], muted })
    },
    // Synchronous (a callback, not a promise): nothing here waits.
    preHandler: (request, reply, done) => {
      const state = verified.get(request)!
      // The upgrade's ServerResponse, which the socket still points at until released.
      state.response = reply.raw
      try {
        const requested = request.query.categories?.split(',').map(s => s.trim()).filter(s => s !== '')
        state.subscriptions = manager.categoriesFor(state.token.user, requested)
        manager.assertCanConnect(state.token.user)
      } catch (err) {
        done(err as Error)
        return
      }
      // Accepted: the upgrade response is held with `connected` and the replay, to leave in one write
      // (the session releases it; a refused handshake's socket.end() writes it out anyway).
      if (request.ws) cork(request.raw.socket)
      done()
    }
  }, (socket, request) => {
    const { token, subscriptions, muted, response } = verified.get(request)!
    const q = request.query
    const rawSocket = request.raw.socket
    // Absent values as undefined rather than spread in: one object of one shape per connection.
    const session = new Session({
      manager,
      socket: new WsTransport(socket, rawSocket),
      user: token.user,
      expiresAt: token.expiresAt,
      issuedAt: token.issuedAt,
      subscriptions,
      muted,
      legacy: q.legacy === '1' || q.legacy === 'true',
      since: q.since,
      epoch: q.epoch,
      verifyToken: auth.verifyToken,
      log: app.log,
      reqId: request.id,
      release: () => { uncork(rawSocket) }
    })
    live.set(socket, session)
    releaseUpgrade(socket, request, response!, onError)
    // Listeners first, synchronously, before anything awaits: no frame is lost.
    socket.on('message', onMessage)
    socket.on('pong', onPong)
    socket.on('close', onClose)
    starting.add(session)
    void session.start().finally(() => starting.delete(session))
  })
}
