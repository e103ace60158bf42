// The legacy adapters, and the table the standalone server enables them from
// (NOTIFY_LEGACY_ADAPTERS). A new adapter is a file of mappings plus one line here.
import type { FastifyPluginAsync } from 'fastify'
import { adminHealthAdapter } from './admin-health.js'
import { dashboardAdapter } from './dashboard.js'
import type { LegacyAdapterOptions } from './legacy-adapter.js'
import { maintenanceProgressAdapter } from './maintenance-progress.js'

export { dashboardAdapter, adminHealthAdapter, maintenanceProgressAdapter }
export { defineAdapter, ADAPTER_DEFAULTS, type AdapterDefinition, type LegacyAdapter, type LegacyAdapterOptions, type LegacyEventMapping, type LegacyOutcome } from './legacy-adapter.js'
export { MigrationReport, AdapterReport, LegacyEventReport } from '../src/migration-report.js'

/** By adapter name: the `source` of their notifications and the NOTIFY_LEGACY_ADAPTERS value. */
export const LEGACY_ADAPTERS: ReadonlyMap<string, FastifyPluginAsync<LegacyAdapterOptions>> = new Map([
  ['dashboard', dashboardAdapter],
  ['admin-health', adminHealthAdapter],
  ['maintenance', maintenanceProgressAdapter]
])
