// The package entry: everything a host app, a client or a test imports.
export { unifiedNotifications, unifiedNotifications as default } from './plugins/notifications.js'
export type { UnifiedNotificationsOptions, AuthenticateFn } from './plugins/options.js'
export { NotificationManager } from './src/manager.js'
export {
  dashboardAdapter, adminHealthAdapter, maintenanceProgressAdapter, defineAdapter,
  MigrationReport, AdapterReport, LegacyEventReport
} from './adapters/index.js'
export type { AdapterDefinition, LegacyAdapter, LegacyAdapterOptions, LegacyEventMapping, LegacyOutcome } from './adapters/index.js'
export type { PublishOptions, PublishOutcome, HistoryOptions, HistoryPage, ManagerStats, MarkReadRequest } from './src/manager.js'
export type { NotificationService } from './src/notification-service.js'
export type { Clock } from './src/clock.js'
export * from './src/schemas.js'
export { RolePolicy, DEFAULT_ROLES, type RoleRules } from './src/policy.js'
export { DEFAULT_LIMITS, type Limits } from './src/limits.js'
export { CloseCode, FrameErrorCode } from './src/errors.js'
export {
  MemoryStore, SqliteStore, RedisStore, DEFAULT_RETENTION, DEFAULT_REDIS_PREFIX,
  type HistoryStore, type Retention, type RedisStoreOptions
} from './src/stores/index.js'
export { LocalBroker, RedisBroker, type Broker, type BrokerMessage, type RedisBrokerOptions } from './src/brokers/index.js'
export type { Presence, PresenceEntry, ClusterSizes } from './src/presence/presence.js'
export { signToken } from './src/tokens.js'
export { createClient } from './src/client/index.js'
export type { NotificationClient, ClientOptions } from './src/client/index.js'
