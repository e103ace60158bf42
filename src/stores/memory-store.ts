// History in process memory: for tests and for library users who need no
// durability. Each instance is a new log, with a new epoch.
import { randomUUID } from 'node:crypto'
import type { ClientNotification, StoredNotification, User } from '../schemas.js'
import { copyDraft, stamp } from '../notification-json.js'
import {
  DEFAULT_RETENTION, UNREAD_COUNT_CAP, audienceAdmits, isExpired, toClient,
  type AppendResult, type Draft, type HistoryQuery, type HistoryStore, type Retention
} from './history-store.js'

interface ReadState { upTo: number, ids: Set<string> }

export class MemoryStore implements HistoryStore {
  readonly epoch = randomUUID()
  readonly #retention: Retention
  /** Ascending by seq. */
  #log: StoredNotification[] = []
  #seq = 0
  #prunedThrough = 0
  readonly #byCollapseKey = new Map<string, number>()
  readonly #idempotency = new Map<string, { notification: StoredNotification, at: number }>()
  readonly #reads = new Map<string, ReadState>()
  readonly #muted = new Map<string, string[]>()
  readonly #revocations = new Map<string, { cut: number, until: number }>()

  constructor (retention: Partial<Retention> = {}) {
    this.#retention = { ...DEFAULT_RETENTION, ...retention }
  }

  async init (): Promise<void> {}

  async append (draft: Draft, idempotencyKey?: string): Promise<AppendResult> {
    return this.#append(draft, idempotencyKey)
  }

  async appendMany (items: ReadonlyArray<{ draft: Draft, idempotencyKey?: string }>): Promise<AppendResult[]> {
    // Every draft is read (copied) before anything is stored, so a bad item fails the
    // batch untouched; the synchronous loop after it cannot throw nor interleave.
    const copies = items.map(i => ({ draft: copyDraft(i.draft), idempotencyKey: i.idempotencyKey }))
    return copies.map(i => this.#append(i.draft, i.idempotencyKey))
  }

  #append (draft: Draft, idempotencyKey?: string): AppendResult {
    if (idempotencyKey !== undefined) {
      const seen = this.#idempotency.get(idempotencyKey)
      if (seen) return { notification: seen.notification, duplicate: true }
    }
    const notification = stamp(draft, ++this.#seq)
    if (draft.collapseKey !== undefined) {
      const older = this.#byCollapseKey.get(draft.collapseKey)
      if (older !== undefined) this.#log = this.#log.filter(n => n.seq !== older)
      this.#byCollapseKey.set(draft.collapseKey, notification.seq)
    }
    this.#log.push(notification)
    if (idempotencyKey !== undefined) this.#idempotency.set(idempotencyKey, { notification, at: Date.parse(draft.createdAt) })
    if (this.#log.length > this.#retention.maxCount) this.#pruneCount()
    // Age on append too (the oldest row decides, so this is one comparison when nothing is due).
    const oldest = this.#log[0]
    if (oldest !== undefined && Date.parse(oldest.createdAt) < Date.now() - this.#retention.maxAgeMs) this.#pruneAge(Date.now())
    return { notification, duplicate: false }
  }

  async lastSeq (): Promise<number> { return this.#seq }
  async prunedThrough (): Promise<number> { return this.#prunedThrough }

  #isRead (userId: string, n: StoredNotification): boolean {
    const r = this.#reads.get(userId)
    return r !== undefined && (n.seq <= r.upTo || r.ids.has(n.id))
  }

  #entitled (n: StoredNotification, user: User, categories: ReadonlySet<string>, now: number): boolean {
    return categories.has(n.category) && audienceAdmits(n, user) && !isExpired(n, now)
  }

  async query (q: HistoryQuery): Promise<ClientNotification[]> {
    const categories = new Set(q.categories)
    const out: ClientNotification[] = []
    const asc = q.order === 'asc'
    for (let i = asc ? 0 : this.#log.length - 1; asc ? i < this.#log.length : i >= 0; asc ? i++ : i--) {
      const n = this.#log[i]!
      if (q.after !== undefined && n.seq <= q.after) continue
      if (q.before !== undefined && n.seq >= q.before) continue
      if (!this.#entitled(n, q.user, categories, q.now)) continue
      const read = this.#isRead(q.user.id, n)
      if (q.unreadOnly === true && read) continue
      out.push(toClient(n, read))
      if (out.length >= q.limit) break
    }
    return out
  }

  async unreadCount (user: User, categories: readonly string[], now: number): Promise<number> {
    const set = new Set(categories)
    let count = 0
    // Newest first, so the walk stops after the cap in the usual case of old read and new unread.
    for (let i = this.#log.length - 1; i >= 0 && count < UNREAD_COUNT_CAP; i--) {
      const n = this.#log[i]!
      if (this.#entitled(n, user, set, now) && !this.#isRead(user.id, n)) count++
    }
    return count
  }

  #readState (userId: string): ReadState {
    let r = this.#reads.get(userId)
    if (!r) {
      r = { upTo: 0, ids: new Set() }
      this.#reads.set(userId, r)
    }
    return r
  }

  async markRead (userId: string, ids: readonly string[]): Promise<void> {
    const r = this.#readState(userId)
    for (const id of ids) r.ids.add(id)
  }

  async markAllRead (userId: string, upToSeq: number): Promise<void> {
    const r = this.#readState(userId)
    r.upTo = Math.max(r.upTo, upToSeq)
    // Ids above the cut stay read; those at or below it are covered by upTo now.
    if (r.ids.size > 0) {
      const above = new Set<string>()
      for (const n of this.#log) if (n.seq > r.upTo && r.ids.has(n.id)) above.add(n.id)
      r.ids = above
    }
  }

  #pruneCount (): void {
    const excess = this.#log.length - this.#retention.maxCount
    if (excess <= 0) return
    const removed = this.#log.splice(0, excess)
    this.#forget(removed)
  }

  #forget (removed: StoredNotification[]): void {
    for (const n of removed) {
      this.#prunedThrough = Math.max(this.#prunedThrough, n.seq)
      if (n.collapseKey !== undefined && this.#byCollapseKey.get(n.collapseKey) === n.seq) this.#byCollapseKey.delete(n.collapseKey)
    }
  }

  async getMuted (userId: string): Promise<string[]> {
    return [...(this.#muted.get(userId) ?? [])]
  }

  async setMuted (userId: string, muted: readonly string[]): Promise<void> {
    if (muted.length === 0) this.#muted.delete(userId)
    else this.#muted.set(userId, [...new Set(muted)])
  }

  async getMutedMany (userIds: readonly string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>()
    for (const id of userIds) {
      const muted = this.#muted.get(id)
      if (muted !== undefined) out.set(id, [...muted])
    }
    return out
  }

  async idOfIdempotencyKey (key: string): Promise<string | null> {
    return this.#idempotency.get(key)?.notification.id ?? null
  }

  async idOfCollapseKey (collapseKey: string): Promise<string | null> {
    const seq = this.#byCollapseKey.get(collapseKey)
    if (seq === undefined) return null
    // The log is ascending by seq: a binary search, not a scan of the whole history.
    let lo = 0
    let hi = this.#log.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const n = this.#log[mid]!
      if (n.seq === seq) return n.id
      if (n.seq < seq) lo = mid + 1
      else hi = mid - 1
    }
    return null
  }

  async revokeTokens (userId: string, issuedAtOrBefore: number, until: number): Promise<void> {
    const current = this.#revocations.get(userId)
    this.#revocations.set(userId, {
      cut: Math.max(current?.cut ?? 0, issuedAtOrBefore),
      until: Math.max(current?.until ?? 0, until)
    })
  }

  async revokedThrough (userId: string, now: number): Promise<number> {
    const r = this.#revocations.get(userId)
    return r !== undefined && r.until > now ? r.cut : 0
  }

  async prune (now: number): Promise<void> {
    for (const [userId, r] of this.#revocations) if (r.until <= now) this.#revocations.delete(userId)
    this.#pruneCount()
    this.#pruneAge(now)
  }

  #pruneAge (now: number): void {
    const cutoff = now - this.#retention.maxAgeMs
    const keep: StoredNotification[] = []
    const removed: StoredNotification[] = []
    for (const n of this.#log) (Date.parse(n.createdAt) < cutoff ? removed : keep).push(n)
    this.#log = keep
    this.#forget(removed)
    for (const [key, v] of this.#idempotency) if (v.at < cutoff) this.#idempotency.delete(key)
  }

  async ping (): Promise<void> {}

  async close (): Promise<void> {}
}
