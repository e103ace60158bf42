// Demo mode (NOTIFY_DEMO=1, never on by default): POST /demo/token signs a
// token for any user and role of the policy, and simulated legacy subsystems
// emit on the three adapters' emitters (maintenance operations that progress
// and complete or fail, health changes, dashboard messages), so the page shows
// the whole system moving. Everything goes through the real adapters and manager.
import type { EventEmitter } from 'node:events'
import { Type, type Static } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import { validatorCompiler } from '../plugins/validation.js'
import { BadRequestError } from '../src/errors.js'

export interface DemoOptions {
  /** The emitters the legacy adapters listen on, by adapter name. */
  emitters: ReadonlyMap<string, EventEmitter>
  /** Whether the role policy knows a role. */
  hasRole: (role: string) => boolean
  /** Signs a token for a user and role. */
  sign: (user: string, role: string) => Promise<string>
  /** One step of the simulation; every event is a number of steps apart. Default 1 s. */
  tickMs?: number
}

const TokenBody = Type.Object({
  user: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.@-]+$' }),
  role: Type.String({ minLength: 1, maxLength: 64 })
}, { additionalProperties: false })
type TokenBody = Static<typeof TokenBody>

const OPERATIONS = ['database-backup', 'index-rebuild', 'cache-warmup', 'schema-migration', 'log-rotation']
const COMPONENTS = ['database', 'cache', 'queue', 'search']
const MESSAGES = [
  ['Report ready', 'Your weekly usage report is ready to download.'],
  ['New comment', 'Someone replied to your ticket.'],
  ['Export finished', 'The CSV export you asked for is complete.'],
  ['Quota warning', 'You have used 80% of your storage.']
] as const
/** Users who asked for a demo token lately get personal messages; bounded, oldest dropped. */
const MAX_RECENT_USERS = 20

export async function demoMode (app: FastifyInstance, opts: DemoOptions): Promise<void> {
  const tickMs = opts.tickMs ?? 1000
  const recentUsers: string[] = ['alice']
  const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!

  app.post<{ Body: TokenBody }>('/demo/token', {
    // The project's strict validation: an unknown field is a 400, not silently dropped.
    validatorCompiler,
    schema: {
      tags: ['demo'],
      summary: 'Demo mode only: a token for any user and role of the policy',
      body: TokenBody,
      response: { 200: Type.Object({ token: Type.String() }) }
    }
  }, async (request) => {
    const { user, role } = request.body
    if (!opts.hasRole(role)) throw new BadRequestError(`Unknown role '${role}'`)
    const i = recentUsers.indexOf(user)
    if (i >= 0) recentUsers.splice(i, 1)
    recentUsers.push(user)
    if (recentUsers.length > MAX_RECENT_USERS) recentUsers.shift()
    return { token: await opts.sign(user, role) }
  })

  const emit = (adapter: string, event: string, payload: unknown) => opts.emitters.get(adapter)?.emit(event, payload)
  const operations = new Map<string, number>()
  let step = 0
  let opCounter = 0

  function tick (): void {
    // Maintenance: a new operation every 6 steps; each running one advances 20% a step, then completes or fails.
    if (step % 6 === 0) {
      const id = `op-${++opCounter}`
      operations.set(id, 0)
      emit('maintenance', 'maintenance_started', { operation_id: id, operation_type: pick(OPERATIONS), estimated_duration: 6 * tickMs / 1000 })
    } else {
      for (const [id, progress] of operations) {
        const next = progress + 20
        if (next < 100) {
          operations.set(id, next)
          emit('maintenance', 'maintenance_progress', { operation_id: id, progress: next })
        } else {
          operations.delete(id)
          if (Math.random() < 0.8) emit('maintenance', 'maintenance_completed', { operation_id: id })
          else emit('maintenance', 'maintenance_failed', { operation_id: id, error: 'Disk quota exceeded on the target volume' })
        }
      }
    }
    // Health: the state of every component every 4 steps; now and then an alert.
    if (step % 4 === 1) {
      const components = Object.fromEntries(COMPONENTS.map(name => {
        const r = Math.random()
        const status = r < 0.8 ? 'healthy' : r < 0.95 ? 'degraded' : 'unhealthy'
        return [name, status === 'healthy' ? { status } : { status, message: status === 'degraded' ? 'slow responses' : 'not answering' }]
      }))
      const statuses = Object.values(components).map(c => c.status)
      const status = statuses.includes('unhealthy') ? 'unhealthy' : statuses.includes('degraded') ? 'degraded' : 'healthy'
      emit('admin-health', 'health_update', { status, components, timestamp: new Date().toISOString() })
      if (status === 'unhealthy') {
        const component = Object.entries(components).find(([, c]) => c.status === 'unhealthy')![0]
        emit('admin-health', 'health_alert', { component, severity: 'critical', message: `${component} is not answering` })
      }
    }
    // Dashboard: a personal message or a broadcast every 5 steps.
    if (step % 5 === 2) {
      const [title, message] = pick(MESSAGES)
      if (step % 10 === 2) {
        emit('dashboard', 'broadcast_notification', { title: 'Announcement', message: 'Scheduled maintenance tonight at 22:00 UTC', notification_type: 'warning' })
      } else {
        emit('dashboard', 'user_notification', { user_id: pick(recentUsers), title, message, notification_type: pick(['info', 'success'] as const) })
      }
    }
    step++
  }

  let timer: NodeJS.Timeout | undefined
  app.addHook('onReady', async () => {
    app.log.warn('NOTIFY_DEMO is on: anyone can get a token from POST /demo/token. Never run it so in production.')
    tick()
    timer = setInterval(tick, tickMs)
  })
  // Before the manager stops accepting publishes, so the last simulated events are not refused.
  app.addHook('preClose', async () => { clearInterval(timer) })
}
