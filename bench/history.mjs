#!/usr/bin/env node
// npm run bench -- --history : what each kind of request costs our server as its
// history grows. The standalone server (SQLite, as the main benchmark starts it)
// runs on a copy of a file already holding 0, 10,000, 100,000 or 1,000,000
// notifications (bench/history-data.mjs), and the same loads are measured at
// each size, as server CPU per operation and as a ratio to the empty history.
// See docs/benchmarks.md, "Cost as history grows".
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { SignJWT } from 'jose'
import WebSocket from 'ws'
import { cpuMs, hardFdLimit, killAll, now, planPinning, stopProcess } from './lib/proc.mjs'
import { API_KEY, JWT_SECRET, oursTarget, tempDirs } from './lib/targets.mjs'
import { fmt, markdownTable, median, textTable } from './lib/report.mjs'
import { generateHistories, HEAVY_USER, RETENTION_MAX_COUNT } from './history-data.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    sizes: { type: 'string' },
    reps: { type: 'string' },
    data: { type: 'string' },
    'no-build': { type: 'boolean', default: false },
    out: { type: 'string' },
    'write-docs': { type: 'boolean' },
    help: { type: 'boolean', default: false }
  }
})
if (args.help) {
  console.log(`npm run bench -- --history [options]
  --sizes=0,10000,100000,1000000   notifications already in history (0 is the baseline the ratios are against)
  --reps=2         repetitions (each size on a fresh copy of its file; 1 with --quick)
  --quick          1 repetition, fewer operations per load (about 2 min)
  --data=<dir>     keep the generated histories in <dir> and reuse them next time (default: a temp dir, removed)
  --no-build       use dist/ as it is        --out=bench/results/history.json
  --write-docs     update the "Cost as history grows" block of docs/benchmarks.md (default: unless --quick or --sizes)`)
  process.exit(0)
}

const quick = args.quick
const config = {
  mode: quick ? 'quick' : 'full',
  sizes: args.sizes ? args.sizes.split(',').map(Number) : [0, 10_000, 100_000, 1_000_000],
  reps: Number(args.reps ?? (quick ? 1 : 2)),
  /** Ordinary users connecting (u0…), kept open together, then resuming. */
  connections: quick ? 200 : 400,
  /** The heavy user's connections, opened and closed in turn (its per-user limit is 20 at once). */
  heavyConnections: quick ? 80 : 150,
  /** A resume names a cursor this many seqs behind the newest. */
  resumeBehind: 5,
  restRequests: quick ? 300 : 600,
  /** History frames: this many sockets, each asking this many times (within the per-socket request burst of 100). */
  frameSockets: 20,
  framesPerSocket: quick ? 20 : 40,
  publishNotifications: quick ? 1000 : 1500,
  batch: 50,
  concurrency: 50
}
if (!config.sizes.includes(0)) config.sizes.unshift(0)
const outFile = args.out ?? join(ROOT, 'bench/results/history.json')
const writeDocs = args['write-docs'] ?? (!quick && !args.sizes)
const pinning = planPinning()
const fdLimit = Math.min(hardFdLimit(), config.connections + 2048)
const dataDir = args.data ?? mkdtempSync(join(os.tmpdir(), 'un-history-'))
if (args.data) mkdirSync(dataDir, { recursive: true })
const runDir = mkdtempSync(join(os.tmpdir(), 'un-history-run-'))

function cleanupAndExit (code, why) {
  if (why) console.error(why)
  killAll()
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
  rmSync(runDir, { recursive: true, force: true })
  if (!args.data) rmSync(dataDir, { recursive: true, force: true })
  process.exit(code)
}
process.once('SIGINT', () => cleanupAndExit(130, '\ninterrupted: server stopped'))
process.once('SIGTERM', () => cleanupAndExit(143, 'terminated: server stopped'))
process.on('uncaughtException', (err) => cleanupAndExit(1, err.stack))
process.on('unhandledRejection', (err) => cleanupAndExit(1, err?.stack ?? String(err)))
// Last-resort stop: the whole run is meant to take under 5 minutes.
setTimeout(() => cleanupAndExit(2, '! --history took over 15 min: stopped'), 15 * 60_000).unref()

// ---- clients (in this process: a few hundred connections at most) ---------------------------

const secret = new TextEncoder().encode(JWT_SECRET)
const tokenCache = new Map()
async function tokenOf (user) {
  let t = tokenCache.get(user)
  if (t === undefined) {
    t = await new SignJWT({ role: 'user' }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(user).setIssuedAt().setExpirationTime('2h').sign(secret)
    tokenCache.set(user, t)
  }
  return t
}

/** Opens /ws as `user`; resolves with the socket and its `connected` frame, and, with `since`, once `replayed` is in. */
function open (port, user, token, since) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${token}${since !== undefined ? `&since=${since}` : ''}`, { perMessageDeflate: false })
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`${user}: no connected${since !== undefined ? '/replayed' : ''} frame in 30 s`)) }, 30_000)
    let connected
    let replayed = 0
    ws.on('message', (data) => {
      const type = data.toString('latin1', 9, 13)
      if (type === 'conn') {
        connected = JSON.parse(data)
        if (since === undefined) { clearTimeout(timer); resolve({ ws, connected }) }
      } else if (type === 'noti') {
        replayed++
      } else if (type === 'repl' && data.toString('latin1', 9, 17) === 'replayed') {
        clearTimeout(timer)
        resolve({ ws, connected, replayed })
      }
    })
    ws.on('unexpected-response', (_req, res) => { clearTimeout(timer); reject(new Error(`${user}: http ${res.statusCode}`)) })
    ws.on('error', (err) => { clearTimeout(timer); reject(err) })
  })
}

function closeAll (sockets) {
  return Promise.all(sockets.map(ws => new Promise(resolve => {
    if (ws.readyState === WebSocket.CLOSED) return resolve()
    ws.once('close', resolve)
    ws.close(1000)
  })))
}

/** Runs `count` tasks, at most `concurrency` at once. */
async function pool (count, concurrency, task) {
  let next = 0
  const worker = async () => { while (next < count) await task(next++) }
  await Promise.all(Array.from({ length: Math.min(count, concurrency) }, worker))
}

/** Server CPU (ms) and wall time (ms) of `fn`. */
async function measured (pid, fn) {
  const cpu0 = cpuMs(pid)
  const t0 = now()
  const extra = await fn()
  return { cpuMs: cpuMs(pid) - cpu0, wallMs: now() - t0, ...extra }
}

const round = (v, d = 1) => Math.round(v * 10 ** d) / 10 ** d
const users = (n) => Array.from({ length: n }, (_, i) => `u${i}`)

// ---- loads ----------------------------------------------------------------------------------

async function connectLoad (port, pid) {
  const names = users(config.connections)
  await Promise.all(names.map(tokenOf))
  const sockets = []
  let lastSeq = 0
  const m = await measured(pid, () => pool(names.length, config.concurrency, async (i) => {
    const { ws, connected } = await open(port, names[i], await tokenOf(names[i]))
    sockets.push(ws)
    lastSeq = Math.max(lastSeq, connected.lastSeq)
  }))
  await closeAll(sockets)
  return { lastSeq, connect: { usPerConnection: round(m.cpuMs * 1000 / names.length), perSec: Math.round(names.length / (m.wallMs / 1000)) } }
}

async function heavyConnectLoad (port, pid) {
  const token = await tokenOf(HEAVY_USER)
  let unread = 0
  const m = await measured(pid, () => pool(config.heavyConnections, 10, async () => {
    const { ws, connected } = await open(port, HEAVY_USER, token)
    unread = connected.unread
    await closeAll([ws])
  }))
  return { usPerConnection: round(m.cpuMs * 1000 / config.heavyConnections), perSec: Math.round(config.heavyConnections / (m.wallMs / 1000)), unread }
}

async function resumeLoad (port, pid, lastSeq) {
  const names = users(config.connections)
  const since = Math.max(0, lastSeq - config.resumeBehind)
  const sockets = []
  let replayed = 0
  const m = await measured(pid, () => pool(names.length, config.concurrency, async (i) => {
    const r = await open(port, names[i], await tokenOf(names[i]), since)
    sockets.push(r.ws)
    replayed += r.replayed
  }))
  await closeAll(sockets)
  return { usPerClient: round(m.cpuMs * 1000 / names.length), perSec: Math.round(names.length / (m.wallMs / 1000)), replayedPerClient: round(replayed / names.length, 2) }
}

async function restHistoryLoad (port, pid, who) {
  const names = who === 'heavy' ? [HEAVY_USER] : users(10)
  const tokens = await Promise.all(names.map(tokenOf))
  let k = 0
  const opts = {
    url: `http://127.0.0.1:${port}/api/notifications?limit=50`,
    connections: 10,
    setupClient: (c) => c.setHeaders({ authorization: `Bearer ${tokens[k++ % tokens.length]}` })
  }
  await autocannon({ ...opts, amount: 50 }) // warm-up
  let result
  const m = await measured(pid, async () => { result = await autocannon({ ...opts, amount: config.restRequests }) })
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`GET /api/notifications: ${result.non2xx} non-2xx, ${result.errors} errors`)
  return { usPerRequest: round(m.cpuMs * 1000 / result.requests.total), perSec: Math.round(result.requests.total / (m.wallMs / 1000)) }
}

async function historyFrameLoad (port, pid) {
  const names = users(config.frameSockets)
  const opened = await Promise.all(names.map(async u => (await open(port, u, await tokenOf(u))).ws))
  const ask = (ws, id) => new Promise((resolve, reject) => {
    const onMessage = (data) => {
      const f = JSON.parse(data)
      if (f.id !== id) return
      ws.off('message', onMessage)
      if (f.type === 'reply') resolve(f.result.notifications.length)
      else reject(new Error(`history frame: ${data}`))
    }
    ws.on('message', onMessage)
    ws.send(JSON.stringify({ type: 'request_notification_history', id, limit: 50 }))
  })
  let rows = 0
  const m = await measured(pid, () => Promise.all(opened.map(async (ws, s) => {
    for (let i = 0; i < config.framesPerSocket; i++) rows += await ask(ws, `h${s}-${i}`)
  })))
  await closeAll(opened)
  const count = config.frameSockets * config.framesPerSocket
  return { usPerRequest: round(m.cpuMs * 1000 / count), perSec: Math.round(count / (m.wallMs / 1000)), rowsPerPage: round(rows / count) }
}

async function publishLoad (port, pid, target) {
  const data = { pad: 'x'.repeat(180) }
  const m = await measured(pid, async () => {
    for (let sent = 0; sent < config.publishNotifications; sent += config.batch) {
      const batch = Array.from({ length: config.batch }, (_, k) => ({ data: { ...data, t: sent + k } }))
      await target.publish(port, batch)
    }
  })
  return { usPerNotification: round(m.cpuMs * 1000 / config.publishNotifications), perSec: Math.round(config.publishNotifications / (m.wallMs / 1000)) }
}

/** The store's read paths in-process on the same file (µs per call, wall time of this process). */
async function storeCalls (file) {
  const { SqliteStore } = await import(pathToFileURL(join(ROOT, 'dist/src/stores/sqlite-store.js')).href)
  const store = new SqliteStore(file, { maxCount: RETENTION_MAX_COUNT })
  await store.init()
  const categories = ['system', 'dashboard', 'maintenance', 'user']
  const t = Date.now()
  const last = await store.lastSeq()
  const userOf = (i) => ({ id: `u${i % 500}`, role: 'user' })
  const heavy = { id: HEAVY_USER, role: 'user' }
  // The best of 7 rounds of 40 calls: wall time in a process that shares its core, so the least disturbed round is the figure.
  const time = async (fn) => {
    for (let i = 0; i < 40; i++) await fn(i)
    let best = Infinity
    for (let r = 0; r < 7; r++) {
      const t0 = performance.now()
      for (let i = 0; i < 40; i++) await fn(i)
      best = Math.min(best, (performance.now() - t0) * 1000 / 40)
    }
    return round(best)
  }
  const r = {
    unreadCount: await time(i => store.unreadCount(userOf(i), categories, t)),
    unreadCountHeavy: await time(() => store.unreadCount(heavy, categories, t)),
    // Only the category of the heavy user's own notifications: no broadcast reaches the cap first, its own arm is walked.
    unreadCountHeavyOwn: await time(() => store.unreadCount(heavy, ['user'], t)),
    page50: await time(i => store.query({ user: userOf(i), categories, order: 'desc', limit: 51, now: t })),
    page50Heavy: await time(() => store.query({ user: heavy, categories, order: 'desc', limit: 51, now: t })),
    replay: await time(i => store.query({ user: userOf(i), categories, after: Math.max(0, last - config.resumeBehind), order: 'asc', limit: 100, now: t })),
    resumeStatus: await time(async () => Promise.all([store.lastSeq(), store.prunedThrough()]))
  }
  await store.close()
  return r
}

// ---- one size -------------------------------------------------------------------------------

async function sizeRun (size, rep, file) {
  const copy = join(runDir, `run-${size}-${rep}.db`)
  copyFileSync(file, copy)
  const rec = { size, rep }
  process.stdout.write(`  [rep ${rep + 1}/${config.reps}] ${size.toLocaleString('en').padStart(9)} `)
  const step = (s) => process.stdout.write(` ${s}`)
  rec.store = await storeCalls(copy)
  step(`store unread ${rec.store.unreadCount}µs page ${rec.store.page50}µs;`)
  const target = oursTarget('ours', 'ours', {})
  const t0 = now()
  const { port, child } = await target.start({ fdLimit, pinning, nodeFlags: [], env: { NOTIFY_STORE: `sqlite:${copy}`, NOTIFY_RETENTION_MAX_COUNT: String(RETENTION_MAX_COUNT) } })
  rec.startMs = Math.round(now() - t0)
  const pid = child.pid
  try {
    const c = await connectLoad(port, pid)
    rec.connect = c.connect
    step(`connect ${rec.connect.usPerConnection}µs`)
    rec.connectHeavy = await heavyConnectLoad(port, pid)
    step(`heavy ${rec.connectHeavy.usPerConnection}µs`)
    rec.resume = await resumeLoad(port, pid, c.lastSeq)
    step(`resume ${rec.resume.usPerClient}µs`)
    rec.historyRest = await restHistoryLoad(port, pid, 'users')
    rec.historyRestHeavy = await restHistoryLoad(port, pid, 'heavy')
    step(`GET ${rec.historyRest.usPerRequest}/${rec.historyRestHeavy.usPerRequest}µs`)
    rec.historyFrame = await historyFrameLoad(port, pid)
    step(`frame ${rec.historyFrame.usPerRequest}µs`)
    rec.publish = await publishLoad(port, pid, target)
    step(`publish ${rec.publish.usPerNotification}µs`)
  } catch (err) {
    rec.error = err.message
    step(`ERROR ${err.message.split('\n')[0]}`)
  } finally {
    await stopProcess(child)
    child.cleanup?.()
    rmSync(copy, { force: true })
    rmSync(copy + '-wal', { force: true })
    rmSync(copy + '-shm', { force: true })
  }
  console.log('')
  return rec
}

// ---- report ---------------------------------------------------------------------------------

/** [label, path into a run record, unit]: lower is better for all but /s. */
const METRICS = [
  ['publish (REST batch of 50): server CPU µs per notification', 'publish.usPerNotification'],
  ['publish: notifications /s', 'publish.perSec'],
  ['connect: server CPU µs per connection', 'connect.usPerConnection'],
  ['connect: connections opened /s', 'connect.perSec'],
  ['connect as the user with 1% of history addressed to them: server CPU µs per connection (open and close)', 'connectHeavy.usPerConnection'],
  [`resume (since = newest − ${config.resumeBehind}): server CPU µs per client`, 'resume.usPerClient'],
  ['resume: clients caught up /s', 'resume.perSec'],
  ['GET /api/notifications?limit=50 (page + unread): server CPU µs per request', 'historyRest.usPerRequest'],
  ['GET /api/notifications?limit=50, heavy user: server CPU µs per request', 'historyRestHeavy.usPerRequest'],
  ['history frame (limit 50): server CPU µs per request', 'historyFrame.usPerRequest'],
  ['in-process: unread count, µs', 'store.unreadCount'],
  ['in-process: unread count, heavy user, µs', 'store.unreadCountHeavy'],
  ["in-process: unread count, heavy user, category 'user' only (its own notifications), µs", 'store.unreadCountHeavyOwn'],
  ['in-process: history page of 50, µs', 'store.page50'],
  ['in-process: history page of 50, heavy user, µs', 'store.page50Heavy'],
  [`in-process: replay page (since = newest − ${config.resumeBehind}), µs`, 'store.replay'],
  ['in-process: resume status (lastSeq + prunedThrough), µs', 'store.resumeStatus']
]
const get = (rec, path) => path.split('.').reduce((o, k) => o?.[k], rec)

function summarise (runs) {
  const medians = {}
  for (const size of config.sizes) {
    const mine = runs.filter(r => r.size === size && !r.error)
    medians[size] = {}
    for (const [, path] of METRICS) {
      const vals = mine.map(r => get(r, path)).filter(v => typeof v === 'number')
      medians[size][path] = vals.length ? median(vals) : null
    }
  }
  const ratios = {}
  for (const size of config.sizes) {
    ratios[size] = {}
    for (const [, path] of METRICS) {
      const base = medians[0][path]
      const v = medians[size][path]
      ratios[size][path] = base && v !== null ? round(v / base, 2) : null
    }
  }
  // A page or a replay of an empty history returns nothing: the smallest non-empty history is the
  // baseline that says whether a full page stays flat as history grows.
  const sized = config.sizes.filter(s => s > 0)
  const first = sized[0]
  const largest = sized[sized.length - 1]
  const largestToSmallest = {}
  for (const [, path] of METRICS) {
    const base = medians[first]?.[path]
    const v = medians[largest]?.[path]
    largestToSmallest[path] = base && v !== null && v !== undefined && sized.length > 1 ? round(v / base, 2) : null
  }
  return { medians, ratios, largestToSmallest, first, largest }
}

function tableRows ({ medians, ratios, largestToSmallest, first, largest }) {
  const sized = config.sizes.filter(s => s > 0)
  const ratio = (v) => v === null ? '–' : `${v.toFixed(2)}×`
  const last = sized.length > 1 ? [`${largest.toLocaleString('en')} / ${first.toLocaleString('en')}`] : []
  const head = ['metric', ...config.sizes.map(s => s.toLocaleString('en')), ...sized.map(s => `${s.toLocaleString('en')} / 0`), ...last]
  const rows = METRICS.map(([label, path]) => [
    label,
    ...config.sizes.map(s => fmt(medians[s][path])),
    ...sized.map(s => ratio(ratios[s][path])),
    ...(last.length ? [ratio(largestToSmallest[path])] : [])
  ])
  return { head, rows }
}

function writeDocsBlock (result, t) {
  const docPath = join(ROOT, 'docs/benchmarks.md')
  const doc = readFileSync(docPath, 'utf8')
  const m = result.machine
  const block = [
    '<!-- bench:history:start (generated by bench/history.mjs; do not edit by hand) -->',
    `Run: **${result.mode}**, ${result.startedAt}, ${result.durationSeconds} s. Machine: ${m.cpus} cores (${m.cpuModel}), Node ${m.node}; ${m.pinning}; load average ${m.loadAverageAtStart.join(' ')} at start, ${m.loadAverageAtEnd.join(' ')} at end. ${config.reps} repetition(s), medians; ratios against the empty history in the same run.`,
    '',
    markdownTable(t.head, t.rows),
    '<!-- bench:history:end -->'
  ].join('\n')
  const re = /<!-- bench:history:start[\s\S]*?<!-- bench:history:end -->/
  if (!re.test(doc)) throw new Error('docs/benchmarks.md has no <!-- bench:history:start --> … <!-- bench:history:end --> block to replace')
  writeFileSync(docPath, doc.replace(re, block))
}

// ---- main -----------------------------------------------------------------------------------

async function main () {
  console.log(`history benchmark (${config.mode}): sizes ${config.sizes.join(', ')}; ${config.reps} repetition(s); load ${os.loadavg().map(v => round(v, 2)).join(' ')}`)
  const startedAt = new Date().toISOString()
  const loadAverageAtStart = os.loadavg().map(v => round(v, 2))
  const t0 = Date.now()
  if (!args['no-build']) {
    process.stdout.write('building (npm run build)… ')
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
    console.log(`${Math.round((Date.now() - t0) / 1000)}s`)
  }
  const files = await generateHistories(dataDir, config.sizes, (s) => console.log(`  ${s}`))
  const runs = []
  for (let rep = 0; rep < config.reps; rep++) {
    // Alternate the order, so no size always runs on a warmer (or busier) machine.
    const order = rep % 2 === 0 ? config.sizes : [...config.sizes].reverse()
    for (const size of order) runs.push(await sizeRun(size, rep, files[size]))
  }
  const summary = summarise(runs)
  const result = {
    mode: config.mode,
    startedAt,
    durationSeconds: Math.round((Date.now() - t0) / 1000),
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      node: process.version,
      pinning: pinning.enabled ? `server on core ${pinning.serverCores}, harness and clients on ${pinning.clientCores}` : pinning.reason,
      loadAverageAtStart,
      loadAverageAtEnd: os.loadavg().map(v => round(v, 2))
    },
    config: { ...config, ours: `dist/server/main.js, SQLite history (a copy of the generated file per start), JWT auth, NOTIFY_RETENTION_MAX_COUNT=${RETENTION_MAX_COUNT}, LOG_LEVEL=warn` },
    errors: runs.filter(r => r.error).map(r => `${r.size} rep ${r.rep + 1}: ${r.error}`),
    medians: summary.medians,
    ratiosToEmpty: summary.ratios,
    ratiosLargestToSmallest: summary.largestToSmallest,
    runs
  }
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
  writeFileSync(outFile, JSON.stringify(result, null, 1) + '\n')
  const t = tableRows(summary)
  console.log(`\nmedians of ${config.reps} run(s); ratios against the empty history in this run (lower is better, except /s)\n`)
  console.log(textTable(t.head, t.rows))
  if (result.errors.length > 0) console.log(`\n! failed runs (left out of the medians): ${result.errors.join('; ')}`)
  console.log(`\nresults: ${outFile} (${result.durationSeconds}s)`)
  if (writeDocs) {
    writeDocsBlock(result, t)
    console.log('updated docs/benchmarks.md (bench:history block)')
  }
}

main().then(() => cleanupAndExit(0), (err) => cleanupAndExit(1, err.stack))
