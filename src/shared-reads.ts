// What many readers ask at once (a reconnect storm: thousands of clients
// resuming from the same cursor), read once: the replay page's rows without an
// audience, as frames serialised once, kept until the next write to the log.
// Each reader still reads its own part (its read position, rows that name it or
// its role). Needs a store that splits its reads (SplitReads); readers with read
// marks, and other stores, take the ordinary query. The unread count is the
// store's own (the SQLite store keeps its shared part between writes itself).
import { notificationFrame, type SharedFrame } from './protocol.js'
import type { ClientNotification, User } from './schemas.js'
import type { SplitReads } from './stores/history-store.js'

/** One replayed notification: its seq and its frame (shared by every reader for rows without an audience). */
export interface ReplayItem {
  seq: number
  frame: SharedFrame
}

/** A row every reader of its category gets, with its frame for a reader who has not read it and (made on demand) one who has. */
interface SharedRow {
  seq: number
  notification: ClientNotification
  unread: SharedFrame
  read?: SharedFrame
}

interface PageEntry { rows: SharedRow[], until: number }

/**
 * What the caller has just read for this reader (a connecting session, along with its connect
 * state): its read state, the store's write count then, and its own rows of the page `replay` names.
 */
export interface KnownReads {
  reader: Awaited<ReturnType<SplitReads['reader']>>
  writes?: number | undefined
  audience?: ClientNotification[] | undefined
  replay?: { categories: readonly string[], after: number, limit: number } | undefined
}

/** Entries, and rows in page entries, kept between two writes; past either the cache starts over (many distinct cursors: little is shared anyway). */
const MAX_ENTRIES = 1000
const MAX_ROWS = 5000

export class SharedReads {
  readonly #split: SplitReads
  /** The store's write count the entries were read at. */
  #writes = -1
  readonly #pages = new Map<string, PageEntry>()
  /** Rows held by #pages. */
  #rows = 0

  constructor (split: SplitReads) {
    this.#split = split
  }

  /** Entitled rows after `after`, ascending, as frames; undefined when this reader needs the ordinary query. */
  /** `known`: what the caller has just read for this reader (a connecting session has). */
  async page (user: User, categories: readonly string[], after: number, limit: number, now: number, known?: KnownReads): Promise<ReplayItem[] | undefined> {
    const split = this.#split
    const reader = known?.reader ?? await split.reader(user.id)
    if (reader.marks) return undefined
    const key = `${categoryKey(categories)}|${after}|${limit}`
    const writes = known?.writes ?? split.writes
    let entry = this.#current(this.#pages, key, writes, now)
    if (entry === undefined) {
      const rows = (await split.broadcastPage(categories, after, limit, now)).map(shared)
      // Valid until its first row expires (the store leaves expired rows out; a page must not shrink unseen).
      let until = Number.POSITIVE_INFINITY
      for (const r of rows) if (r.notification.expiresAt !== undefined) until = Math.min(until, Date.parse(r.notification.expiresAt))
      entry = { rows, until }
      this.#keep(this.#pages, key, entry, writes)
    }
    const own = known?.audience !== undefined && sameRequest(known.replay, categories, after, limit)
      ? known.audience
      : await split.audiencePage(user, categories, after, limit, now, reader.upto)
    return merge(entry.rows, own, reader.upto, limit)
  }

  /** The entry for `key` if it was read at the current write count and nothing in it has expired. */
  #current (map: Map<string, PageEntry>, key: string, writes: number, now: number): PageEntry | undefined {
    if (writes !== this.#writes) {
      this.#clear()
      this.#writes = writes
      return undefined
    }
    const entry = map.get(key)
    return entry !== undefined && now < entry.until ? entry : undefined
  }

  /** Keeps an entry read at `writes`, unless a write came in while it was read (it is still this reader's answer). */
  #keep (map: Map<string, PageEntry>, key: string, entry: PageEntry, writes: number): void {
    if (writes !== this.#split.writes || writes !== this.#writes) return
    const rows = entry.rows.length
    if (map.size >= MAX_ENTRIES || this.#rows + rows > MAX_ROWS) this.#clear()
    this.#rows += rows
    map.set(key, entry)
  }

  #clear (): void {
    this.#pages.clear()
    this.#rows = 0
  }
}

/** Whether the page read along is this one (the same categories in the same order, cursor and size). */
function sameRequest (replay: KnownReads['replay'], categories: readonly string[], after: number, limit: number): boolean {
  return replay !== undefined && replay.after === after && replay.limit === limit &&
    replay.categories.length === categories.length && replay.categories.every((c, i) => c === categories[i])
}

/** The categories as given, not sorted: connections with the same subscriptions share one set, in one order (src/session.ts). */
function categoryKey (categories: readonly string[]): string {
  return categories.join(',')
}

function shared (n: ClientNotification): SharedRow {
  return { seq: n.seq, notification: n, unread: { text: notificationFrame(n) } }
}

/** The frame of a shared row for a reader whose read position is `upto`. */
function frameFor (row: SharedRow, upto: number): SharedFrame {
  if (row.seq > upto) return row.unread
  row.read ??= { text: notificationFrame({ ...row.notification, read: true }) }
  return row.read
}

/** Both lists ascending and disjoint (a row has an audience or not): the first `limit` of their union. */
function merge (rows: readonly SharedRow[], own: readonly ClientNotification[], upto: number, limit: number): ReplayItem[] {
  const out: ReplayItem[] = []
  let i = 0
  let j = 0
  while (out.length < limit && (i < rows.length || j < own.length)) {
    if (j >= own.length || (i < rows.length && rows[i]!.seq < own[j]!.seq)) {
      const row = rows[i++]!
      out.push({ seq: row.seq, frame: frameFor(row, upto) })
    } else {
      const n = own[j++]!
      out.push({ seq: n.seq, frame: { text: notificationFrame(n) } })
    }
  }
  return out
}
