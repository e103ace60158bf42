// The notification-center page in Debian's Chromium (playwright-core, headless,
// never a downloaded browser), against the standalone server on a real port:
// connecting, live delivery, the unread badge across two tabs, category
// toggles, a maintenance progress bar, reconnect and catch-up after a server
// restart, the admin health panel, and an axe-core accessibility check.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { chromium, type Browser, type Page } from 'playwright-core'
import t from 'tap'
import { buildServer } from '../server/index.js'
import { signToken } from '../src/tokens.js'
import { API_KEY, SECRET } from './helper.js'

const ROOT = resolve(import.meta.dirname, '..')
const CHROMIUM = '/usr/bin/chromium'
/** "Appears within a second", as the issue puts it. */
const SECOND = 1000

// Starting Chromium and compiling the page take a while on a shared CI machine.
t.setTimeout(300_000)

/** Compiles the page and the client module (web/tsconfig.json) when the build is older than their sources. */
function buildPage (): void {
  const newest = (dir: string, ext: string) => Math.max(0, ...readdirSync(dir).filter(f => f.endsWith(ext)).map(f => statSync(join(dir, f)).mtimeMs))
  const built = join(ROOT, 'dist', 'web', 'app.js')
  const client = join(ROOT, 'dist', 'src', 'client', 'index.js')
  const sources = Math.max(newest(join(ROOT, 'web'), '.ts'), newest(join(ROOT, 'src', 'client'), '.ts'), newest(join(ROOT, 'src'), 'schemas.ts'))
  if (existsSync(built) && existsSync(client) && statSync(built).mtimeMs >= sources && statSync(client).mtimeMs >= sources) return
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'web/tsconfig.json'], { cwd: ROOT, stdio: 'inherit' })
}

interface Server {
  app: FastifyInstance
  port: number
  url: string
  /** While true, WebSocket upgrades answer 503 (to hold the page off while publishing). */
  gate: { closed: boolean }
}

async function startServer (store: string, port = 0): Promise<Server> {
  const app = await buildServer({ jwtSecret: SECRET, apiKeys: [API_KEY], store, logger: false, legacyAdapters: ['maintenance', 'admin-health'] })
  const gate = { closed: false }
  app.addHook('onRequest', async (request, reply) => {
    if (gate.closed && request.url.startsWith('/ws')) await reply.code(503).send({ statusCode: 503, code: 'UN_UNAVAILABLE', error: 'Service Unavailable', message: 'held by the test' })
  })
  await app.listen({ port, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { app, port: address.port, url: `http://127.0.0.1:${address.port}`, gate }
}

async function post (s: Server, url: string, body: unknown): Promise<{ id: string, seq: number }> {
  const res = await fetch(`${s.url}${url}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })
  if (res.status !== 202) throw new Error(`POST ${url}: ${res.status} ${await res.text()}`)
  return await res.json() as { id: string, seq: number }
}

async function signedIn (browser: Browser, s: Server, user: string, role = 'user', viewport = { width: 1200, height: 900 }): Promise<Page> {
  const page = await browser.newPage({ viewport })
  page.on('pageerror', err => { throw err })
  await page.goto(s.url)
  await page.locator('#token-form').waitFor()
  await page.fill('#token', await signToken(SECRET, { sub: user, role }))
  await page.click('#token-form button[type=submit]')
  await page.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 })
  return page
}

const badge = (page: Page) => page.locator('#badge').textContent()

t.test('the notification-center page in Chromium', async t => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`)
  buildPage()
  const dir = mkdtempSync(join(tmpdir(), 'un-browser-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = `sqlite:${join(dir, 'n.db')}`
  let server = await startServer(store)
  t.teardown(() => server.app.close())
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-background-networking'] })
  t.teardown(() => browser.close())

  const page = await signedIn(browser, server, 'alice')
  await t.test('the page connects and says so', async t => {
    t.equal(await page.locator('#status').textContent(), 'Connected')
    t.equal(await page.locator('#who').textContent(), 'alice (user)')
    t.equal(await badge(page), '0')
  })

  await t.test('a notification published over REST appears within a second, styled by type and priority', async t => {
    const sent = await post(server, '/api/notifications', { category: 'dashboard', type: 'warning', priority: 'high', title: 'Disk almost full', message: '91% used', audience: { users: ['alice'] } })
    const item = page.locator(`li[data-id="${sent.id}"]`)
    await item.waitFor({ timeout: SECOND })
    t.match(await item.getAttribute('class'), /type-warning/)
    t.match(await item.getAttribute('class'), /priority-high/)
    t.match(await item.getAttribute('class'), /unread/)
    t.match(await item.locator('time').textContent(), /just now|second/)
  })

  await t.test('the badge counts it; mark read clears it, also in a second tab of the same user', async t => {
    t.equal(await badge(page), '1')
    t.match(await page.title(), /^\(1\) /, 'the count is in the document title')
    const second = await signedIn(browser, server, 'alice')
    t.teardown(() => second.close())
    t.equal(await badge(second), '1', 'the second tab starts with the same count')
    const sent = await post(server, '/api/notifications', { category: 'system', title: 'Second one', audience: { users: ['alice'] } })
    await page.locator(`li[data-id="${sent.id}"]`).waitFor({ timeout: SECOND })
    await second.locator(`li[data-id="${sent.id}"]`).waitFor({ timeout: SECOND })
    await page.locator('#badge[data-count="2"]').waitFor({ timeout: SECOND })
    await second.locator('#badge[data-count="2"]').waitFor({ timeout: SECOND })

    await page.click(`li[data-id="${sent.id}"] button.mark-read`)
    await page.locator('#badge[data-count="1"]').waitFor({ timeout: SECOND })
    await second.locator('#badge[data-count="1"]').waitFor({ timeout: SECOND })
    t.notMatch(await second.locator(`li[data-id="${sent.id}"]`).getAttribute('class'), /unread/, 'the other tab shows it read')

    await second.click('#mark-all')
    await page.locator('#badge[data-count="0"]').waitFor({ timeout: SECOND })
    await second.locator('#badge[data-count="0"]').waitFor({ timeout: SECOND })
    t.equal(await page.locator('li.unread').count(), 0, 'every item read in the first tab')
    t.equal(await page.title(), 'Notifications')
  })

  await t.test('a category toggle stops delivery of that category', async t => {
    const box = page.locator('#category-dashboard')
    t.equal(await box.isChecked(), true)
    t.equal(await page.locator('#category-admin').isDisabled(), true, 'a category the role may not see is shown, disabled')
    t.match(await page.locator('label[for="category-admin"]').textContent(), /not available to your role/)
    await box.uncheck()
    await page.locator('#category-dashboard:not(:checked):enabled').waitFor()
    const muted = await post(server, '/api/notifications', { category: 'dashboard', title: 'Muted one' })
    const after = await post(server, '/api/notifications', { category: 'system', title: 'After the mute' })
    await page.locator(`li[data-id="${after.id}"]`).waitFor({ timeout: SECOND })
    t.equal(await page.locator(`li[data-id="${muted.id}"]`).count(), 0, 'the dashboard notification did not arrive')
    await box.check()
    await page.locator('#category-dashboard:checked:enabled').waitFor()
    const back = await post(server, '/api/notifications', { category: 'dashboard', title: 'Dashboard again' })
    await page.locator(`li[data-id="${back.id}"]`).waitFor({ timeout: SECOND })
  })

  await t.test('muting a category on all devices: every tab of the user stops receiving it, and unmuting brings it back', async t => {
    const other = await signedIn(browser, server, 'alice')
    t.teardown(() => other.close())
    await page.locator('#mute-maintenance:enabled').waitFor({ timeout: SECOND })
    t.equal(await page.locator('#mute-maintenance').isChecked(), false)
    await page.locator('#mute-maintenance').check()
    // The preferences frame reaches both tabs: their maintenance subscription goes, their mute box follows.
    await page.locator('#category-maintenance:not(:checked)').waitFor({ timeout: SECOND })
    await other.locator('#category-maintenance:not(:checked)').waitFor({ timeout: SECOND })
    await other.locator('#mute-maintenance:checked').waitFor({ timeout: SECOND })
    const res = await fetch(`${server.url}/api/preferences`, { headers: { authorization: `Bearer ${await signToken(SECRET, { sub: 'alice', role: 'user' })}` } })
    t.same(await res.json(), { muted: ['maintenance'], locked: ['security'] }, 'stored for the user')
    const muted = await post(server, '/api/notifications', { category: 'maintenance', title: 'Muted maintenance' })
    const marker = await post(server, '/api/notifications', { category: 'system', title: 'After muting' })
    await other.locator(`li[data-id="${marker.id}"]`).waitFor({ timeout: SECOND })
    t.equal(await other.locator(`li[data-id="${muted.id}"]`).count(), 0, 'the muted category did not arrive in the other tab')
    await other.locator('#mute-maintenance').uncheck()
    await page.locator('#category-maintenance:checked').waitFor({ timeout: SECOND })
    await page.locator('#mute-maintenance:not(:checked)').waitFor({ timeout: SECOND })
  })

  await t.test('a maintenance operation moves one progress bar to 100% and shows success', async t => {
    const bar = page.locator('li.op[data-key="maintenance:mig-7"]')
    await post(server, '/api/legacy/maintenance/maintenance_started', { operation_id: 'mig-7', operation_type: 'schema-migration' })
    await bar.waitFor({ timeout: SECOND })
    t.equal(await bar.locator('progress').evaluate(p => (p as HTMLProgressElement).value), 0)
    for (const progress of [30, 70]) {
      await post(server, '/api/legacy/maintenance/maintenance_progress', { operation_id: 'mig-7', progress })
      await page.waitForFunction(p => (document.querySelector('li.op[data-key="maintenance:mig-7"] progress') as HTMLProgressElement | null)?.value === p, progress, { timeout: SECOND })
      t.equal(await page.locator('li.op[data-key="maintenance:mig-7"]').count(), 1, `${progress}%: still one bar, moved in place`)
    }
    await post(server, '/api/legacy/maintenance/maintenance_completed', { operation_id: 'mig-7' })
    await page.locator('li.op[data-key="maintenance:mig-7"][data-state="success"]').waitFor({ timeout: SECOND })
    t.equal(await bar.locator('progress').evaluate(p => (p as HTMLProgressElement).value), 100)
    t.equal(await bar.locator('.op-state').textContent(), 'Completed')
    t.equal(await page.locator('li.op').count(), 1, 'one bar for the operation')
    t.equal(await page.locator('li.item[data-category="maintenance"]').count(), 1, 'one list item for the operation, replaced in place')
  })

  await t.test('after a server restart the page reconnects by itself and shows what was published meanwhile, once each', async t => {
    const port = server.port
    await server.app.close()
    await page.locator('#status[data-state="reconnecting"]').waitFor({ timeout: 5000 })
    server = await startServer(store, port)
    // Hold the page off until the publishes are stored: they can only reach it through the resume.
    server.gate.closed = true
    const missed = [
      await post(server, '/api/notifications', { category: 'system', title: 'While you were away 1' }),
      await post(server, '/api/notifications', { category: 'dashboard', title: 'While you were away 2', audience: { users: ['alice'] } })
    ]
    t.match(await page.locator('#status').getAttribute('data-state'), /reconnecting|connecting/, 'not connected while held off')
    server.gate.closed = false
    await page.locator('#status[data-state="open"]').waitFor({ timeout: 40_000 })
    for (const m of missed) {
      await page.locator(`li[data-id="${m.id}"]`).waitFor({ timeout: SECOND })
      t.equal(await page.locator(`li[data-id="${m.id}"]`).count(), 1, `seq ${m.seq} shown once`)
    }
    const unread = await server.app.notifications.unread({ id: 'alice', role: 'user' })
    await page.locator(`#badge[data-count="${unread}"]`).waitFor({ timeout: SECOND })
    t.pass(`the badge shows the server's count (${unread}), the two missed ones included`)
    const live = await post(server, '/api/notifications', { category: 'system', title: 'Live again' })
    await page.locator(`li[data-id="${live.id}"]`).waitFor({ timeout: SECOND })
    const ids = await page.locator('li.item').evaluateAll(items => items.map(i => (i as HTMLElement).dataset.id))
    t.equal(new Set(ids).size, ids.length, 'no item twice')
  })

  await t.test('an admin sees the health panel; a user does not', async t => {
    const admin = await signedIn(browser, server, 'root', 'admin')
    t.teardown(() => admin.close())
    t.equal(await admin.locator('#health-panel').isVisible(), true)
    t.equal(await page.locator('#health-panel').isVisible(), false)
    await post(server, '/api/legacy/admin-health/health_update', {
      status: 'degraded',
      components: { database: { status: 'healthy' }, cache: { status: 'degraded', message: 'slow' } },
      timestamp: new Date().toISOString()
    })
    await admin.locator('li.component[data-component="cache"].degraded').waitFor({ timeout: SECOND })
    await post(server, '/api/legacy/admin-health/health_update', {
      status: 'healthy', components: { database: { status: 'healthy' }, cache: { status: 'healthy' } }, timestamp: new Date().toISOString()
    })
    await admin.locator('li.component[data-component="cache"].healthy').waitFor({ timeout: SECOND })
    t.equal(await admin.locator('li.component').count(), 2, 'one row per component, the latest state')
    t.equal(await page.locator('li.component').count(), 0, 'nothing of it reached the user')
  })

  await t.test('axe-core finds no serious or critical violation, signed in (desktop and phone width) and on the sign-in form', async t => {
    const audit = async (p: Page) => {
      await p.addScriptTag({ path: join(ROOT, 'node_modules', 'axe-core', 'axe.min.js') })
      const result = await p.evaluate(async () => {
        const r = await (window as unknown as { axe: { run (): Promise<{ violations: Array<{ id: string, impact: string | null, nodes: unknown[] }> }> } }).axe.run()
        return r.violations.map(v => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }))
      })
      return result.filter(v => v.impact === 'serious' || v.impact === 'critical')
    }
    t.strictSame(await audit(page), [], 'signed in, desktop')
    await page.setViewportSize({ width: 390, height: 844 })
    t.strictSame(await audit(page), [], 'signed in, phone width')
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)
    t.ok(overflow <= 0, `readable at phone width: no horizontal scroll (${overflow}px)`)
    const fresh = await browser.newPage()
    t.teardown(() => fresh.close())
    await fresh.goto(server.url)
    await fresh.locator('#token-form').waitFor()
    t.strictSame(await audit(fresh), [], 'the sign-in form')
  })

  await t.test('keyboard: the sign-in form and the controls are reachable with Tab, and Enter signs in', async t => {
    const k = await browser.newPage()
    t.teardown(() => k.close())
    await k.goto(server.url)
    await k.locator('#token-form').waitFor()
    await k.keyboard.press('Tab')
    t.equal(await k.evaluate(() => document.activeElement?.className), 'skip-link', 'first stop: the skip link')
    await k.focus('#token')
    await k.keyboard.insertText(await signToken(SECRET, { sub: 'kim', role: 'user' }))
    await k.keyboard.press('Tab')
    await k.keyboard.press('Enter')
    await k.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 })
    t.equal(await k.evaluate(() => document.activeElement?.id), 'list-title', 'focus moves to the list after sign-in')
    await k.keyboard.press('Tab')
    t.equal(await k.evaluate(() => document.activeElement?.id), 'mark-all', 'then the list controls')
  })
})
