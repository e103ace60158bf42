// A clock for tests that moves only when told to: due timers fire in order, each at its own time.
import type { Clock } from '../src/clock.js'

export class HandClock implements Clock {
  #now: number
  #next = 0
  readonly #timers = new Map<number, { at: number, fn: () => void }>()

  constructor (start = 0) {
    this.#now = start
  }

  now (): number { return this.#now }
  setTimeout (fn: () => void, ms: number): number {
    const id = ++this.#next
    this.#timers.set(id, { at: this.#now + ms, fn })
    return id
  }

  clearTimeout (timer: unknown): void { this.#timers.delete(timer as number) }
  /** Live timers. */
  get timers (): number { return this.#timers.size }

  advance (ms: number): void {
    const end = this.#now + ms
    for (;;) {
      let due: [number, { at: number, fn: () => void }] | undefined
      for (const entry of this.#timers) if (entry[1].at <= end && (due === undefined || entry[1].at < due[1].at)) due = entry
      if (due === undefined) break
      this.#timers.delete(due[0])
      this.#now = due[1].at
      due[1].fn()
    }
    this.#now = end
  }
}
