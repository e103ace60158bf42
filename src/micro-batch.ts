// Items pushed during one turn of the event loop, handed over together, in
// order, on the next (setImmediate): the local broker's fan-out and SQLite's
// group commit both batch this way.
export class MicroBatch<T> {
  readonly #handle: (items: T[]) => void
  #items: T[] = []
  #scheduled = false

  constructor (handle: (items: T[]) => void) {
    this.#handle = handle
  }

  push (item: T): void {
    this.#items.push(item)
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(() => this.flush())
    }
  }

  /** Hands over what is queued now (also the scheduled run; with nothing queued it does nothing). */
  flush (): void {
    this.#scheduled = false
    const items = this.#items
    if (items.length === 0) return
    this.#items = []
    this.#handle(items)
  }
}
