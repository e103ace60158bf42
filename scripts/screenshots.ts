// `npm run screenshots`: the notification-center page in demo mode, as an admin,
// captured at desktop and phone width into docs/img/ (shown in the README).
// Needs the build (`npm run build`) and Chromium at /usr/bin/chromium.
import { join, resolve } from 'node:path'
import { chromium } from 'playwright-core'
import { buildServer } from '../server/index.js'

const ROOT = resolve(import.meta.dirname, '..')
const OUT = join(ROOT, 'docs', 'img')

const app = await buildServer({ store: 'memory', jwtSecret: 'screenshots-secret-0123456789', logger: false, demo: true, demoTickMs: 500 })
await app.listen({ port: 0, host: '127.0.0.1' })
const address = app.server.address()
if (address === null || typeof address === 'string') throw new Error('no port')
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-background-networking'] })
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } })
  await page.goto(`http://127.0.0.1:${address.port}/`)
  await page.locator('#demo-form').waitFor()
  await page.fill('#demo-user', 'alice')
  await page.selectOption('#demo-role', 'admin')
  await page.click('#demo-form button[type=submit]')
  await page.locator('#status[data-state="open"]').waitFor()
  // Let a few operations, health reports and messages arrive.
  await page.waitForTimeout(9000)
  await page.screenshot({ path: join(OUT, 'notification-center-desktop.png') })
  await page.setViewportSize({ width: 390, height: 844 })
  await page.screenshot({ path: join(OUT, 'notification-center-phone.png') })
  console.log(`screenshots written to ${OUT}`)
} finally {
  await browser.close()
  await app.close()
}
