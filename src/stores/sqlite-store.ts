// Durable history in one SQLite file (WAL). The default for the standalone
// server: it survives restarts and seq keeps growing (AUTOINCREMENT never
// reuses a rowid, even after the newest row is deleted by a collapse).
import { randomUUID } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import { MicroBatch } from '../micro-batch.js'
import { stamp, storedBody } from '../notification-json.js'
import type { ClientNotification, StoredNotification, User } from '../schemas.js'
import { DEFAULT_RETENTION, UNREAD_COUNT_CAP, type AppendResult, type ConnectState, type HandshakeState, type ReplayRequest, type Draft, type HistoryQuery, type HistoryStore, type Retention, type SplitReads } from './history-store.js'

// Schema 2: entitlement by index instead of json_each on every row.
// A notification with an audience has one row here per named user (kind 0) and
// role (kind 1); a broadcast (no audience) has none and is found through the
// partial indexes instead. The triggers keep the table in step with
// notifications for every writer (collapse, retention, expiry, and a server of
// the previous version writing aud_users/aud_roles to this file), in the same
// transaction as the insert or delete. Both partial indexes cover every column
// the broadcast arm reads (the audience columns, always NULL there, only so
// that SQLite sees them covered), so walking them touches no table row:
// (category, seq) for the unread count, (seq, ...) for pages in seq order.
const AUDIENCE_SCHEMA = `
CREATE TABLE IF NOT EXISTS notification_audience (
  kind  INTEGER NOT NULL,
  value TEXT NOT NULL,
  seq   INTEGER NOT NULL,
  PRIMARY KEY (kind, value, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS notification_audience_seq ON notification_audience (seq);
CREATE INDEX IF NOT EXISTS notifications_broadcast_category ON notifications (category, seq, expires_ms, aud_users, aud_roles)
  WHERE aud_users IS NULL AND aud_roles IS NULL;
CREATE INDEX IF NOT EXISTS notifications_broadcast_seq ON notifications (seq, category, expires_ms, aud_users, aud_roles)
  WHERE aud_users IS NULL AND aud_roles IS NULL;
`
// Schema 4: an audience of exactly one user (the common targeted notification)
// is kept in the row itself (aud_user, with aud_users still set so that the
// broadcast indexes leave it out) and found through its own covering partial
// index: no trigger, no audience row, one index entry instead of two. The
// triggers leave such rows alone; a row written without aud_user (a server of
// an earlier version) still gets its audience rows.
const AUDIENCE_TRIGGERS = `
CREATE TRIGGER IF NOT EXISTS notifications_audience_insert AFTER INSERT ON notifications
  WHEN NEW.aud_user IS NULL AND (NEW.aud_users IS NOT NULL OR NEW.aud_roles IS NOT NULL)
BEGIN
  INSERT OR IGNORE INTO notification_audience (kind, value, seq) SELECT 0, value, NEW.seq FROM json_each(NEW.aud_users);
  INSERT OR IGNORE INTO notification_audience (kind, value, seq) SELECT 1, value, NEW.seq FROM json_each(NEW.aud_roles);
END;
CREATE TRIGGER IF NOT EXISTS notifications_audience_delete AFTER DELETE ON notifications
  WHEN OLD.aud_user IS NULL
BEGIN
  DELETE FROM notification_audience WHERE seq = OLD.seq;
END;
`
const USER_ROW_SCHEMA = `
CREATE INDEX IF NOT EXISTS notifications_user ON notifications (aud_user, seq, category, expires_ms)
  WHERE aud_user IS NOT NULL;
`
/** Schema 3 to 4: the column (files written since schema 4 have it from CREATE TABLE) and the triggers that skip it. */
const ADD_USER_COLUMN = 'ALTER TABLE notifications ADD COLUMN aud_user TEXT;'
const REPLACE_TRIGGERS = 'DROP TRIGGER IF EXISTS notifications_audience_insert; DROP TRIGGER IF EXISTS notifications_audience_delete;' + AUDIENCE_TRIGGERS
// Retention runs on every append; without these it scanned the whole log each
// time, so appends got slower as history grew.
const RETENTION_SCHEMA = `
CREATE INDEX IF NOT EXISTS notifications_created ON notifications (created_ms);
CREATE INDEX IF NOT EXISTS notifications_expires ON notifications (expires_ms) WHERE expires_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency (created_ms);
`
// Schema 3: no (category, seq) index. No query has used it since schema 2 (the
// entitlement arms have their own indexes) and every append paid for it.
// Schema 4: single-user audiences in the row (above).
const SCHEMA_VERSION = 4
const DROP_UNUSED = 'DROP INDEX IF EXISTS notifications_category_seq;'
/** Fills the audience table from rows written before it existed (schema 1); idempotent. */
const BACKFILL = `
INSERT OR IGNORE INTO notification_audience (kind, value, seq)
  SELECT 0, j.value, n.seq FROM notifications n, json_each(n.aud_users) j WHERE n.aud_users IS NOT NULL;
INSERT OR IGNORE INTO notification_audience (kind, value, seq)
  SELECT 1, j.value, n.seq FROM notifications n, json_each(n.aud_roles) j WHERE n.aud_roles IS NOT NULL;
`

// Entitlement in SQL, so a page is filled without pulling rows it will drop:
// category allowed, audience empty or naming the user or its role, not expired.
// SQLite walks only candidates: broadcasts through a partial index, rows naming
// the user alone through notifications_user, other targeted rows through
// notification_audience (user, then role), each arm in seq order
// within (@after, @before) and filtered there; the arms are disjoint except a
// row naming both the user and its role, which the role arm leaves to the user arm.
// @upto is the user's read_upto (read before the statement runs).
const IS_READ = `(n.seq <= @upto OR EXISTS (SELECT 1 FROM read_marks r WHERE r.user_id = @userId AND r.seq = n.seq))`
const FILTER = `n.category IN (SELECT value FROM json_each(@categories))
  AND (n.expires_ms IS NULL OR n.expires_ms > @now)
  AND (@unreadOnly = 0 OR NOT ${IS_READ})`
// The four ways a row can be entitled, each walked through its own index. They
// run as three statements: SQLite plans the same arms combined in one compound
// statement far worse (figures in docs/benchmarks.md).
const ARMS = {
  broadcast: (index: string) => `SELECT n.seq FROM notifications n INDEXED BY ${index}
    WHERE n.aud_users IS NULL AND n.aud_roles IS NULL AND n.seq > @after AND n.seq < @before AND ${FILTER}`,
  // Only this user named, in the row (schema 4): the index covers every column read.
  userRow: `SELECT n.seq FROM notifications n INDEXED BY notifications_user
    WHERE n.aud_user = @userId AND n.seq > @after AND n.seq < @before AND ${FILTER}`,
  user: `SELECT a.seq FROM notification_audience a JOIN notifications n ON n.seq = a.seq
    WHERE a.kind = 0 AND a.value = @userId AND a.seq > @after AND a.seq < @before AND ${FILTER}`,
  // A row naming both the user and its role is found once, through the user arm.
  role: `SELECT a.seq FROM notification_audience a JOIN notifications n ON n.seq = a.seq
    WHERE a.kind = 1 AND a.value = @role AND a.seq > @after AND a.seq < @before AND ${FILTER}
      AND NOT EXISTS (SELECT 1 FROM notification_audience u WHERE u.kind = 0 AND u.value = @userId AND u.seq = a.seq)`
}
// LIMIT takes its parameter as `+@name`: SQLite plans a bare bound LIMIT worse
// (the unary plus leaves the value alone).
const armStatements = (db: Database.Database, make: (arm: string) => string) => [
  db.prepare(make(ARMS.broadcast('notifications_broadcast_seq'))).pluck(),
  db.prepare(make(ARMS.userRow)).pluck(),
  db.prepare(make(ARMS.user)).pluck(),
  db.prepare(make(ARMS.role)).pluck()
]
const ROWS = (isRead: string) => `SELECT n.seq, n.body, ${isRead} AS is_read FROM notifications n
  WHERE n.seq IN (SELECT value FROM json_each(@seqs))`

// The broadcast arm and a role's arm are the same for every user with those
// categories: their newest entries are read once and kept until the next write,
// so an unread count walks only the user's own arm, and a page or a replay near
// the newest end reads the shared ones from memory.
// The role arm cached here keeps rows that also name the user (the page and the
// count de-duplicate them against the user arm). Walking up to 1,000 role rows
// (each a table row lookup for its category and expiry) was the bulk of an unread
// count once history held more than the cap (figures in docs/benchmarks.md).
const SHARED = {
  broadcast: `SELECT n.seq, n.expires_ms FROM notifications n INDEXED BY notifications_broadcast_seq
    WHERE n.aud_users IS NULL AND n.aud_roles IS NULL AND n.category IN (SELECT value FROM json_each(@categories))
      AND (n.expires_ms IS NULL OR n.expires_ms > @now)
    ORDER BY n.seq DESC LIMIT +@depth`,
  role: `SELECT a.seq, n.expires_ms FROM notification_audience a JOIN notifications n ON n.seq = a.seq
    WHERE a.kind = 1 AND a.value = @role AND n.category IN (SELECT value FROM json_each(@categories))
      AND (n.expires_ms IS NULL OR n.expires_ms > @now)
    ORDER BY a.seq DESC LIMIT +@depth`
}
/** Entries kept per shared arm: enough to count to the cap and to page near the newest end. */
const SHARED_DEPTH = UNREAD_COUNT_CAP + 1
/** Distinct (arm, categories) entries kept; beyond it the cache starts over (muted sets make keys vary). */
const SHARED_ENTRIES = 256

/** The newest entitled seqs of one shared arm, newest first, as read at `filledAt`. */
interface SharedArm {
  seqs: number[]
  /** Every entitled seq is in `seqs` (fewer than SHARED_DEPTH exist). */
  complete: boolean
  filledAt: number
  /** The earliest expiry among `seqs`: from then on the entry is stale. */
  validUntil: number
}

/** How many entries of a newest-first list are above `seq`. */
function countAbove (seqs: readonly number[], seq: number): number {
  let lo = 0
  let hi = seqs.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (seqs[mid]! > seq) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** The seqs of `arm` in (after, before), at most `limit`, in the given order; undefined when the entry does not reach that far. */
function sharedRange (arm: SharedArm, after: number, before: number, limit: number, asc: boolean): number[] | undefined {
  const { seqs } = arm
  const out: number[] = []
  if (asc) {
    const above = countAbove(seqs, after)
    // Every seq above `after` must be in the list: the list is complete or reaches down to `after`.
    if (!arm.complete && above === seqs.length) return undefined
    for (let k = above - 1; k >= 0 && out.length < limit && seqs[k]! < before; k--) out.push(seqs[k]!)
    return out
  }
  for (let k = countAbove(seqs, before - 1); k < seqs.length && out.length < limit; k++) {
    if (seqs[k]! <= after) return out
    out.push(seqs[k]!)
  }
  return out.length === limit || arm.complete ? out : undefined
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notifications (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  id           TEXT NOT NULL UNIQUE,
  category     TEXT NOT NULL,
  created_ms   INTEGER NOT NULL,
  expires_ms   INTEGER,
  collapse_key TEXT,
  aud_users    TEXT,
  aud_roles    TEXT,
  body         TEXT NOT NULL,
  aud_user     TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS notifications_collapse_key ON notifications (collapse_key) WHERE collapse_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, notification TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS read_marks (user_id TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (user_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS read_upto (user_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS muted_categories (user_id TEXT PRIMARY KEY, categories TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS token_revocations (user_id TEXT PRIMARY KEY, cut INTEGER NOT NULL, until_ms INTEGER NOT NULL);
` + AUDIENCE_SCHEMA + RETENTION_SCHEMA

const INSERT_ROW = `(id, category, created_ms, expires_ms, collapse_key, aud_users, aud_roles, aud_user, body)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`

interface Row { seq: number, body: string, is_read: number }
interface SplitStatements { reader: Database.Statement, audience: Database.Statement }
type AppendItem = { draft: Draft, idempotencyKey?: string }
interface AppendJob { items: readonly AppendItem[], resolve: (r: AppendResult[]) => void, reject: (e: unknown) => void }

export class SqliteStore implements HistoryStore {
  #epoch = ''
  readonly #path: string
  readonly #retention: Retention
  #db: Database.Database | undefined
  /** Rows in notifications, kept in step by this writer, so retention by count needs no scan below the limit. */
  #rows = 0
  #stmts!: ReturnType<SqliteStore['prepare']>
  /** Shared arms by (arm, role, categories); emptied by every write of this store and of any other connection. */
  readonly #shared = new Map<string, SharedArm>()
  #dataVersion = -1
  /** Bumped after every write to the rows (commit, retention, another connection's commit): SplitReads.writes. */
  #writes = 0

  constructor (path: string, retention: Partial<Retention> = {}) {
    this.#path = path
    this.#retention = { ...DEFAULT_RETENTION, ...retention }
  }

  get epoch (): string { return this.#epoch }

  async init (): Promise<void> {
    if (this.#path !== ':memory:') mkdirSync(dirname(this.#path), { recursive: true })
    const db = new Database(this.#path)
    db.pragma('journal_mode = WAL')
    // NORMAL in WAL mode: a commit survives a process crash; only an OS crash
    // or power loss can drop the last transactions. See docs/operations.md.
    db.pragma('synchronous = NORMAL')
    db.pragma('busy_timeout = 5000')
    // 16 MiB of page cache (default 2 MiB): room for the audience index, which takes random
    // inserts, and the recent rows that resumes read; more only grows the process.
    db.pragma('cache_size = -16384')
    // Checkpoint every 4,000 pages (16 MiB of WAL) instead of 1,000: each checkpoint copies the
    // latest version of every page and syncs twice, and the audience index takes random writes,
    // so fewer, larger checkpoints copy each hot page once instead of four times.
    db.pragma('wal_autocheckpoint = 4000')
    db.transaction(() => {
      db.exec(SCHEMA)
      const version = Number(db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get() ?? 0)
      if (version < SCHEMA_VERSION) {
        // Files written by schema 1 have notifications but no audience rows yet.
        if (version < 2) db.exec(BACKFILL)
        db.exec(DROP_UNUSED)
        const columns = db.prepare("SELECT name FROM pragma_table_info('notifications')").pluck().all()
        if (!columns.includes('aud_user')) db.exec(ADD_USER_COLUMN)
        db.exec(REPLACE_TRIGGERS)
        db.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
          .run(String(SCHEMA_VERSION))
      }
      db.exec(USER_ROW_SCHEMA)
    })()
    this.#db = db
    this.#stmts = this.prepare(db)
    this.#prepareTransactions(db)
    this.#rows = this.#stmts.countRows.get() as number
    const epoch = this.#stmts.getMeta.get('epoch') as { value: string } | undefined
    if (epoch) {
      this.#epoch = epoch.value
    } else {
      this.#epoch = randomUUID()
      this.#stmts.setMeta.run('epoch', this.#epoch)
    }
    await this.prune(Date.now())
  }

  private prepare (db: Database.Database) {
    return {
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      findIdem: db.prepare('SELECT notification FROM idempotency WHERE key = ?').pluck(),
      insertIdem: db.prepare('INSERT INTO idempotency (key, created_ms, notification) VALUES (?, ?, ?)'),
      deleteCollapsed: db.prepare('DELETE FROM notifications WHERE collapse_key = ?'),
      // Positional: binding an object by name costs a large share of the insert itself.
      insert: db.prepare(`INSERT INTO notifications ${INSERT_ROW}`),
      // For a row the audience trigger leaves alone (a broadcast, one user in the row): OR FAIL
      // needs no statement journal. With ABORT (the default) SQLite first copies every page the
      // insert touches, to undo this one statement on a constraint error; a single-row insert
      // checks every constraint before it writes, and any error rolls the whole transaction
      // back anyway (better-sqlite3's transaction, then #commit's retry alone). Not for the
      // other rows: the outer OR FAIL would override the trigger's INSERT OR IGNORE.
      insertUntriggered: db.prepare(`INSERT OR FAIL INTO notifications ${INSERT_ROW}`),
      lastSeq: db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'notifications'").pluck(),
      readUpTo: db.prepare('SELECT seq FROM read_upto WHERE user_id = ?').pluck(),
      hasMarks: db.prepare('SELECT 1 FROM read_marks WHERE user_id = ? LIMIT 1').pluck(),
      pageAsc: armStatements(db, arm => `${arm} ORDER BY 1 ASC LIMIT +@limit`),
      pageDesc: armStatements(db, arm => `${arm} ORDER BY 1 DESC LIMIT +@limit`),
      sharedBroadcast: db.prepare(SHARED.broadcast).raw(),
      sharedRole: db.prepare(SHARED.role).raw(),
      userArm: db.prepare(`${ARMS.user} LIMIT +@cap`).pluck(),
      userRowCount: db.prepare(`SELECT COUNT(*) FROM (${ARMS.userRow} LIMIT +@cap)`).pluck(),
      dataVersion: db.prepare('PRAGMA data_version').pluck(),
      rows: db.prepare(ROWS(IS_READ)),
      rowsWithoutMarks: db.prepare(ROWS('n.seq <= @upto')),
      unread: [
        db.prepare(`SELECT COUNT(*) FROM (${ARMS.broadcast('notifications_broadcast_category')} LIMIT +@cap)`).pluck(),
        db.prepare(`SELECT COUNT(*) FROM (${ARMS.userRow} LIMIT +@cap)`).pluck(),
        db.prepare(`SELECT COUNT(*) FROM (${ARMS.user} LIMIT +@cap)`).pluck(),
        db.prepare(`SELECT COUNT(*) FROM (${ARMS.role} LIMIT +@cap)`).pluck()
      ],
      markRead: db.prepare(`INSERT OR IGNORE INTO read_marks (user_id, seq)
        SELECT @userId, seq FROM notifications WHERE id IN (SELECT value FROM json_each(@ids))`),
      setUpTo: db.prepare(`INSERT INTO read_upto (user_id, seq) VALUES (@userId, @seq)
        ON CONFLICT (user_id) DO UPDATE SET seq = MAX(seq, excluded.seq)`),
      clearMarks: db.prepare('DELETE FROM read_marks WHERE user_id = @userId AND seq <= @seq'),
      // Both walk only the rows about to go, from the oldest end: the newest-first OFFSET and a
      // plain MAX(seq) (which SQLite answered by scanning the table backwards) cost milliseconds
      // at 100,000 rows.
      pruneCount: db.prepare('SELECT seq FROM notifications ORDER BY seq ASC LIMIT 1 OFFSET ?').pluck(),
      maxPrunedAge: db.prepare('SELECT MAX(seq) FROM notifications INDEXED BY notifications_created WHERE created_ms < ?').pluck(),
      deleteThrough: db.prepare('DELETE FROM notifications WHERE seq <= ?'),
      deleteExpired: db.prepare('DELETE FROM notifications WHERE expires_ms IS NOT NULL AND expires_ms <= ?'),
      deleteIdem: db.prepare('DELETE FROM idempotency WHERE created_ms < ?'),
      deleteMarks: db.prepare('DELETE FROM read_marks WHERE seq <= ?'),
      countRows: db.prepare('SELECT COUNT(*) FROM notifications').pluck(),
      ping: db.prepare('SELECT 1').pluck(),
      getMuted: db.prepare('SELECT categories FROM muted_categories WHERE user_id = ?').pluck(),
      setMuted: db.prepare(`INSERT INTO muted_categories (user_id, categories) VALUES (?, ?)
        ON CONFLICT (user_id) DO UPDATE SET categories = excluded.categories`),
      clearMuted: db.prepare('DELETE FROM muted_categories WHERE user_id = ?'),
      getMutedMany: db.prepare('SELECT user_id, categories FROM muted_categories WHERE user_id IN (SELECT value FROM json_each(?))'),
      idOfCollapseKey: db.prepare('SELECT id FROM notifications WHERE collapse_key = ?').pluck(),
      revoke: db.prepare(`INSERT INTO token_revocations (user_id, cut, until_ms) VALUES (@userId, @cut, @until)
        ON CONFLICT (user_id) DO UPDATE SET cut = MAX(cut, excluded.cut), until_ms = MAX(until_ms, excluded.until_ms)`),
      revokedThrough: db.prepare('SELECT cut FROM token_revocations WHERE user_id = ? AND until_ms > ?').pluck(),
      deleteRevocations: db.prepare('DELETE FROM token_revocations WHERE until_ms <= ?')
    }
  }

  get #database (): Database.Database {
    if (!this.#db) throw new Error('SqliteStore used before init() or after close()')
    return this.#db
  }

  #appendOne (draft: Draft, idempotencyKey?: string): AppendResult {
    const s = this.#stmts
    if (idempotencyKey !== undefined) {
      const seen = s.findIdem.get(idempotencyKey) as string | undefined
      if (seen !== undefined) return { notification: JSON.parse(seen) as StoredNotification, duplicate: true }
    }
    if (draft.collapseKey !== undefined) this.#rows -= s.deleteCollapsed.run(draft.collapseKey).changes
    const audience = draft.audience
    const users = audience?.users?.length ? JSON.stringify(audience.users) : null
    const roles = audience?.roles?.length ? JSON.stringify(audience.roles) : null
    // One user and no role: kept in the row (schema 4); aud_users stays set, so it is never a broadcast.
    const onlyUser = roles === null && audience?.users?.length === 1 ? audience.users[0]! : null
    const insert = onlyUser !== null || (users === null && roles === null) ? s.insertUntriggered : s.insert
    const info = insert.run(
      draft.id,
      draft.category,
      Date.parse(draft.createdAt),
      draft.expiresAt === undefined ? null : Date.parse(draft.expiresAt),
      draft.collapseKey ?? null,
      users,
      roles,
      onlyUser,
      storedBody(draft)
    )
    this.#rows++
    const notification = stamp(draft, Number(info.lastInsertRowid))
    if (idempotencyKey !== undefined) s.insertIdem.run(idempotencyKey, Date.parse(draft.createdAt), JSON.stringify(notification))
    return { notification, duplicate: false }
  }

  /** Callers' appends (each one or an all-or-nothing batch), waiting for the next group commit. */
  readonly #jobs = new MicroBatch<AppendJob>(jobs => this.#commit(jobs))

  async append (draft: Draft, idempotencyKey?: string): Promise<AppendResult> {
    const [result] = await this.#enqueue([{ draft, ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) }])
    return result!
  }

  async appendMany (items: readonly AppendItem[]): Promise<AppendResult[]> {
    return this.#enqueue(items)
  }

  /**
   * Group commit: appends that arrive in the same turn of the event loop are
   * written in one transaction, committed once, each caller resolved only after
   * that commit. A commit costs more than a row here (a WAL write per commit),
   * so under concurrent publishes this multiplies throughput; alone, an append
   * waits one setImmediate. If the group fails, each caller is retried alone,
   * so one bad batch fails alone (savepoints would make every write pay for a
   * statement journal).
   */
  #enqueue (items: readonly AppendItem[]): Promise<AppendResult[]> {
    if (!this.#db) return Promise.reject(new Error('SqliteStore used before init() or after close()'))
    return new Promise((resolve, reject) => { this.#jobs.push({ items, resolve, reject }) })
  }

  #commit (jobs: AppendJob[]): void {
    // Synchronous from here to the end: no read runs between this and the writes below.
    this.#shared.clear()
    // Before any caller is resumed: whatever it does next sees the new count.
    this.#writes++
    if (!this.#db) {
      for (const job of jobs) job.reject(new Error('SqliteStore closed before the append was written'))
      return
    }
    let results: AppendResult[][]
    try {
      results = this.#groupTx(jobs.map(j => j.items))
    } catch {
      // Something in the group failed and it rolled back whole: redo each caller alone, so only the bad one fails.
      this.#rows = this.#stmts.countRows.get() as number
      for (const job of jobs) {
        try {
          job.resolve(this.#jobTx(job.items))
        } catch (err) {
          this.#rows = this.#stmts.countRows.get() as number
          job.reject(err)
        }
      }
      return
    }
    jobs.forEach((job, i) => job.resolve(results[i]!))
  }

  // Transaction functions are built once: creating one per append costs as much as the insert.
  #jobTx!: (items: readonly AppendItem[]) => AppendResult[]
  #groupTx!: (batches: ReadonlyArray<readonly AppendItem[]>) => AppendResult[][]

  #prepareTransactions (db: Database.Database): void {
    const appendAll = (items: readonly AppendItem[]) => items.map(i => this.#appendOne(i.draft, i.idempotencyKey))
    // The one retention rule of every store: applied on every append, inside the appending
    // transaction (never a stored-but-failed publish). Each step is an index probe when nothing is due.
    const retention = () => { this.#pruneRows(Date.now()) }
    this.#jobTx = db.transaction((items: readonly AppendItem[]) => {
      const results = appendAll(items)
      retention()
      return results
    })
    this.#groupTx = db.transaction((batches: ReadonlyArray<readonly AppendItem[]>) => {
      const results = batches.map(appendAll)
      retention()
      return results
    })
  }

  async lastSeq (): Promise<number> {
    return (this.#stmts.lastSeq.get() as number | undefined) ?? 0
  }

  async prunedThrough (): Promise<number> {
    const v = this.#stmts.getMeta.get('pruned_through') as { value: string } | undefined
    return v ? Number(v.value) : 0
  }

  #params (user: User, categories: readonly string[], now: number) {
    const upto = (this.#stmts.readUpTo.get(user.id) as number | undefined) ?? 0
    return { userId: user.id, role: user.role, categories: JSON.stringify(categories), now, upto }
  }

  /**
   * Whether rows above read_upto must also be checked against read marks. A
   * user without marks (most: mark-all-read clears them) is spared a lookup per
   * row: half the cost of an unread count.
   */
  #checkMarks (userId: string): 0 | 1 {
    return this.#stmts.hasMarks.get(userId) === undefined ? 0 : 1
  }

  async query (q: HistoryQuery): Promise<ClientNotification[]> {
    const asc = q.order === 'asc'
    const params = this.#params(q.user, q.categories, q.now)
    const unreadOnly = q.unreadOnly === true
    const after = q.after ?? 0
    const marks = this.#checkMarks(q.user.id)
    const bound = {
      ...params,
      // Everything up to read_upto is read: an unread-only walk starts above it.
      after: unreadOnly ? Math.max(after, params.upto) : after,
      before: q.before ?? Number.MAX_SAFE_INTEGER,
      unreadOnly: unreadOnly ? marks : 0,
      limit: q.limit
    }
    // Each arm gives at most `limit` seqs in order; the page is the first `limit` of their union.
    const [broadcast, ownRow, own, role] = asc ? this.#stmts.pageAsc : this.#stmts.pageDesc
    let seqs: number[]
    if (bound.unreadOnly === 0) {
      // No read mark to check per row: the shared arms come from the cache when it holds them and
      // reaches far enough. A page does not fill it: reading 1,001 entries to list 50 would make a
      // page right after an append dearer than its own walk; the unread count (every connect) fills it.
      const range = (arm: SharedArm | undefined) => arm && sharedRange(arm, bound.after, bound.before, q.limit, asc)
      seqs = [...new Set([
        ...(range(this.#sharedArm('broadcast', params, false)) ?? broadcast!.all(bound) as number[]),
        ...(range(this.#sharedArm('role', params, false)) ?? role!.all(bound) as number[]),
        ...ownRow!.all(bound) as number[],
        ...own!.all(bound) as number[]
      ])]
    } else {
      seqs = [broadcast!, ownRow!, own!, role!].flatMap(stmt => stmt.all(bound) as number[])
    }
    seqs.sort(asc ? (a, b) => a - b : (a, b) => b - a)
    if (seqs.length === 0) return []
    const rows = (marks ? this.#stmts.rows : this.#stmts.rowsWithoutMarks)
      .all({ userId: params.userId, upto: params.upto, seqs: JSON.stringify(seqs.slice(0, q.limit)) }) as Row[]
    rows.sort(asc ? (a, b) => a.seq - b.seq : (a, b) => b.seq - a.seq)
    return rows.map(r => {
      // The parsed body is this call's own object: completed in place rather than copied.
      const n = JSON.parse(r.body) as ClientNotification
      n.seq = r.seq
      n.read = r.is_read === 1
      return n
    })
  }

  async unreadCount (user: User, categories: readonly string[], now: number): Promise<number> {
    const params = this.#params(user, categories, now)
    const bound = { ...params, after: params.upto, before: Number.MAX_SAFE_INTEGER, unreadOnly: this.#checkMarks(user.id), cap: UNREAD_COUNT_CAP }
    if (bound.unreadOnly === 0) {
      return this.#unreadWithoutMarks(params, () => this.#stmts.userArm.all(bound) as number[], () => this.#stmts.userRowCount.get(bound) as number)
    }
    let count = 0
    for (const stmt of this.#stmts.unread) count += stmt.get(bound) as number
    return Math.min(count, UNREAD_COUNT_CAP)
  }

  /**
   * Unread is everything above read_upto for a reader without marks: the shared arms counted from
   * the cache, only the user's own walked (`own`: its audience-table arm, `alone`: its in-row arm).
   */
  #unreadWithoutMarks (params: { role: string, categories: string, now: number, upto: number }, own: () => number[], alone: () => number, noted = false): number {
    if (!noted) this.#noteOtherWriters()
    const broadcasts = countAbove(this.#sharedArm('broadcast', params, true, true)!.seqs, params.upto)
    if (broadcasts >= UNREAD_COUNT_CAP) return UNREAD_COUNT_CAP
    const role = this.#sharedArm('role', params, true, true)!.seqs
    const roles = countAbove(role, params.upto)
    // Below the cap, each list holds every seq above read_upto (a full list reaches the cap).
    if (broadcasts + roles >= UNREAD_COUNT_CAP) return UNREAD_COUNT_CAP
    const seqs = own()
    // A row naming both the user and its role is in both lists: count it once. A row of the user
    // alone (aud_user) names no role: never in the role list.
    const both = seqs.filter(seq => role[countAbove(role, seq)] === seq).length
    return Math.min(UNREAD_COUNT_CAP, broadcasts + roles + alone() + seqs.length - both)
  }

  /** Another connection (a second process on this file) may have written: its commits change data_version. */
  #noteOtherWriters (read?: number): void {
    const version = read ?? this.#stmts.dataVersion.get() as number
    if (version === this.#dataVersion) return
    this.#dataVersion = version
    this.#shared.clear()
    this.#writes++
  }

  /**
   * The broadcast arm, or the arm of the user's role, from the cache; when it is absent or stale, read again if `fill`.
   * `noted`: the caller has just checked for other writers (in the same synchronous run).
   */
  #sharedArm (kind: 'broadcast' | 'role', params: { role: string, categories: string, now: number }, fill: boolean, noted = false): SharedArm | undefined {
    const s = this.#stmts
    if (!noted) this.#noteOtherWriters()
    const { role, categories, now } = params
    const key = kind === 'broadcast' ? `b ${categories}` : `r ${role} ${categories}`
    const cached = this.#shared.get(key)
    // A cache read at `filledAt` left out what had expired by then: valid for later times only, until its first expiry.
    if (cached !== undefined && cached.filledAt <= now && now < cached.validUntil) return cached
    if (!fill) return undefined
    const rows = (kind === 'broadcast' ? s.sharedBroadcast : s.sharedRole).all({ role, categories, now, depth: SHARED_DEPTH }) as Array<[number, number | null]>
    let validUntil = Infinity
    const seqs = rows.map(([seq, expires]) => {
      if (expires !== null && expires < validUntil) validUntil = expires
      return seq
    })
    const arm: SharedArm = { seqs, complete: seqs.length < SHARED_DEPTH, filledAt: now, validUntil }
    if (this.#shared.size >= SHARED_ENTRIES) this.#shared.clear()
    this.#shared.set(key, arm)
    return arm
  }

  async markRead (userId: string, ids: readonly string[]): Promise<void> {
    this.#stmts.markRead.run({ userId, ids: JSON.stringify(ids) })
  }

  async markAllRead (userId: string, upToSeq: number): Promise<void> {
    this.#database.transaction(() => {
      this.#stmts.setUpTo.run({ userId, seq: upToSeq })
      this.#stmts.clearMarks.run({ userId, seq: upToSeq })
    })()
  }

  /** Retention in the caller's transaction. */
  #pruneRows (now: number): void {
    const s = this.#stmts
    // The newest maxCount rows stay: through the (rows - maxCount)-th oldest goes.
    const excess = this.#rows - this.#retention.maxCount
    const byCount = excess > 0 ? (s.pruneCount.get(excess - 1) as number | undefined) ?? 0 : 0
    const byAge = (s.maxPrunedAge.get(now - this.#retention.maxAgeMs) as number | null) ?? 0
    const through = Math.max(byCount, byAge)
    if (through > 0) {
      this.#rows -= s.deleteThrough.run(through).changes
      s.deleteMarks.run(through)
      const previous = (s.getMeta.get('pruned_through') as { value: string } | undefined)?.value
      if (previous === undefined || Number(previous) < through) s.setMeta.run('pruned_through', String(through))
    }
    // Expired rows are never delivered nor listed, so removing them loses nothing a cursor could want.
    this.#rows -= s.deleteExpired.run(now).changes
    s.deleteIdem.run(now - this.#retention.maxAgeMs)
    s.deleteRevocations.run(now)
  }

  async getMuted (userId: string): Promise<string[]> {
    const json = this.#stmts.getMuted.get(userId) as string | undefined
    return json === undefined ? [] : JSON.parse(json) as string[]
  }

  async setMuted (userId: string, muted: readonly string[]): Promise<void> {
    if (muted.length === 0) this.#stmts.clearMuted.run(userId)
    else this.#stmts.setMuted.run(userId, JSON.stringify([...new Set(muted)]))
  }

  async getMutedMany (userIds: readonly string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>()
    if (userIds.length === 0) return out
    const rows = this.#stmts.getMutedMany.all(JSON.stringify(userIds)) as Array<{ user_id: string, categories: string }>
    for (const row of rows) out.set(row.user_id, JSON.parse(row.categories) as string[])
    return out
  }

  async idOfIdempotencyKey (key: string): Promise<string | null> {
    // Appends still queued are not visible here: a dry run racing a publish may miss it.
    const json = this.#stmts.findIdem.get(key) as string | undefined
    return json === undefined ? null : (JSON.parse(json) as { id: string }).id
  }

  async idOfCollapseKey (collapseKey: string): Promise<string | null> {
    return (this.#stmts.idOfCollapseKey.get(collapseKey) as string | undefined) ?? null
  }

  async revokeTokens (userId: string, issuedAtOrBefore: number, until: number): Promise<void> {
    this.#stmts.revoke.run({ userId, cut: issuedAtOrBefore, until })
  }

  async revokedThrough (userId: string, now: number): Promise<number> {
    return (this.#stmts.revokedThrough.get(userId, now) as number | undefined) ?? 0
  }

  async ping (): Promise<void> {
    this.#stmts.ping.get()
  }

  async prune (now: number): Promise<void> {
    this.#shared.clear()
    this.#database.transaction(() => this.#pruneRows(now))()
    this.#writes++
  }

  // ---- split reads (SplitReads): the arms of query() and unreadCount() one at a time ----

  /** Prepared on first use: only a manager that shares reads asks these. */
  #splitStmts: SplitStatements | undefined

  get #split (): SplitStatements {
    const page = (arm: string) => `(SELECT json_group_array(seq) FROM (${arm} ORDER BY 1 ASC LIMIT +@limit))`
    this.#splitStmts ??= {
      // Both of a reader's read state in one statement.
      reader: this.#database.prepare(`SELECT (SELECT seq FROM read_upto WHERE user_id = @userId) AS upto,
        EXISTS (SELECT 1 FROM read_marks WHERE user_id = @userId) AS marks`),
      audience: this.#database.prepare(`SELECT ${page(ARMS.userRow)}, ${page(ARMS.user)}, ${page(ARMS.role)}`).raw()
    }
    return this.#splitStmts
  }

  readonly split: SplitReads = this.#makeSplit()

  // ---- a connecting client's reads (HistoryStore.handshakeState, connectState), one statement each ----
  // Each statement outside a transaction is a read transaction of its own: in WAL mode two fcntl
  // calls on the -shm file besides its work, so the reads a connect needs are made one statement.

  /** Prepared on first use, like the split reads. */
  #connectStmt: Database.Statement | undefined
  #connectReplayStmt: Database.Statement | undefined
  #handshakeStmt: Database.Statement | undefined

  /** The revocation cut and the muted categories in one statement. */
  async handshakeState (userId: string, now: number): Promise<HandshakeState> {
    this.#handshakeStmt ??= this.#database.prepare(`SELECT
      (SELECT categories FROM muted_categories WHERE user_id = @userId) AS muted,
      (SELECT cut FROM token_revocations WHERE user_id = @userId AND until_ms > @now) AS cut`)
    const row = this.#handshakeStmt.get({ userId, now }) as { muted: string | null, cut: number | null }
    return { muted: row.muted === null ? [] : JSON.parse(row.muted) as string[], revokedThrough: row.cut ?? 0 }
  }

  /**
   * lastSeq, prunedThrough, the muted categories, the revocation cut, the read state, the user's
   * own unread arms (walked above its read_upto), data_version and, for a resume, its first page's
   * own arms: the reads of up to eleven statements, each scalar subquery planned as on its own.
   */
  #connectStatement (replay: boolean): Database.Statement {
    const above = (arm: string) => arm.replace(/([an])\.seq > @after/, '$1.seq > r.upto')
    // The replay's page in its own categories after its own cursor (the arms of audiencePage).
    const page = (arm: string) => `(SELECT json_group_array(seq) FROM (${arm.replaceAll('@categories', '@pageCategories')} ORDER BY 1 ASC LIMIT +@limit))`
    return this.#database.prepare(`WITH r AS (SELECT coalesce((SELECT seq FROM read_upto WHERE user_id = @userId), 0) AS upto)
      SELECT (SELECT data_version FROM pragma_data_version()) AS version,
        ${replay ? `${page(ARMS.userRow)} AS pageRow, ${page(ARMS.user)} AS pageUser, ${page(ARMS.role)} AS pageRole,` : ''}
        (SELECT seq FROM sqlite_sequence WHERE name = 'notifications') AS lastSeq,
        (SELECT value FROM meta WHERE key = 'pruned_through') AS pruned,
        r.upto AS upto,
        EXISTS (SELECT 1 FROM read_marks WHERE user_id = @userId) AS marks,
        (SELECT categories FROM muted_categories WHERE user_id = @userId) AS muted,
        (SELECT cut FROM token_revocations WHERE user_id = @userId AND until_ms > @now) AS cut,
        r.upto < @floor AS skipped,
        CASE WHEN r.upto < @floor THEN 0 ELSE (SELECT COUNT(*) FROM (${above(ARMS.userRow)} LIMIT +@cap)) END AS alone,
        CASE WHEN r.upto < @floor THEN '[]' ELSE (SELECT json_group_array(seq) FROM (${above(ARMS.user)} LIMIT +@cap)) END AS own
      FROM r`)
  }

  async connectState (user: User, categories: readonly string[], now: number, replay?: ReplayRequest): Promise<ConnectState> {
    type Row = {
      version: number, lastSeq: number | null, pruned: string | null, upto: number, marks: number, muted: string | null, cut: number | null,
      skipped: number, alone: number, own: string, pageRow?: string, pageUser?: string, pageRole?: string
    }
    const stmt = replay === undefined
      ? this.#connectStmt ??= this.#connectStatement(false)
      : this.#connectReplayStmt ??= this.#connectStatement(true)
    const json = JSON.stringify(categories)
    const shared = { role: user.role, categories: json, now }
    const row = stmt.get({
      userId: user.id, role: user.role, categories: json, now, unreadOnly: 0, upto: 0, before: Number.MAX_SAFE_INTEGER, cap: UNREAD_COUNT_CAP,
      floor: this.#capFloor(shared),
      ...(replay === undefined ? {} : { pageCategories: JSON.stringify(replay.categories), after: replay.after, limit: replay.limit })
    }) as Row
    // The statement read data_version too: this is the check for other writers.
    this.#noteOtherWriters(row.version)
    // Own rows not walked (the cached shared arms reach the cap above the read position) are read
    // only if the cache the floor came from went stale with another process's write.
    const walked = row.skipped === 0
    const bound = { userId: user.id, role: user.role, categories: json, now, upto: row.upto, after: row.upto, before: Number.MAX_SAFE_INTEGER, unreadOnly: 0, cap: UNREAD_COUNT_CAP }
    const reader = { upto: row.upto, marks: row.marks === 1 }
    let unread = 0
    if (categories.length > 0) {
      unread = reader.marks
        // Rows above read_upto may be read: the ordinary count checks each against the marks.
        ? await this.unreadCount(user, categories, now)
        : this.#unreadWithoutMarks({ ...shared, upto: reader.upto },
          () => walked ? JSON.parse(row.own) as number[] : this.#stmts.userArm.all(bound) as number[],
          () => walked ? row.alone : this.#stmts.userRowCount.get(bound) as number, true)
    }
    const state: ConnectState = {
      lastSeq: row.lastSeq ?? 0,
      prunedThrough: row.pruned === null ? 0 : Number(row.pruned),
      muted: row.muted === null ? [] : JSON.parse(row.muted) as string[],
      revokedThrough: row.cut ?? 0,
      unread,
      reader,
      writes: this.#writes
    }
    // The page is a reader's without marks (SplitReads.audiencePage); one with marks takes the ordinary query.
    if (replay !== undefined && !reader.marks) {
      const seqs = [row.pageRow!, row.pageUser!, row.pageRole!].flatMap(list => JSON.parse(list) as number[])
      state.audience = this.#rowsOf(seqs, user, replay.limit, reader.upto)
    }
    return state
  }

  /**
   * The seq below which a read position has UNREAD_COUNT_CAP unread on the shared arms alone (the
   * cap-th newest of the cached broadcast and role arms together), so that a connect need not walk
   * the reader's own rows (up to 1,000 index entries for a user with many of its own); -1 when the
   * arms are not cached or hold fewer. From the cache only: the caller's statement checks for
   * other writers.
   */
  #capFloor (params: { role: string, categories: string, now: number }): number {
    const broadcast = this.#sharedArm('broadcast', params, false, true)?.seqs
    if (broadcast === undefined) return -1
    // The unread count stops at the broadcasts when they reach the cap: the role arm may not be cached then.
    if (broadcast.length >= UNREAD_COUNT_CAP) return broadcast[UNREAD_COUNT_CAP - 1]!
    const role = this.#sharedArm('role', params, false, true)?.seqs
    if (role === undefined || broadcast.length + role.length < UNREAD_COUNT_CAP) return -1
    // Both descending and disjoint: merge down to the cap-th.
    let b = 0
    let r = 0
    for (let k = 1; k < UNREAD_COUNT_CAP; k++) {
      if (r >= role.length || (b < broadcast.length && broadcast[b]! > role[r]!)) b++
      else r++
    }
    return Math.max(broadcast[b] ?? -1, role[r] ?? -1)
  }

  #makeSplit (): SplitReads {
    const store = this
    const everyone: User = { id: '', role: '' }
    return {
      get writes () {
        store.#noteOtherWriters()
        return store.#writes
      },
      reader: async (userId) => {
        const row = this.#split.reader.get({ userId }) as { upto: number | null, marks: number }
        return { upto: row.upto ?? 0, marks: row.marks === 1 }
      },
      // The broadcast arm reads neither the user nor its role; upto -1: every row unread.
      broadcastPage: async (categories, after, limit, now) =>
        this.#armRows([this.#stmts.pageAsc[0]!], everyone, categories, after, limit, now, -1),
      audiencePage: async (user, categories, after, limit, now, upto) => {
        // The reader's three arms in one statement (each a scalar subquery, planned as on its own).
        const bound = this.#armParams(user, categories, after, now, { limit })
        const arms = this.#split.audience.get(bound) as string[]
        return this.#rowsOf(arms.flatMap(json => JSON.parse(json) as number[]), user, limit, upto)
      }
    }
  }

  /** The parameters of one arm for a reader without marks: rows above `after`, any read state. */
  #armParams (user: User, categories: readonly string[], after: number, now: number, extra: Record<string, number>) {
    return {
      userId: user.id, role: user.role, categories: JSON.stringify(categories), now, upto: 0,
      after, before: Number.MAX_SAFE_INTEGER, unreadOnly: 0, ...extra
    }
  }

  #armRows (arms: Database.Statement[], user: User, categories: readonly string[], after: number, limit: number, now: number, upto: number): ClientNotification[] {
    const bound = this.#armParams(user, categories, after, now, { limit })
    return this.#rowsOf(arms.flatMap(stmt => stmt.all(bound) as number[]), user, limit, upto)
  }

  /** The first `limit` of the arms' `seqs` (disjoint, each ascending) as notifications, ascending. */
  #rowsOf (seqs: number[], user: User, limit: number, upto: number): ClientNotification[] {
    if (seqs.length === 0) return []
    seqs.sort((a, b) => a - b)
    const rows = this.#stmts.rowsWithoutMarks.all({ userId: user.id, upto, seqs: JSON.stringify(seqs.slice(0, limit)) }) as Row[]
    rows.sort((a, b) => a.seq - b.seq)
    return rows.map(r => {
      const n = JSON.parse(r.body) as ClientNotification
      n.seq = r.seq
      n.read = r.is_read === 1
      return n
    })
  }

  async close (): Promise<void> {
    // Whatever is queued is written before the file closes.
    if (this.#db) this.#jobs.flush()
    this.#db?.close()
    this.#db = undefined
  }
}
