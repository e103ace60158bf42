// Token expiries of many connections on one timer per clock: an open
// connection is an entry in the set of its deadline (JWT exps are whole
// seconds, so many share one), not a timer and a closure of its own.
import type { Clock, ClockTimer } from './clock.js'

// setTimeout's ceiling (~24.8 days): longer waits re-arm.
const MAX_TIMER_MS = 2 ** 31 - 1

/** What is told when its deadline has come. */
export interface Expiring {
  onExpiry (): void
}

export class ExpiryTimers {
  readonly #clock: Clock
  /** Deadline (epoch ms) → what expires then. */
  readonly #due = new Map<number, Set<Expiring>>()
  /** The deadlines in #due as a binary min-heap; one left behind by delete() is skipped when it comes up. */
  readonly #heap: number[] = []
  #timer: ClockTimer | undefined
  /** The deadline the timer is armed for. */
  #armedFor = Infinity

  constructor (clock: Clock) {
    this.#clock = clock
  }

  /** Tells `item` at `at` (epoch ms), unless deleted before. */
  add (item: Expiring, at: number): void {
    let set = this.#due.get(at)
    if (set === undefined) {
      set = new Set()
      this.#due.set(at, set)
      this.#push(at)
    }
    set.add(item)
    if (at < this.#armedFor) this.#arm(at)
  }

  delete (item: Expiring, at: number): void {
    const set = this.#due.get(at)
    if (set === undefined) return
    set.delete(item)
    if (set.size === 0) this.#due.delete(at)
  }

  /** Entries waiting, for the leak checks. */
  get size (): number {
    let n = 0
    for (const set of this.#due.values()) n += set.size
    return n
  }

  #arm (at: number): void {
    this.#clock.clearTimeout(this.#timer)
    this.#armedFor = at
    const wait = Math.min(Math.max(0, at - this.#clock.now()), MAX_TIMER_MS)
    this.#timer = this.#clock.setTimeout(() => this.#fire(), wait)
  }

  #fire (): void {
    this.#timer = undefined
    this.#armedFor = Infinity
    const now = this.#clock.now()
    const expired: Expiring[] = []
    while (this.#heap.length > 0 && this.#heap[0]! <= now) {
      const at = this.#pop()
      const set = this.#due.get(at)
      if (set === undefined) continue
      this.#due.delete(at)
      for (const item of set) expired.push(item)
    }
    // Skip deadlines whose entries were all deleted, then arm for the next real one.
    while (this.#heap.length > 0 && !this.#due.has(this.#heap[0]!)) this.#pop()
    if (this.#heap.length > 0) this.#arm(this.#heap[0]!)
    for (const item of expired) item.onExpiry()
  }

  #push (at: number): void {
    const heap = this.#heap
    let i = heap.push(at) - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heap[parent]! <= at) break
      heap[i] = heap[parent]!
      i = parent
    }
    heap[i] = at
  }

  #pop (): number {
    const heap = this.#heap
    const top = heap[0]!
    const last = heap.pop()!
    if (heap.length > 0) {
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= heap.length) break
        const r = l + 1
        const c = r < heap.length && heap[r]! < heap[l]! ? r : l
        if (heap[c]! >= last) break
        heap[i] = heap[c]!
        i = c
      }
      heap[i] = last
    }
    return top
  }
}

const byClock = new WeakMap<Clock, ExpiryTimers>()

/** The expiry timers of one clock, made on first use. */
export function expiryTimersOf (clock: Clock): ExpiryTimers {
  let timers = byClock.get(clock)
  if (timers === undefined) {
    timers = new ExpiryTimers(clock)
    byClock.set(clock, timers)
  }
  return timers
}
