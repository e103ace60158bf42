// The admin health monitor: periodic system status and component alerts, for admins only.
import { Type, type Static } from '@sinclair/typebox'
import { defineAdapter } from './legacy-adapter.js'
import { LegacyMessage, Identifier } from './legacy-schemas.js'

const HealthStatus = Type.Union([Type.Literal('healthy'), Type.Literal('degraded'), Type.Literal('unhealthy')])

const HealthUpdatePayload = Type.Object({
  status: HealthStatus,
  components: Type.Record(
    Identifier(100),
    Type.Object({ status: Type.String({ minLength: 1, maxLength: 64 }), message: Type.Optional(Type.String({ maxLength: 500 })) }),
    { maxProperties: 100 }
  ),
  timestamp: Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Number()], { description: 'ISO 8601 or epoch milliseconds, passed through' })
})
type HealthUpdatePayload = Static<typeof HealthUpdatePayload>

const HealthAlertPayload = Type.Object({
  component: Identifier(100),
  severity: Type.Union([Type.Literal('warning'), Type.Literal('critical')]),
  message: LegacyMessage
})

const ADMINS = { roles: ['admin'] }
const TYPE_OF_STATUS = { healthy: 'success', degraded: 'warning', unhealthy: 'error' } as const

/** "database: unhealthy (connection refused); cache: degraded", or that all is well. */
function summary (p: HealthUpdatePayload): string {
  const troubled = Object.entries(p.components)
    .filter(([, c]) => c.status !== 'healthy')
    .map(([name, c]) => `${name}: ${c.status}${c.message ? ` (${c.message})` : ''}`)
  const text = troubled.length === 0 ? 'All components healthy' : troubled.join('; ')
  return text.length > 2000 ? `${text.slice(0, 1999)}…` : text
}

export const adminHealthAdapter = defineAdapter({
  name: 'admin-health',
  events: {
    health_update: {
      schema: HealthUpdatePayload,
      replacement: "app.notifications.publish({ category: 'health', audience: { roles: ['admin'] }, collapseKey: 'health:system', type, priority, title, data })",
      toPublish: p => ({
        category: 'health',
        type: TYPE_OF_STATUS[p.status],
        priority: p.status === 'unhealthy' ? 'high' : 'normal',
        title: `System health: ${p.status}`,
        message: summary(p),
        data: { status: p.status, components: p.components, timestamp: p.timestamp },
        collapseKey: 'health:system',
        audience: ADMINS
      })
    },
    health_alert: {
      schema: HealthAlertPayload,
      replacement: "app.notifications.publish({ category: 'health', audience: { roles: ['admin'] }, priority: 'critical', type, title, message })",
      toPublish: p => ({
        category: 'health',
        type: p.severity === 'critical' ? 'error' : 'warning',
        priority: 'critical',
        title: `Health alert: ${p.component}`,
        message: p.message,
        data: { component: p.component, severity: p.severity },
        audience: ADMINS
      })
    }
  }
})
