// The real processes: `npm start` with a configuration mistake prints one line
// and exits 1; `npm run token` refuses a role the policy does not know and an
// empty secret. (In their own file: each spawn compiles the entry point.)
import { execFile } from 'node:child_process'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { START_MS } from './instances.js'

const ROOT = resolve(import.meta.dirname, '..')
const run = promisify(execFile)
// Spawned processes compile their entry point first: on a loaded machine that alone can take most of a minute.
t.setTimeout(300_000)

const tsNode = (entry: string, ...args: string[]) => [...process.execArgv, entry, ...args]

/** Runs `npm start`'s entry (or another script) and resolves with its exit code and output. */
async function runEntry (entry: string, env: Record<string, string>, args: string[] = []): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, tsNode(entry, ...args), { cwd: ROOT, env: { ...process.env, ...env }, timeout: START_MS })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

t.test('npm start with a configuration mistake: the process prints one line and exits 1', async t => {
  const r = await runEntry('server/main.ts', { PORT: '0', NOTIFY_STORE: 'memory', NOTIFY_JWT_SECRET: '' })
  t.equal(r.code, 1)
  t.equal(r.stderr, 'unified-notifications: configuration error: NOTIFY_JWT_SECRET is set but empty: unset it to use the development secret, or give at least 16 characters\n', 'one line, no stack')
})

t.test('npm run token refuses a role the policy does not know', async t => {
  const r = await runEntry('scripts/token.ts', { NOTIFY_JWT_SECRET: 'a-good-secret-0123456789' }, ['--user', 'alice', '--role', 'superuser'])
  t.equal(r.code, 2)
  t.equal(r.stdout, '', 'no token printed')
  t.match(r.stderr, /unknown role 'superuser': the server's policy knows admin, moderator, user, viewer/)
  const empty = await runEntry('scripts/token.ts', { NOTIFY_JWT_SECRET: '' }, ['--user', 'alice'])
  t.equal(empty.code, 1, 'an empty secret is refused as the server refuses it')
  t.match(empty.stderr, /NOTIFY_JWT_SECRET is set but empty/)
})

