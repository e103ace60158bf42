// The layers import one way (DESIGN.md, "Layout"): src/ is the framework-free core,
// adapters/ reach the manager through app.notifications, never through plugins/.
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import t from 'tap'

const ROOT = join(import.meta.dirname, '..')

function sources (dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter(f => f.endsWith('.ts'))
    .map(f => join(dir, f))
}

/** Every module specifier a file imports or re-exports (static and dynamic). */
export function specifiers (text: string): string[] {
  const out: string[] = []
  const re = /(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g
  for (const m of text.matchAll(re)) out.push((m[1] ?? m[2] ?? m[3])!)
  return out
}

const FRAMEWORK = /^(fastify|fastify-plugin|ws|@fastify\/(?!error$).+)$/

function violations (dir: string, forbidden: (spec: string, file: string) => boolean): string[] {
  const found: string[] = []
  for (const file of sources(dir)) {
    for (const spec of specifiers(readFileSync(join(ROOT, file), 'utf8'))) {
      if (forbidden(spec, file)) found.push(`${file} imports '${spec}'`)
    }
  }
  return found
}

/** Where a relative specifier lands, as a path from the repository root. */
function target (file: string, spec: string): string {
  return relative(ROOT, join(ROOT, file, '..', spec))
}

t.test('the import scanner sees static, type-only, re-exported and dynamic imports', async t => {
  t.same(specifiers([
    "import type { A } from 'fastify'",
    "import { b,\n  c } from '../plugins/x.js'",
    "export { d } from '../server/y.js'",
    "const m = await import('ws')",
    "import 'fastify-plugin'"
  ].join('\n')).sort(), ['../plugins/x.js', '../server/y.js', 'fastify', 'fastify-plugin', 'ws'])
})

t.test('src/ imports no framework (only @fastify/error) and nothing from plugins/, adapters/ or server/', async t => {
  const found = violations('src', (spec, file) =>
    FRAMEWORK.test(spec) || (spec.startsWith('.') && /^(plugins|adapters|server)\//.test(target(file, spec))))
  t.same(found, [], found.join('\n'))
})

t.test('adapters/ do not import plugins/ or server/', async t => {
  const found = violations('adapters', (spec, file) => spec.startsWith('.') && /^(plugins|server)\//.test(target(file, spec)))
  t.same(found, [], found.join('\n'))
})

t.test('plugins/ do not import server/ (library users never load the standalone server)', async t => {
  const found = violations('plugins', (spec, file) => spec.startsWith('.') && /^server\//.test(target(file, spec)))
  t.same(found, [], found.join('\n'))
})

t.test('the package entry loads neither the standalone server nor its dependencies', async t => {
  const entry = readFileSync(join(ROOT, 'index.ts'), 'utf8')
  const specs = specifiers(entry)
  t.notOk(specs.some(s => s.startsWith('./server')), 'index.ts re-exports nothing from server/')
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
  t.equal(pkg.exports['./server'].default, './dist/server/index.js', 'buildServer comes from unified-notifications/server')
})
