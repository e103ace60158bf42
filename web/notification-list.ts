// The live list: one item per notification (one per collapse key, as in
// history), newest first, styled by type and priority, with relative times and
// a per-item "Mark read" button.
import type { ClientNotification } from '/client.js'
import { el } from './dom.js'
import { safeUrl, timeAgo } from './format.js'

interface Entry {
  n: ClientNotification
  item: HTMLLIElement
}

export class NotificationList {
  readonly #entries = new Map<string, Entry>()

  constructor (
    private readonly list: HTMLOListElement,
    private readonly empty: HTMLElement,
    private readonly count: HTMLElement,
    private readonly onMarkRead: (id: string) => void
  ) {}

  /** The smallest seq shown: the `before` cursor of "load more". */
  get oldestSeq (): number | undefined {
    let min: number | undefined
    for (const { n } of this.#entries.values()) if (min === undefined || n.seq < min) min = n.seq
    return min
  }

  clear (): void {
    this.#entries.clear()
    this.list.replaceChildren()
    this.#changed()
  }

  /** A live notification: on top, replacing an older one with the same collapse key. */
  addLive (n: ClientNotification): void {
    const key = n.collapseKey ?? n.id
    const old = this.#entries.get(key)
    if (old !== undefined && old.n.seq >= n.seq) return
    // Keep keyboard focus when the item under it is replaced.
    const hadFocus = old !== undefined && old.item.contains(document.activeElement)
    old?.item.remove()
    const item = this.#render(n)
    this.#entries.set(key, { n, item })
    this.list.prepend(item)
    if (hadFocus) item.querySelector('button')?.focus()
    this.#changed()
  }

  /** A page of history (newest first), below what is shown; keys already shown keep their newer item. */
  addOlder (page: readonly ClientNotification[]): void {
    for (const n of page) {
      const key = n.collapseKey ?? n.id
      if (this.#entries.has(key)) continue
      const item = this.#render(n)
      this.#entries.set(key, { n, item })
      this.list.append(item)
    }
    this.#changed()
  }

  /** Marks items read: by id, or everything up to a seq. */
  markRead (read: { ids?: readonly string[], through?: number }): void {
    const ids = new Set(read.ids ?? [])
    for (const entry of this.#entries.values()) {
      if (entry.n.read) continue
      if (ids.has(entry.n.id) || (read.through !== undefined && entry.n.seq <= read.through)) {
        entry.n = { ...entry.n, read: true }
        const item = this.#render(entry.n)
        const hadFocus = entry.item.contains(document.activeElement)
        entry.item.replaceWith(item)
        entry.item = item
        // The button that had focus is gone with the unread state: keep the user's place on the item.
        if (hadFocus) item.focus()
      }
    }
  }

  /** Re-renders the relative times. */
  tick (): void {
    for (const time of this.list.querySelectorAll('time')) time.textContent = timeAgo(time.dateTime)
  }

  #changed (): void {
    this.empty.hidden = this.#entries.size > 0
    this.count.textContent = this.#entries.size > 0 ? `(${this.#entries.size} shown)` : ''
  }

  #render (n: ClientNotification): HTMLLIElement {
    const titleId = `title-${n.id}`
    const url = n.action !== undefined ? safeUrl(n.action.url) : undefined
    const priority = n.priority === 'high' || n.priority === 'critical'
    return el('li', {
      class: `item type-${n.type} priority-${n.priority}${n.read ? '' : ' unread'}`,
      'data-id': n.id,
      'data-seq': n.seq,
      'data-category': n.category,
      'aria-labelledby': titleId,
      tabindex: -1
    },
    el('h3', { id: titleId }, n.title, n.read ? '' : el('span', { class: 'visually-hidden' }, ' (unread)')),
    el('div', { class: 'actions' },
      url !== undefined && n.action !== undefined ? el('a', { href: url }, n.action.label) : null,
      n.read ? null : this.#markButton(n)
    ),
    n.message !== '' ? el('p', { class: 'message' }, n.message) : null,
    el('div', { class: 'meta' },
      el('span', { class: `tag type-${n.type}` }, n.type),
      priority ? el('span', { class: 'tag priority' }, n.priority) : null,
      el('span', {}, n.category),
      el('time', { datetime: n.createdAt, title: new Date(n.createdAt).toLocaleString() }, timeAgo(n.createdAt))
    ))
  }

  #markButton (n: ClientNotification): HTMLButtonElement {
    const button = el('button', { type: 'button', class: 'mark-read', 'aria-label': `Mark read: ${n.title}` }, 'Mark read')
    button.addEventListener('click', () => {
      button.disabled = true
      this.onMarkRead(n.id)
    })
    return button
  }
}
