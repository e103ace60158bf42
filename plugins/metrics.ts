// Prometheus metrics: subscribes to the core's event channels (src/events.ts),
// keeps prom-client counters in a registry of its own, and serves them at
// GET /metrics to the same credentials as the stats route.
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { FastifyInstance } from 'fastify'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { CloseCode } from '../src/errors.js'
import {
  events, preciseNow, type ConnectionClosedEvent, type ConnectionOpenedEvent, type DeliveredEvent, type EventChannel,
  type FrameRejectedEvent, type LegacyEvent, type PublishFailedEvent, type PublishedEvent, type ReplayedEvent
} from '../src/events.js'
import type { NotificationManager } from '../src/manager.js'
import type { Auth } from './auth.js'

export const METRIC_PREFIX = 'unified_notifications_'

/** Publish-to-send latency buckets, in seconds: a local delivery is sub-millisecond, a loaded or remote one up to seconds. */
export const PUBLISH_TO_SEND_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** Close codes the peer may send are any of 1000..4999: those outside this set are counted as 'other'. */
const KNOWN_CLOSE_CODES = new Set<number>([...Object.values(CloseCode), 1002, 1005, 1006, 1007])

/** The label value of legacy events an adapter does not map (their names come from the emitter, or a URL). */
export const UNMAPPED_EVENT = 'unmapped'

export function closeCodeLabel (code: number): string {
  return KNOWN_CLOSE_CODES.has(code) ? String(code) : 'other'
}

export interface MetricsOptions {
  /**
   * Registers the metrics in the host app's own registry (which it serves itself):
   * no default process metrics and no /metrics route are added then.
   */
  registry?: Registry
}

/**
 * Increments of a labelled counter, gathered here and added to it when it is
 * read (its collect hook, which prom-client runs on every scrape): prom-client
 * builds, validates and hashes the label set on every inc(), and the publish
 * and delivery paths paid that once per notification. Keyed by one or two
 * label values in nested maps, so counting allocates nothing once a label
 * set has been seen (a joined key string and a closure per call did).
 */
class PendingIncrements {
  readonly #pending = new Map<string, Map<string | undefined, { labels: string[], value: number }>>()

  /** Counts `value` for the label values (`second` only for a counter with two labels). */
  add (first: string, second: string | undefined, value: number): void {
    let inner = this.#pending.get(first)
    if (inner === undefined) {
      inner = new Map()
      this.#pending.set(first, inner)
    }
    const entry = inner.get(second)
    if (entry) entry.value += value
    else inner.set(second, { labels: second === undefined ? [first] : [first, second], value })
  }

  flushInto (counter: Counter<string>): void {
    for (const inner of this.#pending.values()) {
      for (const entry of inner.values()) {
        if (entry.value === 0) continue
        counter.labels(...entry.labels).inc(entry.value)
        entry.value = 0
      }
    }
  }
}

/**
 * Observations of an unlabelled histogram, held and observed when it is read
 * (or when the buffer fills): the same saving for the one observation per
 * delivered notification.
 */
class PendingObservations {
  readonly #values = new Float64Array(1024)
  #length = 0
  #histogram: Histogram | undefined

  attach (histogram: Histogram): void {
    this.#histogram = histogram
  }

  add (value: number): void {
    if (this.#length === this.#values.length) this.flush()
    this.#values[this.#length++] = value
  }

  flush (): void {
    const histogram = this.#histogram
    if (histogram === undefined) return
    for (let i = 0; i < this.#length; i++) histogram.observe(this.#values[i]!)
    this.#length = 0
  }
}

/** The metrics of one manager, fed by the event channels. */
export class NotificationMetrics {
  readonly registry: Registry
  readonly #manager: NotificationManager
  /** The objects this app's events name as their origin: the manager, and what adapters see as `app.notifications`. */
  readonly #origins: ReadonlySet<object>
  readonly #subscriptions: Array<{ name: string, listener: (message: unknown) => void }> = []
  readonly connections: Gauge<'role'>
  readonly connectionsByTransport: Gauge<'transport'>
  readonly published: Counter<'category' | 'source'>
  readonly publishFailures: Counter<'code'>
  readonly delivered: Counter<'category'>
  readonly publishToSend: Histogram
  readonly replayed: Counter
  readonly framesRejected: Counter<'code'>
  readonly closes: Counter<'code'>
  readonly legacyEvents: Counter<'adapter' | 'event' | 'outcome'>
  readonly #publishedPending = new PendingIncrements()
  readonly #deliveredPending = new PendingIncrements()
  readonly #publishToSendPending = new PendingObservations()

  constructor (manager: NotificationManager, registry: Registry, decorator: object = manager) {
    this.#manager = manager
    this.#origins = new Set([manager, decorator])
    this.registry = registry
    const registers = [registry]
    this.connections = new Gauge({ name: `${METRIC_PREFIX}connections`, help: 'Open client connections on this instance', labelNames: ['role'], registers })
    // Its own gauge, not a second label on `connections`: that would split the series dashboards already query by role.
    // Read from the registry at scrape time, so it cannot drift from what the stats route says.
    this.connectionsByTransport = new Gauge({
      name: `${METRIC_PREFIX}connections_by_transport`,
      help: 'Open client connections on this instance, by door (ws: /ws, socketio: the Socket.IO endpoint)',
      labelNames: ['transport'],
      registers,
      collect () {
        for (const [transport, count] of Object.entries(manager.stats().transports)) this.labels(transport).set(count)
      }
    })
    const publishedPending = this.#publishedPending
    const deliveredPending = this.#deliveredPending
    this.published = new Counter({
      name: `${METRIC_PREFIX}published_total`,
      help: 'Notifications accepted and stored (duplicates not counted)',
      labelNames: ['category', 'source'],
      registers,
      collect () { publishedPending.flushInto(this) }
    })
    this.publishFailures = new Counter({
      name: `${METRIC_PREFIX}publish_failures_total`,
      help: 'Publishes refused or failed, by error code (UN_UNAVAILABLE is a 503: not accepting, or the store is down)',
      labelNames: ['code'],
      registers
    })
    this.delivered = new Counter({
      name: `${METRIC_PREFIX}delivered_total`,
      help: 'Notification frames written to connections on this instance',
      labelNames: ['category'],
      registers,
      collect () { deliveredPending.flushInto(this) }
    })
    const publishToSendPending = this.#publishToSendPending
    this.publishToSend = new Histogram({
      name: `${METRIC_PREFIX}publish_to_send_seconds`,
      help: 'From the publish call to the write of the notification to its recipients\' sockets on this instance, per notification',
      buckets: PUBLISH_TO_SEND_BUCKETS,
      registers,
      collect () { publishToSendPending.flush() }
    })
    publishToSendPending.attach(this.publishToSend)
    this.replayed = new Counter({ name: `${METRIC_PREFIX}replayed_total`, help: 'Notifications replayed to resuming connections', registers })
    this.framesRejected = new Counter({ name: `${METRIC_PREFIX}frames_rejected_total`, help: 'Client frames answered with an error frame, by error code', labelNames: ['code'], registers })
    this.closes = new Counter({ name: `${METRIC_PREFIX}closes_total`, help: 'Closed connections, by close code (codes outside the protocol\'s are "other")', labelNames: ['code'], registers })
    this.legacyEvents = new Counter({
      name: `${METRIC_PREFIX}legacy_events_total`,
      help: 'Legacy events received by the adapters, by outcome (unmapped event names are "unmapped")',
      labelNames: ['adapter', 'event', 'outcome'],
      registers
    })
    // Known label values start at 0, so rate() and alerts see a series before its first event.
    for (const role of manager.policy.roles()) this.connections.labels(role).set(0)
    for (const category of manager.policy.categories) this.delivered.labels(category).inc(0)
    this.publishFailures.labels('UN_UNAVAILABLE').inc(0)
  }

  /** Subscribes to the event channels; only this manager's events are counted. */
  start (): void {
    this.#on<PublishedEvent>(events.published, e => {
      this.#publishedPending.add(e.notification.category, e.notification.source, 1)
    })
    this.#on<PublishFailedEvent>(events.publishFailed, e => this.publishFailures.labels(e.code).inc())
    this.#on<DeliveredEvent>(events.delivered, e => {
      if (e.recipients === 0) return
      this.#deliveredPending.add(e.notification.category, undefined, e.recipients)
      if (e.publishedAt !== undefined) this.#publishToSendPending.add(Math.max(0, preciseNow() - e.publishedAt) / 1000)
    })
    this.#on<ReplayedEvent>(events.replayed, e => this.replayed.inc(e.count))
    this.#on<FrameRejectedEvent>(events.frameRejected, e => this.framesRejected.labels(e.code).inc())
    this.#on<ConnectionOpenedEvent>(events.connectionOpened, e => this.connections.labels(e.user.role).inc())
    this.#on<ConnectionClosedEvent>(events.connectionClosed, e => {
      this.connections.labels(e.user.role).dec()
      this.closes.labels(closeCodeLabel(e.code)).inc()
    })
    this.#on<LegacyEvent>(events.legacyEvent, e => this.legacyEvents.labels(e.adapter, e.mapped ? e.event : UNMAPPED_EVENT, e.outcome).inc())
  }

  #on<T extends { origin: object }> (channel: EventChannel<T>, count: (event: T) => void): void {
    const manager = this.#manager
    const origins = this.#origins
    const listener = (message: unknown): void => {
      const event = message as T
      if (!origins.has(event.origin)) return
      // diagnostics_channel rethrows a subscriber's error as an uncaught exception: a metric must never do that.
      try {
        count(event)
      } catch (err) {
        manager.log.error({ err, channel: String(channel.name) }, 'metrics: event not counted')
      }
    }
    const name = String(channel.name)
    subscribe(name, listener)
    this.#subscriptions.push({ name, listener })
  }

  stop (): void {
    for (const { name, listener } of this.#subscriptions) unsubscribe(name, listener)
    this.#subscriptions.length = 0
  }
}

/** Registers the metrics of `manager`, and GET /metrics unless the host app brought its own registry. */
export async function metricsRoute (app: FastifyInstance, opts: { manager: NotificationManager, auth: Auth, metrics: MetricsOptions }): Promise<void> {
  const own = opts.metrics.registry === undefined
  const registry = opts.metrics.registry ?? new Registry()
  if (own) collectDefaultMetrics({ register: registry })
  const metrics = new NotificationMetrics(opts.manager, registry, app.notifications)
  metrics.start()
  app.addHook('onClose', async () => {
    metrics.stop()
    if (own) registry.clear()
  })
  if (!own) return

  app.get('/metrics', {
    schema: {
      summary: 'Prometheus metrics (text exposition format)',
      description: 'The unified_notifications_* metrics and the default process metrics; see docs/operations.md, "Monitoring".',
      tags: ['operations'],
      security: [{ bearer: [] }],
      produces: ['text/plain']
    },
    onRequest: opts.auth.requirePublisher
  }, async (_request, reply) => {
    const text = await registry.metrics()
    return reply.type(registry.contentType).send(text)
  })
}
