// Fan-out between instances through one Redis Stream. Every instance runs one
// XREAD BLOCK loop on a dedicated connection from the last id it read, so a
// message published while an instance is disconnected is read when it
// reconnects (plain pub/sub would drop it), and every instance reads the same
// entries in the same order. Paired with the RedisStore, the store's append
// script has already added each notification to the stream, in seq order;
// publish() then adds nothing for it.
import type { Redis } from 'ioredis'
import { UnavailableError } from '../errors.js'
import type { Logger } from '../logger.js'
import { keyspace, openRedis, ready, type RedisConnectionOptions, type RedisSource } from '../redis/connection.js'
import type { StoredNotification } from '../schemas.js'
import { DEFAULT_REDIS_PREFIX, DEFAULT_STREAM_MAX_LEN, type RedisFanout } from '../stores/redis-store.js'
import type { Broker, BrokerHandler, BrokerMessage, ControlHandler, ControlMessage } from './broker.js'

export interface RedisBrokerOptions extends RedisConnectionOptions {
  /** The Redis to use when not paired with a store (URL, ioredis instance or factory). */
  redis?: RedisSource
  /** Key prefix of the deployment (NOTIFY_REDIS_PREFIX). */
  prefix?: string
  /** The RedisStore's stream, read once the store is open: the store appends notifications to it. */
  fanout?: () => RedisFanout
  streamMaxLen?: number
  /** How long one XREAD blocks before it is issued again. */
  blockMs?: number
  log?: Logger
  /** This instance's id: the reading connection is named '<name>:reader' (CLIENT LIST shows who reads). */
  name?: string
}

type Entry = [id: string, fields: string[]]

/** Stream ids compared as (ms, seq) pairs. */
function idAfter (a: string, b: string): boolean {
  const [am, as] = a.split('-').map(Number) as [number, number]
  const [bm, bs] = b.split('-').map(Number) as [number, number]
  return am > bm || (am === bm && as > bs)
}

function unavailable (err: unknown): Error {
  return new UnavailableError(`Redis did not answer: ${err instanceof Error ? err.message : String(err)}`)
}

export class RedisBroker implements Broker {
  readonly #opts: RedisBrokerOptions
  readonly #streamMaxLen: number
  readonly #blockMs: number
  #fanout: RedisFanout | undefined
  #client: Redis | undefined
  #ownsClient = false
  #reader: Redis | undefined
  #stream = ''
  #handler: BrokerHandler | undefined
  #control: ControlHandler | undefined
  /** The last stream id read: reading resumes after it, also after a reconnect. */
  #lastId = '0-0'
  /** Highest seq delivered; 0 until known. A lower or equal seq is a duplicate, a higher one past +1 a gap. */
  #lastSeq = 0
  #epoch: string | undefined
  #closing = false
  #loop: Promise<void> | undefined
  #outage = false

  constructor (opts: RedisBrokerOptions) {
    if (opts.redis === undefined && opts.fanout === undefined) throw new TypeError('RedisBroker needs redis or fanout')
    this.#opts = opts
    this.#streamMaxLen = opts.streamMaxLen ?? DEFAULT_STREAM_MAX_LEN
    this.#blockMs = opts.blockMs ?? 5000
  }

  /** Whether the store's append script fans notifications out (publish() then adds nothing for them). */
  get paired (): boolean {
    return this.#opts.fanout !== undefined
  }

  async start (handler: BrokerHandler, control?: ControlHandler): Promise<void> {
    if (this.#opts.fanout) {
      this.#fanout = this.#opts.fanout()
      this.#client = this.#fanout.client
      this.#stream = this.#fanout.stream
    } else {
      this.#client = await openRedis(this.#opts.redis!, this.#opts)
      this.#ownsClient = true
      this.#stream = keyspace(this.#opts.prefix ?? DEFAULT_REDIS_PREFIX) + 'stream'
    }
    // Blocking reads get their own connection; its timeout covers the block.
    // A read pending when the connection drops is sent again on reconnect, from the same id.
    const reader = this.#client.duplicate({
      lazyConnect: true,
      enableOfflineQueue: false,
      ...(this.#opts.name !== undefined ? { connectionName: `${this.#opts.name}:reader` } : {}),
      commandTimeout: this.#blockMs + (this.#opts.commandTimeoutMs ?? 2000)
    })
    reader.on('error', () => {})
    await ready(reader)
    this.#reader = reader
    // Start at the stream's current end, a concrete id ('$' would skip whatever is added between two
    // reads). Paired, the store's counter is read in the same step: the stream holds every seq up to it.
    // The epoch is read with them, so a log lost before the first entry arrives is seen as a new one.
    const tx = this.#client.multi().xrevrange(this.#stream, '+', '-', 'COUNT', 1)
    if (this.#fanout) tx.hget(this.#fanout.meta, 'seq').hget(this.#fanout.meta, 'epoch')
    const replies = await tx.exec()
    const last = (replies?.[0]?.[1] ?? []) as Entry[]
    if (last.length > 0) this.#lastId = last[0]![0]
    if (this.#fanout) {
      this.#lastSeq = Number(replies?.[1]?.[1] ?? 0)
      const epoch = replies?.[2]?.[1]
      if (typeof epoch === 'string') this.#epoch = epoch
    } else {
      this.#lastSeq = last.length > 0 ? Number(this.#field(last[0]![1], 's') ?? 0) : 0
    }
    this.#handler = handler
    this.#control = control
    this.#loop = this.#read()
  }

  #field (fields: string[], name: string): string | undefined {
    for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1]
    return undefined
  }

  async #read (): Promise<void> {
    while (!this.#closing) {
      let reply: Array<[string, Entry[]]> | null
      try {
        reply = await this.#reader!.xread('COUNT', 1000, 'BLOCK', this.#blockMs, 'STREAMS', this.#stream, this.#lastId) as Array<[string, Entry[]]> | null
      } catch (err) {
        if (this.#closing) break
        if (!this.#outage) this.#opts.log?.warn({ err, lastId: this.#lastId }, 'Redis stream read failed; resuming from the last id when Redis answers')
        this.#outage = true
        await this.#waitForReader()
        continue
      }
      if (this.#outage) this.#opts.log?.info({ lastId: this.#lastId }, 'Redis stream reading resumed')
      this.#outage = false
      if (!reply) continue
      for (const entry of reply[0]![1]) {
        // Synchronous unless a gap must be filled first: a batch read is then handled in one turn, so
        // each socket's frames of the batch leave it in one write (see plugins/ws-transport.ts).
        const filling = this.#take(entry)
        if (filling !== undefined) await filling
      }
    }
  }

  /** Waits until the reader is connected again (at most a second, then the read is simply retried). */
  async #waitForReader (): Promise<void> {
    const reader = this.#reader!
    await new Promise<void>(resolve => {
      const done = () => { clearTimeout(timer); reader.off('ready', done); resolve() }
      const timer = setTimeout(done, reader.status === 'ready' ? 100 : 1000)
      reader.once('ready', done)
    })
  }

  /** Hands one stream entry on; returns a promise only when a gap is filled from history first. */
  #take ([id, fields]: Entry): Promise<void> | undefined {
    this.#lastId = id
    const control = this.#field(fields, 'c')
    if (control !== undefined) {
      this.#call(() => this.#control?.(JSON.parse(control) as ControlMessage))
      return
    }
    const body = this.#field(fields, 'n')
    if (body === undefined) return
    const notification = JSON.parse(body) as StoredNotification
    const legacy = this.#field(fields, 'l')
    const message: BrokerMessage = legacy === undefined ? { notification } : { notification, legacy: JSON.parse(legacy) as BrokerMessage['legacy'] & object }
    const logEpoch = this.#field(fields, 'e')
    if (logEpoch !== undefined && logEpoch !== '') message.epoch = logEpoch
    if (this.#field(fields, 'o') === '1') {
      this.#call(() => this.#handler?.({ ...message, legacyOnly: true }))
      return
    }
    if (message.epoch !== undefined && message.epoch !== this.#epoch) {
      // A new log (Redis lost its data): seqs start again, so the old high-water mark means nothing.
      if (this.#epoch !== undefined) {
        this.#opts.log?.warn({ epoch: message.epoch, previous: this.#epoch }, 'the history log has a new epoch')
        this.#lastSeq = notification.seq - 1
      }
      this.#epoch = message.epoch
    }
    if (notification.seq <= this.#lastSeq) return
    const hand = (): void => {
      this.#lastSeq = notification.seq
      this.#call(() => this.#handler?.(message))
    }
    if (this.#fanout && this.#lastSeq > 0 && notification.seq > this.#lastSeq + 1) return this.#fill(this.#lastSeq, notification.seq).then(hand)
    hand()
  }

  /** The stream was trimmed past this instance's position: what it missed is read from history, in order. */
  async #fill (after: number, before: number): Promise<void> {
    try {
      const missed = await this.#fanout!.range(after, before)
      this.#opts.log?.warn({ after, before, filled: missed.length }, 'gap in the stream filled from history')
      for (const notification of missed) this.#call(() => this.#handler?.({ notification }))
    } catch (err) {
      // Stored already: the clients that missed these get them when they resume.
      this.#opts.log?.error({ err, after, before }, 'could not fill a gap in the stream from history')
    }
  }

  #call (fn: () => void): void {
    // The manager's handlers log their own failures; one must not cost the messages behind it.
    try { fn() } catch {}
  }

  async #add (fields: Array<string | number>): Promise<void> {
    const client = this.#client
    if (!client) throw new UnavailableError('The Redis broker is not started')
    try {
      await client.xadd(this.#stream, 'MAXLEN', '~', this.#streamMaxLen, '*', ...fields)
    } catch (err) {
      throw unavailable(err)
    }
  }

  async publish (message: BrokerMessage): Promise<void> {
    const n = message.notification
    const legacy = message.legacy === undefined ? [] : ['l', JSON.stringify(message.legacy)]
    if (this.paired) {
      // The store's script added the notification to the stream; only a legacy payload is new.
      if (legacy.length > 0) await this.#add(['s', n.seq, 'n', JSON.stringify(n), 'o', '1', ...legacy])
      return
    }
    await this.#add(['s', n.seq, 'e', '', 'n', JSON.stringify(n), ...legacy])
  }

  async publishControl (message: ControlMessage): Promise<void> {
    await this.#add(['c', JSON.stringify(message)])
  }

  async ping (): Promise<void> {
    if (!this.#client || !this.#reader) throw new UnavailableError('The Redis broker is not started')
    await this.#client.ping()
    if (this.#reader.status !== 'ready') throw new UnavailableError('The Redis broker cannot read the stream')
  }

  async close (): Promise<void> {
    if (this.#closing || !this.#reader) return
    this.#closing = true
    this.#reader.disconnect()
    await this.#loop
    // Drain: what is in the stream now is delivered (to whatever sockets are still open) before close resolves.
    try {
      const [last] = await this.#client!.xrevrange(this.#stream, '+', '-', 'COUNT', 1)
      while (last !== undefined && idAfter(last[0], this.#lastId)) {
        const reply = await this.#client!.xread('COUNT', 1000, 'STREAMS', this.#stream, this.#lastId) as Array<[string, Entry[]]> | null
        if (!reply) break
        for (const entry of reply[0]![1]) await this.#take(entry)
      }
    } catch (err) {
      this.#opts.log?.warn({ err }, 'Redis broker could not drain the stream on close')
    }
    this.#handler = undefined
    this.#control = undefined
    if (this.#ownsClient) await this.#client!.quit().catch(() => this.#client!.disconnect())
  }
}
