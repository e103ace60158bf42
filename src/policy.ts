// Which role may see which category. Static for the life of the process, so
// answers are precomputed into Sets and checking is one lookup on the hot path.
import { DEFAULT_CATEGORIES } from './schemas.js'

export type RoleRules = Record<string, readonly string[] | '*'>

export const DEFAULT_ROLES: RoleRules = {
  admin: '*',
  moderator: ['system', 'dashboard', 'maintenance', 'security', 'user'],
  user: ['system', 'dashboard', 'maintenance', 'user'],
  viewer: ['system', 'maintenance']
}

export class RolePolicy {
  readonly categories: readonly string[]
  readonly #visible = new Map<string, ReadonlySet<string>>()
  readonly #categorySet: ReadonlySet<string>

  constructor (categories: readonly string[] = DEFAULT_CATEGORIES, roles: RoleRules = DEFAULT_ROLES) {
    this.categories = [...new Set(categories)]
    this.#categorySet = new Set(this.categories)
    for (const [role, rule] of Object.entries(roles)) {
      if (rule === '*') {
        this.#visible.set(role, this.#categorySet)
        continue
      }
      if (!Array.isArray(rule)) throw new TypeError(`roles.${role} must be an array of categories or '*'`)
      for (const c of rule) {
        if (!this.#categorySet.has(c)) throw new TypeError(`roles.${role} names unknown category '${c}'`)
      }
      this.#visible.set(role, new Set(rule))
    }
  }

  hasRole (role: string): boolean {
    return this.#visible.has(role)
  }

  hasCategory (category: string): boolean {
    return this.#categorySet.has(category)
  }

  canSee (role: string, category: string): boolean {
    return this.#visible.get(role)?.has(category) ?? false
  }

  /** Categories the role may see, in configured order. */
  visibleTo (role: string): string[] {
    const set = this.#visible.get(role)
    return set ? this.categories.filter(c => set.has(c)) : []
  }

  roles (): string[] {
    return [...this.#visible.keys()]
  }
}
