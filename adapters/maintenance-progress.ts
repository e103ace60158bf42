// Maintenance operations: started → progress… → completed or failed. One
// collapse key per operation, so history keeps only its latest state.
import { Type } from '@sinclair/typebox'
import { defineAdapter } from './legacy-adapter.js'
import { LegacyMessage, Identifier } from './legacy-schemas.js'

// 'maintenance:' + id stays within the 200 characters of a collapse key.
const OperationId = Identifier(150)

const MaintenanceStartedPayload = Type.Object({
  operation_id: OperationId,
  operation_type: Identifier(100),
  message: Type.Optional(LegacyMessage),
  estimated_duration: Type.Optional(Type.Number({ minimum: 0, description: 'Seconds' }))
})

const MaintenanceProgressPayload = Type.Object({
  operation_id: OperationId,
  progress: Type.Number({ minimum: 0, maximum: 100 }),
  message: Type.Optional(LegacyMessage)
})

const MaintenanceCompletedPayload = Type.Object({
  operation_id: OperationId,
  message: Type.Optional(LegacyMessage)
})

const MaintenanceFailedPayload = Type.Object({
  operation_id: OperationId,
  error: Type.String({ minLength: 1, maxLength: 2000 })
})

const collapseKey = (operationId: string) => `maintenance:${operationId}`
const REPLACEMENT = "app.notifications.publish({ category: 'maintenance', collapseKey: `maintenance:${operationId}`, type, title, message, data: { operation_id, progress } })"

export const maintenanceProgressAdapter = defineAdapter({
  name: 'maintenance',
  events: {
    maintenance_started: {
      schema: MaintenanceStartedPayload,
      replacement: `${REPLACEMENT} with type 'progress'`,
      toPublish: p => ({
        category: 'maintenance',
        type: 'progress',
        title: `Maintenance started: ${p.operation_type}`,
        message: p.message ?? `Operation ${p.operation_id} has started`,
        data: {
          operation_id: p.operation_id,
          operation_type: p.operation_type,
          progress: 0,
          ...(p.estimated_duration !== undefined ? { estimated_duration: p.estimated_duration } : {})
        },
        collapseKey: collapseKey(p.operation_id)
      })
    },
    maintenance_progress: {
      schema: MaintenanceProgressPayload,
      replacement: `${REPLACEMENT} with type 'progress'`,
      toPublish: p => ({
        category: 'maintenance',
        type: 'progress',
        title: `Maintenance in progress: ${p.progress}%`,
        message: p.message ?? `Operation ${p.operation_id} is ${p.progress}% complete`,
        data: { operation_id: p.operation_id, progress: p.progress },
        collapseKey: collapseKey(p.operation_id)
      })
    },
    maintenance_completed: {
      schema: MaintenanceCompletedPayload,
      replacement: `${REPLACEMENT} with type 'success'`,
      toPublish: p => ({
        category: 'maintenance',
        type: 'success',
        title: 'Maintenance completed',
        message: p.message ?? `Operation ${p.operation_id} has completed`,
        data: { operation_id: p.operation_id, progress: 100 },
        collapseKey: collapseKey(p.operation_id)
      })
    },
    maintenance_failed: {
      schema: MaintenanceFailedPayload,
      replacement: `${REPLACEMENT} with type 'error' and priority 'high'`,
      toPublish: p => ({
        category: 'maintenance',
        type: 'error',
        priority: 'high',
        title: 'Maintenance failed',
        message: p.error,
        data: { operation_id: p.operation_id, error: p.error },
        collapseKey: collapseKey(p.operation_id)
      })
    }
  }
})
