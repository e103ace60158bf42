import t from 'tap'
import { DEFAULT_ROLES, RolePolicy } from '../src/policy.js'
import { DEFAULT_CATEGORIES } from '../src/schemas.js'

const ALL = ['system', 'dashboard', 'admin', 'health', 'maintenance', 'security', 'user']

t.test('the default categories are the seven of DESIGN.md, in order', async t => {
  t.same([...DEFAULT_CATEGORIES], ALL)
  t.same(new RolePolicy().categories, ALL)
})

t.test('the default role table is exactly DESIGN.md', async t => {
  const policy = new RolePolicy()
  t.same(policy.roles().sort(), ['admin', 'moderator', 'user', 'viewer'])
  t.same(policy.visibleTo('admin'), ALL, 'admin sees all seven')
  t.same(policy.visibleTo('moderator'), ['system', 'dashboard', 'maintenance', 'security', 'user'])
  t.same(policy.visibleTo('user'), ['system', 'dashboard', 'maintenance', 'user'])
  t.same(policy.visibleTo('viewer'), ['system', 'maintenance'])
  t.equal(DEFAULT_ROLES.admin, '*')

  // Every cell of the table, both ways.
  const table: Record<string, string[]> = {
    admin: ALL,
    moderator: ['system', 'dashboard', 'maintenance', 'security', 'user'],
    user: ['system', 'dashboard', 'maintenance', 'user'],
    viewer: ['system', 'maintenance']
  }
  for (const [role, cats] of Object.entries(table)) {
    for (const c of ALL) t.equal(policy.canSee(role, c), cats.includes(c), `${role} / ${c}`)
  }
})

t.test('visibleTo follows the configured category order, not the rule order', async t => {
  const policy = new RolePolicy(['a', 'b', 'c', 'd'], { r: ['d', 'b', 'a'] })
  t.same(policy.visibleTo('r'), ['a', 'b', 'd'])
})

t.test('unknown roles and categories', async t => {
  const policy = new RolePolicy()
  t.equal(policy.hasRole('admin'), true)
  t.equal(policy.hasRole('root'), false)
  t.equal(policy.hasRole(''), false)
  t.equal(policy.hasRole('__proto__'), false, 'a prototype key is not a role')
  t.equal(policy.hasRole('toString'), false)
  t.equal(policy.canSee('root', 'system'), false, 'an unknown role sees nothing')
  t.same(policy.visibleTo('root'), [])
  t.equal(policy.canSee('admin', 'billing'), false, 'an unknown category is seen by nobody, admin included')
  t.equal(policy.canSee('user', 'billing'), false)
  t.equal(policy.hasCategory('billing'), false)
  t.equal(policy.hasCategory('system'), true)
  t.equal(policy.hasCategory('toString'), false)
})

t.test('custom roles and categories', async t => {
  const policy = new RolePolicy(['orders', 'billing', 'ops'], { support: ['orders'], finance: ['orders', 'billing'], root: '*' })
  t.same(policy.categories, ['orders', 'billing', 'ops'])
  t.same(policy.roles().sort(), ['finance', 'root', 'support'])
  t.same(policy.visibleTo('support'), ['orders'])
  t.same(policy.visibleTo('finance'), ['orders', 'billing'])
  t.equal(policy.canSee('support', 'billing'), false)
  t.equal(policy.hasRole('admin'), false, 'the default roles are replaced, not merged')
  t.equal(policy.hasCategory('system'), false, 'the default categories are replaced')
})

t.test("a '*' rule sees every configured category, and only those", async t => {
  const policy = new RolePolicy(['x', 'y'], { boss: '*' })
  t.same(policy.visibleTo('boss'), ['x', 'y'])
  t.equal(policy.canSee('boss', 'x'), true)
  t.equal(policy.canSee('boss', 'system'), false)
})

t.test('duplicate categories are kept once', async t => {
  const policy = new RolePolicy(['x', 'y', 'x'], { r: '*' })
  t.same(policy.categories, ['x', 'y'])
  t.same(policy.visibleTo('r'), ['x', 'y'])
})

t.test('an empty rule is a role that sees nothing', async t => {
  const policy = new RolePolicy(['x'], { guest: [] })
  t.equal(policy.hasRole('guest'), true)
  t.same(policy.visibleTo('guest'), [])
})

t.test('the constructor throws for a rule naming an unknown category', async t => {
  t.throws(() => new RolePolicy(['x', 'y'], { r: ['x', 'z'] }), { name: 'TypeError', message: /roles\.r names unknown category 'z'/ })
  t.throws(() => new RolePolicy(undefined, { user: ['system', 'billing'] }), TypeError)
})

t.test('the constructor throws for a rule that is neither a list nor *', async t => {
  t.throws(() => new RolePolicy(['x'], { r: 'x' as never }), { name: 'TypeError', message: /roles\.r must be an array/ })
  t.throws(() => new RolePolicy(['x'], { r: 'all' as never }), TypeError)
})
