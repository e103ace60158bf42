// ws below 8.21 has known denial-of-service bugs: every copy the lockfile
// installs, nested ones included, must be at 8.21 or later.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import t from 'tap'

const MIN = [8, 21, 0] as const

function atLeast (version: string, min: readonly number[]): boolean {
  const parts = version.split(/[.-]/).slice(0, 3).map(Number)
  for (let i = 0; i < 3; i++) {
    if (parts[i]! > min[i]!) return true
    if (parts[i]! < min[i]!) return false
  }
  return true
}

const lock = JSON.parse(readFileSync(new URL('../package-lock.json', import.meta.url), 'utf8')) as {
  lockfileVersion: number
  packages: Record<string, { version?: string, dependencies?: Record<string, string> }>
}

t.test('the version check itself', async t => {
  t.ok(atLeast('8.21.0', MIN))
  t.ok(atLeast('8.23.0', MIN))
  t.ok(atLeast('9.0.0', MIN))
  t.notOk(atLeast('8.20.9', MIN))
  t.notOk(atLeast('8.18.3', MIN))
  t.notOk(atLeast('7.5.10', MIN))
})

t.test('every ws in package-lock.json is 8.21 or later', async t => {
  t.ok(lock.lockfileVersion >= 2, 'a lockfile with the packages map')
  const entries = Object.entries(lock.packages).filter(([path]) => /(^|\/)node_modules\/ws$/.test(path))
  t.ok(entries.length >= 1, 'ws is in the lockfile')
  for (const [path, entry] of entries) {
    t.ok(entry.version !== undefined && atLeast(entry.version, MIN), `${path} is ${entry.version}`)
  }
})

t.test('package.json asks for ws ^8.21 and the installed ws is 8.21 or later', async t => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> }
  t.match(pkg.dependencies.ws, /^\^8\.(2[1-9]|[3-9]\d)\./)
  t.equal(lock.packages['']!.dependencies!.ws, pkg.dependencies.ws, 'the lockfile root matches package.json')
  const installed = createRequire(import.meta.url)('ws/package.json') as { version: string }
  t.ok(atLeast(installed.version, MIN), `installed ws ${installed.version}`)
})
