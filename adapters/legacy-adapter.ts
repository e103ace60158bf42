// What every legacy adapter shares: listening on the legacy emitter, checking
// each payload against its TypeBox schema, counting (the migration report),
// logging, publishing through `app.notifications`, and removing its listeners
// when the app closes. An adapter itself is only a table of mappings
// (legacy event → schema → publish input), given to defineAdapter().
import type { EventEmitter } from 'node:events'
import type { Static, TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { DataTooDeepError, InvalidLegacyPayloadError, UnavailableError, isInputError } from '../src/errors.js'
import { nestedDeeperThan } from '../src/json-depth.js'
import { events, type LegacyEvent } from '../src/events.js'
import type { Logger } from '../src/logger.js'
import { MAX_DATA_DEPTH, type PublishInput } from '../src/schemas.js'
import type { LegacyAdapter, LegacyOutcome } from '../src/legacy-adapters.js'
import type { AdapterReport, LegacyEventReport } from '../src/migration-report.js'

/** The root plugin's fastify-plugin name, which every adapter depends on. */
const ROOT_PLUGIN = 'unified-notifications'

/** How one legacy event becomes a notification. */
export interface LegacyEventMapping<S extends TSchema = TSchema> {
  /** The legacy payload's shape. Compiled once, when the adapter is defined. */
  schema: S
  /** A valid payload → what to publish. Pure: the adapter adds `source` and the legacy frame. */
  toPublish: (payload: Static<S>) => PublishInput
  /** The unified call to use instead, named in the one-time deprecation warning. */
  replacement: string
}

export interface AdapterDefinition<E extends Record<string, TSchema>> {
  /** The adapter's name: the notifications' `source`, the report key, the ingest route segment. */
  name: string
  events: { [K in keyof E]: LegacyEventMapping<E[K]> }
}

export interface LegacyAdapterOptions {
  /** The legacy subsystem's EventEmitter. Required when enabled. */
  emitter: EventEmitter
  /** false: the plugin registers nothing (no listener, no report). Default true. */
  enabled?: boolean
  /** Also send {"type":"legacy","event","data"} to connections opened with legacy=1. Default false. */
  forwardLegacyEvents?: boolean
}

export const ADAPTER_DEFAULTS = { enabled: true, forwardLegacyEvents: false } as const

export type { LegacyAdapter, LegacyOutcome }

// ---- payload checks -------------------------------------------------------------

interface CompiledMapping {
  check: TypeCheck<TSchema>
  toPublish: (payload: never) => PublishInput
  replacement: string
}

/** Own keys that would rewrite a prototype if the payload were ever merged into another object. */
function pollutingPath (value: unknown): string | undefined {
  // Iterative: a deeply nested payload must not overflow the stack.
  const stack: Array<{ v: unknown, path: string }> = [{ v: value, path: '' }]
  while (stack.length > 0) {
    const { v, path } = stack.pop()!
    if (typeof v !== 'object' || v === null) continue
    for (const key of Object.keys(v)) {
      const child = (v as Record<string, unknown>)[key]
      if (key === '__proto__') return `${path}/__proto__`
      if (key === 'constructor' && typeof child === 'object' && child !== null && Object.hasOwn(child, 'prototype')) return `${path}/constructor/prototype`
      stack.push({ v: child, path: `${path}/${key}` })
    }
  }
  return undefined
}

/**
 * A JSON snapshot of the payload, so a later mutation by the emitter cannot
 * change what is published or forwarded; or why there is none.
 */
function snapshot (payload: unknown): { ok: true, value: unknown } | { ok: false, reason: string } {
  if (payload === undefined) return { ok: false, reason: 'no payload' }
  let text: string | undefined
  try {
    text = JSON.stringify(payload)
  } catch (err) {
    return { ok: false, reason: `not serialisable as JSON (${(err as Error).message})` }
  }
  if (text === undefined) return { ok: false, reason: `a ${typeof payload} is not a JSON value` }
  return { ok: true, value: JSON.parse(text) }
}

/** A payload's `data` sits one level inside it: the payload may nest one level more than `data` may. */
const MAX_PAYLOAD_DEPTH = MAX_DATA_DEPTH + 1

function checkPayload (mapping: CompiledMapping, payload: unknown): { ok: true, value: unknown } | { ok: false, reason: string } | { ok: false, error: Error } {
  // Before the snapshot: serialising a payload nested thousands deep overflows the stack.
  if (nestedDeeperThan(payload, MAX_PAYLOAD_DEPTH)) return { ok: false, error: new DataTooDeepError(MAX_DATA_DEPTH) }
  const snap = snapshot(payload)
  if (!snap.ok) return snap
  const polluting = pollutingPath(snap.value)
  if (polluting !== undefined) return { ok: false, reason: `${polluting} is a forbidden key` }
  if (!mapping.check.Check(snap.value)) {
    const first = mapping.check.Errors(snap.value).First()
    return { ok: false, reason: `${first?.path || '/'} ${first?.message ?? 'is invalid'}` }
  }
  return snap
}

// ---- unmapped events -----------------------------------------------------------
//
// An EventEmitter has no catch-all listener, so the adapters wrap `emit` on the
// emitter instance, once per emitter however many adapters share it. The
// wrapper only counts; it always calls the original emit with the same
// arguments. The last adapter to leave restores the emitter as it was.

interface Tap {
  maps (event: string): boolean
  unmapped (event: string): void
}

interface WrappedEmitter {
  taps: Set<Tap>
  wrapper: EventEmitter['emit']
  original: EventEmitter['emit']
  hadOwnEmit: boolean
}

const wrappedEmitters = new WeakMap<EventEmitter, WrappedEmitter>()
/** Emitted by EventEmitter itself, never by legacy code. */
const INTERNAL_EVENTS = new Set(['newListener', 'removeListener'])

function tapEmitter (emitter: EventEmitter, tap: Tap): () => void {
  let w = wrappedEmitters.get(emitter)
  if (w === undefined) {
    const taps = new Set<Tap>()
    const original = emitter.emit
    const wrapper = function (this: EventEmitter, event: string | symbol, ...args: unknown[]): boolean {
      if (typeof event === 'string' && !INTERNAL_EVENTS.has(event)) {
        try {
          let known = false
          for (const t of taps) if (t.maps(event)) known = true
          if (!known) for (const t of taps) t.unmapped(event)
        } catch {}
      }
      return original.apply(this, [event, ...args])
    }
    w = { taps, wrapper, original, hadOwnEmit: Object.hasOwn(emitter, 'emit') }
    emitter.emit = wrapper
    wrappedEmitters.set(emitter, w)
  }
  const entry = w
  entry.taps.add(tap)
  return () => {
    entry.taps.delete(tap)
    if (entry.taps.size > 0) return
    wrappedEmitters.delete(emitter)
    // Someone wrapped emit after us: leave their wrapper in place (ours now only passes through).
    if (emitter.emit !== entry.wrapper) return
    if (entry.hadOwnEmit) emitter.emit = entry.original
    else delete (emitter as { emit?: unknown }).emit
  }
}

// ---- the adapter ----------------------------------------------------------------

/** How many distinct unmapped event names the report keeps apart. */
const MAX_UNMAPPED_NAMES = 100

function isEmitter (value: unknown): value is EventEmitter {
  const e = value as Partial<EventEmitter> | null | undefined
  return typeof e === 'object' && e !== null && typeof e.on === 'function' && typeof e.removeListener === 'function' && typeof e.emit === 'function'
}

function resolveOptions (name: string, opts: Partial<LegacyAdapterOptions>): { enabled: boolean, forwardLegacyEvents: boolean, emitter?: EventEmitter } {
  const fail = (message: string): never => { throw new TypeError(`unified-notifications ${name} adapter: ${message}`) }
  const enabled = opts.enabled ?? ADAPTER_DEFAULTS.enabled
  if (typeof enabled !== 'boolean') fail('enabled must be a boolean')
  const forwardLegacyEvents = opts.forwardLegacyEvents ?? ADAPTER_DEFAULTS.forwardLegacyEvents
  if (typeof forwardLegacyEvents !== 'boolean') fail('forwardLegacyEvents must be a boolean')
  if (!enabled) return { enabled, forwardLegacyEvents }
  if (!isEmitter(opts.emitter)) fail('emitter must be an EventEmitter')
  return { enabled, forwardLegacyEvents, emitter: opts.emitter! }
}

class RunningAdapter implements LegacyAdapter {
  readonly events: readonly string[]
  readonly #app: FastifyInstance
  readonly #log: Logger
  readonly #mappings: ReadonlyMap<string, CompiledMapping>
  readonly #counters = new Map<string, LegacyEventReport>()
  readonly #deprecationLogged = new Set<string>()
  readonly #unmapped = { received: 0, events: new Map<string, number>() }
  readonly #listeners = new Map<string, (payload: unknown) => void>()
  #untap: (() => void) | undefined
  /** Set by ingest() around its emit, so the listener hands back the outcome of that very payload. */
  #capture: ((outcome: Promise<LegacyOutcome>) => void) | undefined

  constructor (
    readonly name: string,
    mappings: ReadonlyMap<string, CompiledMapping>,
    readonly emitter: EventEmitter,
    readonly forwardLegacyEvents: boolean,
    app: FastifyInstance
  ) {
    this.#app = app
    this.#mappings = mappings
    this.events = [...mappings.keys()]
    this.#log = app.log.child({ adapter: name })
    for (const event of this.events) this.#counters.set(event, { received: 0, published: 0, rejected: 0, failed: 0, lastSeenAt: null })
  }

  attach (): void {
    for (const event of this.events) {
      const listener = (payload: unknown): void => {
        const outcome = this.#handle(event, payload)
        const capture = this.#capture
        this.#capture = undefined
        capture?.(outcome)
      }
      this.#listeners.set(event, listener)
      this.emitter.on(event, listener)
    }
    this.#untap = tapEmitter(this.emitter, {
      maps: event => this.#mappings.has(event),
      unmapped: event => this.#countUnmapped(event)
    })
  }

  detach (): void {
    for (const [event, listener] of this.#listeners) this.emitter.removeListener(event, listener)
    this.#listeners.clear()
    this.#untap?.()
    this.#untap = undefined
  }

  async ingest (event: string, payload: unknown): Promise<LegacyOutcome> {
    if (!this.#mappings.has(event)) {
      this.#countUnmapped(event)
      return { status: 'unmapped' }
    }
    let outcome: Promise<LegacyOutcome> | undefined
    this.#capture = p => { outcome = p }
    try {
      this.emitter.emit(event, payload)
    } finally {
      this.#capture = undefined
    }
    // Not listening any more (closing): handle it directly, counted the same way.
    return outcome ?? this.#handle(event, payload)
  }

  /** Reports one legacy payload's outcome on the event seam (the metrics count it). */
  #report (event: string, mapped: boolean, outcome: LegacyEvent['outcome']): void {
    if (events.legacyEvent.hasSubscribers) {
      events.legacyEvent.publish({ origin: this.#app.notifications, adapter: this.name, event, mapped, outcome })
    }
  }

  #countUnmapped (event: string): void {
    this.#report(event, false, 'rejected')
    this.#unmapped.received++
    const seen = this.#unmapped.events.get(event)
    if (seen !== undefined) this.#unmapped.events.set(event, seen + 1)
    else if (this.#unmapped.events.size < MAX_UNMAPPED_NAMES) this.#unmapped.events.set(event, 1)
  }

  /** Validates, maps, publishes and counts one payload. Never rejects and never throws. */
  async #handle (event: string, payload: unknown): Promise<LegacyOutcome> {
    const counter = this.#counters.get(event)!
    const mapping = this.#mappings.get(event)!
    counter.received++
    counter.lastSeenAt = new Date().toISOString()
    try {
      if (!this.#deprecationLogged.has(event)) {
        this.#deprecationLogged.add(event)
        this.#log.warn({ event, replacement: mapping.replacement },
          `legacy event '${event}' is deprecated: use ${mapping.replacement} instead`)
      }
      const checked = checkPayload(mapping, payload)
      if (!checked.ok) return this.#reject(counter, event, 'error' in checked ? checked.error : new InvalidLegacyPayloadError(event, checked.reason))
      const input = mapping.toPublish(checked.value as never)
      const { notification } = await this.#app.notifications.publish(input, {
        source: this.name,
        ...(this.forwardLegacyEvents ? { legacy: { event, data: checked.value } } : {})
      })
      counter.published++
      this.#report(event, true, 'published')
      return { status: 'published', notification }
    } catch (err) {
      // The notification built from a valid payload can still be refused (data over 16 KiB): the payload's fault.
      if (isInputError(err)) return this.#reject(counter, event, err as Error)
      counter.failed++
      this.#report(event, true, 'failed')
      try {
        // Not accepting (starting, shutting down) is an expected moment; anything else is a fault.
        if (err instanceof UnavailableError) this.#log.warn({ event, err }, `legacy event '${event}' arrived while the service is not accepting: dropped`)
        else this.#log.error({ event, err }, `legacy event '${event}' could not be published: dropped`)
      } catch {}
      return { status: 'failed', error: err }
    }
  }

  #reject (counter: LegacyEventReport, event: string, error: Error): LegacyOutcome {
    counter.rejected++
    this.#report(event, true, 'rejected')
    // The reason names the failing path, never the payload itself (it may carry personal data).
    this.#log.warn({ event, reason: error.message }, `legacy '${event}' payload rejected: dropped`)
    return { status: 'rejected', error }
  }

  report (): AdapterReport {
    const events: Record<string, LegacyEventReport> = {}
    for (const [event, c] of this.#counters) events[event] = { ...c }
    return {
      forwardLegacyEvents: this.forwardLegacyEvents,
      events,
      unmapped: { received: this.#unmapped.received, events: Object.fromEntries(this.#unmapped.events) }
    }
  }
}

/**
 * Builds a legacy adapter plugin from its mappings. Schemas are compiled here,
 * once, when the adapter's module loads.
 */
export function defineAdapter<E extends Record<string, TSchema>> (def: AdapterDefinition<E>): FastifyPluginAsync<LegacyAdapterOptions> {
  const { name } = def
  const mappings = new Map<string, CompiledMapping>()
  for (const [event, m] of Object.entries(def.events) as Array<[string, LegacyEventMapping]>) {
    mappings.set(event, { check: TypeCompiler.Compile(m.schema), toPublish: m.toPublish as CompiledMapping['toPublish'], replacement: m.replacement })
  }

  async function legacyAdapterPlugin (app: FastifyInstance, rawOptions: LegacyAdapterOptions): Promise<void> {
    const opts = resolveOptions(name, rawOptions ?? {})
    if (!opts.enabled) return
    const registry = app.legacyAdapters
    if (registry.has(name)) throw new Error(`unified-notifications: the ${name} adapter is already registered`)

    const adapter = new RunningAdapter(name, mappings, opts.emitter!, opts.forwardLegacyEvents, app)
    adapter.attach()
    registry.set(name, adapter)
    app.notifications.registerMigrationReport(name, () => adapter.report())
    app.addHook('onClose', async () => {
      adapter.detach()
      registry.delete(name)
      app.notifications.unregisterMigrationReport(name)
    })
  }

  return fp(legacyAdapterPlugin, {
    name: `unified-notifications-${name}-adapter`,
    fastify: '5.x',
    dependencies: [ROOT_PLUGIN]
  })
}
