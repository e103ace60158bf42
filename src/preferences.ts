// Per-user category preferences: which categories a user may mute, and what a
// connection is subscribed to once they are muted. The manager stores them and
// carries every change to each instance; sessions apply them.
import { BadRequestError, ForbiddenError, UnknownCategoryError } from './errors.js'
import type { RolePolicy } from './policy.js'
import type { User } from './schemas.js'

export const DEFAULT_LOCKED_CATEGORIES: readonly string[] = ['security']

/**
 * Checks a muted list for this user and returns it without repeats. Nothing may be
 * stored unless every entry passes: an unknown category or one the role may not
 * see is a bad request, a locked one is forbidden.
 */
export function checkMuted (policy: RolePolicy, locked: ReadonlySet<string>, user: User, muted: readonly string[]): string[] {
  const unique = [...new Set(muted)]
  for (const c of unique) {
    if (!policy.hasCategory(c)) throw new UnknownCategoryError(c)
  }
  // Locked before visibility: "this cannot be muted" is the answer for a locked category, whoever asks.
  for (const c of unique) {
    if (locked.has(c)) throw new ForbiddenError(`Category '${c}' is locked: it cannot be muted`)
  }
  for (const c of unique) {
    if (!policy.canSee(user.role, c)) throw new BadRequestError(`Role '${user.role}' does not receive category '${c}': there is nothing to mute`)
  }
  return unique
}

/** What a connection that asked for `wanted` receives while `muted` holds. */
export function effectiveSubscriptions (wanted: Iterable<string>, muted: ReadonlySet<string>): string[] {
  const out: string[] = []
  for (const c of wanted) if (!muted.has(c)) out.push(c)
  return out
}
