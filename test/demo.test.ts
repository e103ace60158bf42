// Demo mode and the page's routes: POST /demo/token only with NOTIFY_DEMO=1,
// the simulated legacy systems publishing through the real adapters within a
// few steps, their timers gone on close; GET / and GET /client.js served from
// the build, and nothing else of web/.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import t from 'tap'
import { configFromEnv } from '../server/index.js'
import { packageRoot } from '../server/web.js'
import { build, connect, type Frame } from './helper.js'

const ROOT = resolve(import.meta.dirname, '..')

t.test('NOTIFY_DEMO: 1 turns demo mode on; unset, empty or 0 leaves it off; anything else fails at start', async t => {
  t.equal(configFromEnv({ NOTIFY_DEMO: '1' }).demo, true)
  for (const off of [undefined, '', '0']) t.notOk(configFromEnv(off === undefined ? {} : { NOTIFY_DEMO: off }).demo, `NOTIFY_DEMO=${String(off)}`)
  t.throws(() => configFromEnv({ NOTIFY_DEMO: 'yes' }), /NOTIFY_DEMO must be 1 or 0, got 'yes'/)
})

t.test('without demo mode POST /demo/token does not exist', async t => {
  const h = await build(t)
  const res = await h.app.inject({ method: 'POST', url: '/demo/token', payload: { user: 'alice', role: 'user' } })
  t.equal(res.statusCode, 404)
})

t.test('demo mode needs the built-in JWT check', async t => {
  await t.rejects(build(t, { demo: true, authenticate: async () => ({ id: 'a', role: 'user' }) }), /NOTIFY_DEMO needs the built-in JWT authentication/)
})

t.test('POST /demo/token signs a token the socket accepts; bad input is a 400 in the error shape', async t => {
  const h = await build(t, { demo: true, demoTickMs: 60_000 })
  const res = await h.app.inject({ method: 'POST', url: '/demo/token', payload: { user: 'dora', role: 'moderator' } })
  t.equal(res.statusCode, 200)
  const { token } = res.json() as { token: string }
  const c = await connect(h.ws, { token })
  const connected = await c.nextOf('connected')
  t.same(connected.user, { id: 'dora', role: 'moderator' })
  c.close()

  const unknownRole = await h.app.inject({ method: 'POST', url: '/demo/token', payload: { user: 'dora', role: 'emperor' } })
  t.equal(unknownRole.statusCode, 400)
  t.match(unknownRole.json(), { statusCode: 400, code: 'UN_BAD_REQUEST', error: 'Bad Request', message: "Unknown role 'emperor'" })
  for (const payload of [{}, { user: 'a b', role: 'user' }, { user: 'a', role: 'user', extra: 1 }, { user: '', role: 'user' }]) {
    const bad = await h.app.inject({ method: 'POST', url: '/demo/token', payload })
    t.equal(bad.statusCode, 400, JSON.stringify(payload))
    t.match(bad.json(), { statusCode: 400, code: String, error: 'Bad Request', message: String })
  }
})

t.test('the simulated legacy systems publish through the real adapters: maintenance that progresses and ends, health, dashboard', async t => {
  const h = await build(t, { demo: true, demoTickMs: 25 })
  const admin = await connect(h.ws, { token: await h.token('root', 'admin') })
  const alice = await connect(h.ws, { token: (await h.app.inject({ method: 'POST', url: '/demo/token', payload: { user: 'alice', role: 'user' } })).json().token })
  await admin.nextOf('connected')
  await alice.nextOf('connected')
  const seen: Frame[] = []
  const deadline = Date.now() + 10_000
  const done = () => {
    const ops = seen.filter(f => f.collapseKey?.startsWith('maintenance:'))
    const ended = ops.some(f => f.type === 'success' || f.type === 'error')
    return ended && seen.some(f => f.category === 'health') && seen.some(f => f.category === 'dashboard')
  }
  while (!done() && Date.now() < deadline) seen.push((await admin.nextOf('notification', 5000)).notification)
  t.ok(done(), 'maintenance ended, health and dashboard seen')
  const first = seen.find(f => f.collapseKey?.startsWith('maintenance:'))!
  const sameOp = seen.filter(f => f.collapseKey === first.collapseKey)
  t.equal(sameOp[0]!.type, 'progress')
  t.ok(sameOp.length >= 2, 'one operation: several updates under one collapse key')
  // A failed operation's last frame carries no progress (maintenance_failed has none): only the frames with one are compared.
  const progress = sameOp.map(f => f.data.progress).filter((p: unknown): p is number => typeof p === 'number')
  t.ok(progress.every((p, i) => i === 0 || p >= progress[i - 1]!), 'progress only moves forward')
  t.ok(seen.every(f => ['maintenance', 'dashboard', 'admin-health'].includes(f.source)), 'every one came through an adapter')
  const report = h.app.notifications.migration() as Record<string, { events: Record<string, { published: number }> }>
  t.ok(report.maintenance!.events.maintenance_started!.published >= 1, 'counted in the migration report')
  // Personal dashboard messages go to users who asked for a demo token.
  let personal: Frame | undefined
  while (personal === undefined && Date.now() < deadline + 10_000) {
    const n = (await alice.nextOf('notification', 5000)).notification
    if (n.category === 'dashboard' && n.title !== 'Announcement') personal = n
  }
  t.ok(personal, 'alice got a personal dashboard message')
})

t.test('the demo timers stop when the app closes', async t => {
  const h = await build(t, { demo: true, demoTickMs: 20 })
  const before = h.app.notifications.stats().published
  await new Promise(resolve => setTimeout(resolve, 100))
  t.ok(h.app.notifications.stats().published > before, 'publishing while open')
  await h.app.close()
  const after = h.app.notifications.stats().published
  await new Promise(resolve => setTimeout(resolve, 150))
  t.equal(h.app.notifications.stats().published, after, 'nothing after close')
})

t.test('GET / serves the page and GET /client.js the SDK as a dependency-free ES module; web/ sources are not served', async t => {
  if (!existsSync(join(ROOT, 'dist', 'web', 'app.js')) || !existsSync(join(ROOT, 'dist', 'src', 'client', 'index.js'))) {
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'web/tsconfig.json'], { cwd: ROOT, stdio: 'inherit' })
  }
  const h = await build(t)
  const page = await h.app.inject({ url: '/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.body, /<script type="module" src="\/app.js"><\/script>/)
  const app = await h.app.inject({ url: '/app.js' })
  t.equal(app.statusCode, 200)
  t.match(app.body, /from '\/client\.js'/, 'the page imports the SDK the server serves')
  const client = await h.app.inject({ url: '/client.js' })
  t.equal(client.statusCode, 200)
  t.match(client.headers['content-type'], /javascript/)
  t.match(client.body, /export function createClient/)
  t.notMatch(client.body, /^\s*import\s/m, 'no import at run time: it runs in a browser as is')
  t.notMatch(client.body, /require\(|node:/, 'no Node module')
  for (const url of ['/app.ts', '/tsconfig.json', '/dom.ts']) {
    t.equal((await h.app.inject({ url })).statusCode, 404, `${url} is not served`)
  }
  t.equal((await h.app.inject({ url: '/styles.css' })).statusCode, 200)
  t.equal(packageRoot(join(ROOT, 'dist', 'server')), ROOT, 'the package root is found from the build too')
  t.throws(() => packageRoot('/'), /no package.json above/)
})
