// What a host app, a plugin or an adapter may call on `app.notifications`: the
// manager's public surface, without its registry, store, broker or delivery.
// The WebSocket and REST plugins get the manager itself; everyone else gets this.
import type {
  DisconnectOptions, HistoryOptions, HistoryPage, InternalSizes, ManagerStats, MarkReadRequest, MigrationReportProvider, PublishOptions,
  PublishOutcome
} from './manager.js'
import type { MigrationReport } from './migration-report.js'
import type { ClusterSizes, PresenceEntry } from './presence/presence.js'
import type { DryRunResult, Preferences, PublishInput, User } from './schemas.js'

export interface NotificationService {
  /** Validates, stores and delivers one notification; a repeated idempotencyKey returns the first one. */
  publish (input: PublishInput, opts?: PublishOptions): Promise<PublishOutcome>
  /** All valid or none published; stored in one transaction, in order. */
  publishMany (inputs: readonly PublishInput[], opts?: PublishOptions): Promise<PublishOutcome[]>
  /** A user's own history, newest first, each with its read flag. */
  history (user: User, opts?: HistoryOptions): Promise<HistoryPage>
  /** Marks `ids`, or everything (`all: true`), read; resolves with the unread count. */
  markRead (user: User, what: MarkReadRequest): Promise<number>
  unread (user: User): Promise<number>
  stats (): ManagerStats
  /** The adapters' migration report, per adapter and legacy event. */
  migration (): MigrationReport
  /** This instance's id, unique among the instances of a deployment. */
  readonly instance: string
  /** Whether each user has a connection on any instance, how many, and since when. */
  presence (userIds: readonly string[]): Promise<Record<string, PresenceEntry>>
  /** Live instances, their connections and distinct users, across the deployment. */
  cluster (): Promise<ClusterSizes>
  /** Whether the store and the broker answer. */
  health (): Promise<{ store: boolean, broker: boolean }>
  /** Sizes of every index, timer and per-connection table (all back to their baseline when connections go). */
  sizes (): InternalSizes
  /** An adapter's migration counters, read at each migration() call. */
  registerMigrationReport (adapter: string, provider: MigrationReportProvider): void
  unregisterMigrationReport (adapter: string): void
  /** Validates as publish() does and says who would get it now, and why not; stores, delivers and counts nothing. */
  dryRun (input: PublishInput, opts?: Pick<PublishOptions, 'source'>): Promise<DryRunResult>
  /** The user's muted categories and the locked ones. */
  preferences (user: User): Promise<Preferences>
  /** Replaces the user's muted categories, applied at once to every connection of theirs on every instance. */
  setPreferences (user: User, muted: readonly string[]): Promise<Preferences>
  /** Closes every connection of the user (4003) on every instance; with revokeTokens, refuses their current tokens. */
  disconnectUser (userId: string, opts?: DisconnectOptions): Promise<{ closed: number }>
}
