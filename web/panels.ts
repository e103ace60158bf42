// The side panels: maintenance operations (one progress bar per collapse key
// maintenance:<id>, moving in place, success or failure at the end) and the
// admin health panel (the latest state of each component).
import type { ClientNotification } from '/client.js'
import { el } from './dom.js'
import { timeAgo } from './format.js'

/** Finished operations kept on screen. */
const KEEP_FINISHED = 6

interface Operation {
  seq: number
  item: HTMLLIElement
  bar: HTMLProgressElement
  state: HTMLElement
  label: HTMLElement
  kind: string
  finished: boolean
}

export class OperationsPanel {
  readonly #ops = new Map<string, Operation>()

  constructor (private readonly list: HTMLUListElement, private readonly empty: HTMLElement) {}

  clear (): void {
    this.#ops.clear()
    this.list.replaceChildren()
    this.empty.hidden = false
  }

  static isOperation (n: ClientNotification): boolean {
    return n.collapseKey?.startsWith('maintenance:') === true
  }

  update (n: ClientNotification): void {
    const key = n.collapseKey!
    const id = key.slice('maintenance:'.length)
    const data = n.data ?? {}
    let op = this.#ops.get(key)
    if (op !== undefined && op.seq >= n.seq) return
    if (op === undefined) {
      const labelId = `op-${id}`
      const label = el('span', { id: labelId })
      const state = el('span', { class: 'op-state' })
      const bar = el('progress', { max: 100, value: 0, 'aria-labelledby': labelId })
      const item = el('li', { class: 'op', 'data-key': key }, el('div', { class: 'op-head' }, label, state), bar)
      op = { seq: n.seq, item, bar, state, label, kind: '', finished: false }
      this.#ops.set(key, op)
      this.list.prepend(item)
    }
    op.seq = n.seq
    if (typeof data.operation_type === 'string') op.kind = data.operation_type
    op.label.textContent = `${op.kind !== '' ? op.kind : 'Operation'} (${id})`
    if (typeof data.progress === 'number') op.bar.value = data.progress
    op.finished = n.type === 'success' || n.type === 'error'
    op.item.classList.toggle('done', n.type === 'success')
    op.item.classList.toggle('failed', n.type === 'error')
    op.item.dataset.state = n.type === 'success' ? 'success' : n.type === 'error' ? 'failed' : 'running'
    op.state.textContent = n.type === 'success'
      ? 'Completed'
      : n.type === 'error'
        ? `Failed: ${typeof data.error === 'string' ? data.error : n.message}`
        : `${Math.round(op.bar.value)}%`
    this.#trim()
  }

  #trim (): void {
    const finished = [...this.#ops.entries()].filter(([, op]) => op.finished).sort((a, b) => b[1].seq - a[1].seq)
    for (const [key, op] of finished.slice(KEEP_FINISHED)) {
      op.item.remove()
      this.#ops.delete(key)
    }
    this.empty.hidden = this.#ops.size > 0
  }
}

interface ComponentState { status: string, message?: string, at: string, seq: number }

export class HealthPanel {
  readonly #components = new Map<string, ComponentState>()

  constructor (private readonly list: HTMLUListElement, private readonly empty: HTMLElement) {}

  clear (): void {
    this.#components.clear()
    this.render()
  }

  /** A health notification: a full report (health_update) or one component's alert (health_alert). */
  update (n: ClientNotification): void {
    const data = n.data ?? {}
    const components = data.components
    if (typeof components === 'object' && components !== null) {
      for (const [name, c] of Object.entries(components as Record<string, { status?: unknown, message?: unknown }>)) {
        if (typeof c?.status !== 'string') continue
        this.#set(name, { status: c.status, ...(typeof c.message === 'string' ? { message: c.message } : {}), at: n.createdAt, seq: n.seq })
      }
    } else if (typeof data.component === 'string') {
      const severity = typeof data.severity === 'string' ? data.severity : 'warning'
      this.#set(data.component, { status: severity, message: n.message, at: n.createdAt, seq: n.seq })
    }
    this.render()
  }

  #set (name: string, state: ComponentState): void {
    const old = this.#components.get(name)
    if (old === undefined || old.seq < state.seq) this.#components.set(name, state)
  }

  render (): void {
    const items = [...this.#components.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, c]) =>
      el('li', { class: `component ${c.status}`, 'data-component': name },
        el('span', {}, name, c.message !== undefined ? el('span', { class: 'detail' }, c.message) : null),
        el('span', {}, el('span', { class: 'state' }, c.status), el('span', { class: 'detail' }, timeAgo(c.at)))
      ))
    this.list.replaceChildren(...items)
    this.empty.hidden = items.length > 0
  }
}
