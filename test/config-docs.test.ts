// The newcomer's documents say what the server does: every variable and option
// is listed, the role policy and categories are the defaults, the commands work
// for any PORT, and /docs/json and migration() return what the pages say.
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import t from 'tap'
import { dashboardAdapter } from '../adapters/index.js'
import { resolveOptions } from '../plugins/options.js'
import { ENV_VARIABLES, buildServer } from '../server/index.js'
import { DEFAULT_ROLES, RolePolicy } from '../src/policy.js'
import { DEFAULT_CATEGORIES } from '../src/schemas.js'
import { API_KEY, SECRET, build } from './helper.js'

const ROOT = resolve(import.meta.dirname, '..')
const read = (file: string) => readFileSync(resolve(ROOT, file), 'utf8')
const README = read('README.md')
const OPERATIONS = read('docs/operations.md')
const PROTOCOL = read('docs/protocol.md')

/** The rows of the markdown table that follows `heading` (first cell → the other cells). */
function tableAfter (text: string, heading: string): Map<string, string[]> {
  const start = text.indexOf(heading)
  if (start < 0) throw new Error(`no '${heading}'`)
  const lines = text.slice(start).split('\n')
  const first = lines.findIndex(l => l.startsWith('|'))
  const rows = new Map<string, string[]>()
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break
    const cells = line.split(/(?<!\\)\|/).slice(1, -1).map(c => c.trim())
    rows.set(cells[0]!, cells.slice(1))
  }
  return rows
}

t.test('every environment variable is in the README table and in operations.md', async t => {
  const readmeRows = [...tableAfter(README, '## Configuration of the standalone server').keys()].join(' ')
  const opsRows = [...tableAfter(OPERATIONS, '## Configuration').keys()].join(' ')
  for (const { name } of ENV_VARIABLES) {
    t.ok(readmeRows.includes(`\`${name}\``), `README lists ${name}`)
    t.ok(opsRows.includes(`\`${name}\``), `operations.md lists ${name}`)
  }
})

t.test('the README options table lists every plugin option', async t => {
  const rows = tableAfter(README, 'Options (each checked at registration)')
  const documented = [...rows.keys()].map(k => k.replace(/`/g, ''))
  t.strictSame(documented.sort(), Object.keys(resolveOptions({ jwtSecret: SECRET })).sort())
})

t.test('README and protocol.md show the default role policy and categories', async t => {
  const policy = new RolePolicy()
  for (const [file, text, heading] of [['README.md', README, '## Who sees what'], ['docs/protocol.md', PROTOCOL, '## Who receives what']] as const) {
    const section = text.slice(text.indexOf(heading))
    t.ok(section.replace(/\s+/g, ' ').includes(`Default categories: \`${DEFAULT_CATEGORIES.join(', ')}\``), `${file}: the default categories`)
    const rows = tableAfter(section, '| role | may see |')
    t.strictSame([...rows.keys()].map(r => r.replace(/`/g, '')).sort(), Object.keys(DEFAULT_ROLES).sort(), `${file}: every role`)
    for (const [role, [cell]] of rows) {
      const name = role.replace(/`/g, '')
      const expected = DEFAULT_ROLES[name] === '*' ? 'every category' : policy.visibleTo(name).join(', ')
      t.equal(cell!.replace(/`/g, ''), expected, `${file}: ${name}`)
    }
  }
})

t.test('README commands work for any PORT', async t => {
  const blocks = [...README.matchAll(/```sh\n([\s\S]*?)```/g)].map(m => m[1]!)
  // The server's own HTTP and WebSocket URLs (a redis:// URL names another service's port).
  for (const block of blocks.filter(b => /(https?|wss?):\/\/127\.0\.0\.1:/.test(b))) {
    t.notMatch(block, /(https?|wss?):\/\/127\.0\.0\.1:\d/, 'no hard-coded port in a command')
    t.match(block, /(https?|wss?):\/\/127\.0\.0\.1:\$(PORT|\{PORT)/, 'the port comes from a variable')
  }
  t.match(README, /export PORT=\$\{PORT:-3000\}/, 'and says how to set it')
})

t.test('/docs/json names the configured categories and the role policy, as errors.md says', async t => {
  t.match(read('docs/errors.md'), /`GET \/docs\/json` names them, and the role policy, in `info.description`/)
  const h = await build(t, { categories: ['system', 'billing'], roles: { admin: '*', accountant: ['billing'] } })
  const doc = (await h.app.inject('/docs/json')).json() as { info: { description: string } }
  t.match(doc.info.description, /Categories: system, billing\./)
  t.match(doc.info.description, /admin: system, billing; accountant: billing\./)
})

t.test('app.notifications.migration() is the report itself; the route wraps it in adapters', async t => {
  const emitter = new EventEmitter()
  const app = await buildServer({ jwtSecret: SECRET, apiKeys: [API_KEY], store: 'memory', logger: false })
  await app.register(dashboardAdapter, { emitter })
  await app.ready()
  t.teardown(() => app.close())
  emitter.emit('broadcast_notification', { message: 'hello' })
  const report = app.notifications.migration() as Record<string, { events: Record<string, { received: number }> }>
  t.strictSame(Object.keys(report), ['dashboard'], 'keyed by adapter name, no wrapper')
  t.equal(report.dashboard!.events.broadcast_notification!.received, 1)
  const res = await app.inject({ url: '/api/notifications/migration', headers: { authorization: `Bearer ${API_KEY}` } })
  t.strictSame(res.json(), { adapters: JSON.parse(JSON.stringify(report)) })
})
