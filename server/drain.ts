// Shutdown for the standalone server: every TCP connection is closed or destroyed
// within the drain, including one that never sent a request and one whose upgrade
// was refused during the drain, so the process exits 0 before close-with-grace's kill.
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'

/** Longest the drain waits for in-flight requests and closing WebSockets before destroying what is left. */
export const DRAIN_MS = 5000

/** How long a connection opened during the drain may stay without sending a request. */
const IDLE_DURING_DRAIN_MS = 1000

export function drainConnections (app: FastifyInstance, drainMs = DRAIN_MS): void {
  const open = new Set<Socket>()
  /** Sockets that have carried a request (or an upgrade): the rest are idle and closed at once. */
  const used = new WeakSet<Socket>()
  let draining = false

  // One listener for every socket: a closure and a once() wrapper each would stay as long as the connection.
  function forget (this: Socket): void {
    open.delete(this)
  }

  app.server.on('connection', (socket: Socket) => {
    open.add(socket)
    socket.on('close', forget)
    // One that opens during the drain gets a moment to ask (and be told 503), not the whole drain.
    if (draining) setTimeout(() => { if (!used.has(socket)) socket.destroy() }, IDLE_DURING_DRAIN_MS).unref()
  })
  app.server.on('request', (req: { socket: Socket }) => { used.add(req.socket) })
  app.server.on('upgrade', (req: { socket: Socket }) => { used.add(req.socket) })

  let timer: NodeJS.Timeout | undefined
  app.addHook('preClose', async () => {
    draining = true
    for (const socket of open) if (!used.has(socket)) socket.destroy()
    timer = setTimeout(() => {
      for (const socket of open) socket.destroy()
    }, drainMs)
    // Never keeps the process alive by itself: it only matters while sockets do.
    timer.unref()
  })
  app.addHook('onClose', async () => { clearTimeout(timer) })
}
