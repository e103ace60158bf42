// The dry run's answer: who would get a notification now, and for each user the
// audience names, why or why not. Reads the registry and the muted lists it is
// given; stores, delivers and counts nothing.
import type { RolePolicy } from './policy.js'
import type { ConnectionRegistry } from './registry.js'
import type { AudienceStatus, DryRunResult, StoredNotification } from './schemas.js'

export interface DryRunFacts {
  duplicateOf: string | null
  collapses: string | null
  /** Muted categories of the users the audience names (one batched store read). */
  muted: ReadonlyMap<string, readonly string[]>
}

export function describeDryRun (
  registry: ConnectionRegistry,
  policy: RolePolicy,
  n: Pick<StoredNotification, 'category' | 'audience'>,
  facts: DryRunFacts
): DryRunResult {
  const reached = registry.recipients(n)
  const reachedUsers = new Set<string>()
  for (const conn of reached) reachedUsers.add(conn.user.id)

  const audience: Record<string, AudienceStatus> = {}
  for (const userId of n.audience?.users ?? []) audience[userId] = statusOf(registry, policy, n.category, userId, reachedUsers, facts.muted)

  // A repeated idempotency key delivers nothing: the publish would answer with the first notification.
  const duplicate = facts.duplicateOf !== null
  return {
    dryRun: true,
    duplicateOf: facts.duplicateOf,
    collapses: facts.collapses,
    recipients: { connections: duplicate ? 0 : reached.length, users: duplicate ? 0 : reachedUsers.size },
    audience
  }
}

function statusOf (
  registry: ConnectionRegistry,
  policy: RolePolicy,
  category: string,
  userId: string,
  reachedUsers: ReadonlySet<string>,
  muted: ReadonlyMap<string, readonly string[]>
): AudienceStatus {
  // A role is known only from a live connection's credentials; an offline user's is not.
  const connections = registry.ofUser(userId)
  if (connections.size > 0 && ![...connections].some(c => policy.canSee(c.user.role, category))) return 'not_entitled'
  if (muted.get(userId)?.includes(category) === true) return 'muted'
  return reachedUsers.has(userId) ? 'online' : 'offline'
}
