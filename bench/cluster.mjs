#!/usr/bin/env node
// npm run bench -- --cluster [--quick] : the multi-instance scenario. Two of our
// instances on one Redis, one of ours on SQLite, and two Socket.IO servers with
// @socket.io/redis-streams-adapter on the same Redis; the clients are split evenly
// across the instances of a target and every publish goes to the first instance.
// See docs/benchmarks.md, "Multi-instance on Redis".
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { cpuMs, hardFdLimit, killAll, now, planPinning, sleep, startLoadClient, stopProcess } from './lib/proc.mjs'
import { benchServer, JWT_SECRET, oursTarget, tempDirs } from './lib/targets.mjs'
import { median, textTable } from './lib/report.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    n: { type: 'string' },
    reps: { type: 'string' },
    redis: { type: 'string', default: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
    'no-build': { type: 'boolean', default: false },
    out: { type: 'string' },
    'write-docs': { type: 'boolean' },
    help: { type: 'boolean', default: false }
  }
})
if (args.help) {
  console.log(`npm run bench -- --cluster [options]
  --quick          1 repetition, shorter fixed-rate run (< 2 min)
  --n=1000         clients per target (split evenly across its instances)
  --reps=3         repetitions (default 3, 1 with --quick)
  --redis=URL      the Redis both clusters use (default redis://127.0.0.1:6379)
  --no-build       use dist/ as it is        --out=bench/results/cluster.json
  --write-docs     update the "Multi-instance on Redis" section of docs/benchmarks.md (default: full runs only)`)
  process.exit(0)
}

const quick = args.quick
const config = {
  mode: quick ? 'quick' : 'full',
  n: Number(args.n ?? 1000),
  reps: Number(args.reps ?? (quick ? 1 : 3)),
  burstDeliveries: quick ? 100_000 : 300_000,
  batch: 50,
  payloadBytes: 200,
  rate: 10,
  rateSeconds: quick ? 3 : 5,
  connectConcurrency: 200
}
if (!Number.isInteger(config.n) || config.n < 2 || config.n % 2 !== 0) throw new Error(`--n must be an even integer ≥ 2, got ${args.n}`)
const outFile = args.out ?? join(ROOT, 'bench/results/cluster.json')
const writeDocs = args['write-docs'] ?? !quick
/** One run's Redis namespace: our prefix (its keys are `{prefix}:…`) and the Socket.IO stream. */
const runId = 'bench-' + randomBytes(6).toString('hex')
const sioStream = `${runId}-sio`

const TARGETS = {
  'ours-redis-x2': { label: 'ours, 2 instances on Redis', client: 'ours', instances: 2, server: oursTarget('ours (Redis)', 'ours', { NOTIFY_STORE: args.redis, NOTIFY_REDIS_PREFIX: runId }) },
  'ours-sqlite': { label: 'ours, 1 instance on SQLite', client: 'ours', instances: 1, server: oursTarget('ours (SQLite)', 'ours', {}) },
  'sio-redis-x2': { label: 'Socket.IO, 2 instances, redis-streams-adapter', client: 'sio', instances: 2, server: benchServer('Socket.IO (Redis)', 'socketio-redis.mjs', 'sio'), env: { BENCH_REDIS_URL: args.redis, BENCH_SIO_STREAM: sioStream } }
}
const NAMES = Object.keys(TARGETS)

const pinning = planPinning()
const fdLimit = Math.min(hardFdLimit(), config.n + 2048)
const redis = new Redis(args.redis, { lazyConnect: true, maxRetriesPerRequest: 1 })

let client
async function cleanRedis () {
  // Our keys carry the prefix as their hash tag; the adapter keeps one stream.
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `{${runId}}*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) await redis.del(...keys)
  } while (cursor !== '0')
  await redis.del(sioStream)
}
function cleanupAndExit (code, why) {
  if (why) console.error(why)
  try { client?.kill('SIGKILL') } catch {}
  killAll()
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
  cleanRedis().catch(() => {}).finally(() => { redis.disconnect(); process.exit(code) })
}
process.once('SIGINT', () => cleanupAndExit(130, '\ninterrupted: servers and load client stopped'))
process.once('SIGTERM', () => cleanupAndExit(143, 'terminated: servers and load client stopped'))
process.on('uncaughtException', (err) => cleanupAndExit(1, err.stack))
process.on('unhandledRejection', (err) => cleanupAndExit(1, err?.stack ?? String(err)))
// Last-resort hard stop; every wait below has its own timeout.
setTimeout(() => cleanupAndExit(2, '! time bound of 10 min per repetition exceeded: stopped'), config.reps * 600_000).unref()

const PAD = 'x'.repeat(Math.max(0, config.payloadBytes - JSON.stringify({ t: now(), pad: '' }).length))
const message = (to) => (to === undefined ? { data: { t: now(), pad: PAD } } : { data: { t: now(), pad: PAD }, to })
const burstMessages = Math.max(20, Math.min(1000, Math.round(config.burstDeliveries / config.n)))

async function publishAll (t, count, mk) {
  for (let sent = 0; sent < count; sent += config.batch) {
    const batch = []
    for (let k = sent; k < Math.min(count, sent + config.batch); k++) batch.push(mk(k))
    await t.server.publish(t.ports[0], batch)
  }
}
const cpuOf = (pids) => pids.reduce((sum, pid) => sum + cpuMs(pid), 0)
async function redisCpuMs () {
  const info = await redis.info('cpu')
  const field = (k) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? 0)
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1000
}

/** Every client gets every broadcast exactly once. */
async function burst (t) {
  const n = config.n
  await client.call('reset')
  const cpu0 = cpuOf(t.pids)
  const r0 = await redisCpuMs()
  const t0 = now()
  await publishAll(t, burstMessages, () => message())
  const w = await client.call('wait', { target: n * burstMessages, timeoutMs: 60_000, perClient: burstMessages })
  const seconds = (w.lastAt - t0) / 1000
  const cpu = cpuOf(t.pids) - cpu0
  return {
    messages: burstMessages,
    expected: n * burstMessages,
    delivered: w.total,
    correct: w.total === n * burstMessages && w.wrong === 0,
    wrongClients: w.wrong,
    perSec: Math.round(w.total / seconds),
    cpuUsPerDelivery: Math.round(cpu * 1000 / Math.max(1, w.total) * 1000) / 1000,
    redisCpuMs: Math.round(await redisCpuMs() - r0),
    p50: w.latency.p50,
    p99: w.latency.p99
  }
}

/** A light fixed rate (10 broadcasts/s): the publish-to-receive latency with no queueing behind it. */
async function rate (t) {
  const n = config.n
  const slots = config.rate * config.rateSeconds
  await client.call('reset')
  const t0 = now()
  const inflight = new Set()
  let errors = 0
  for (let k = 0; k < slots; k++) {
    const wait = t0 + k * 1000 / config.rate - now()
    if (wait > 0) await sleep(wait)
    const p = t.server.publish(t.ports[0], [message()]).catch(() => { errors++ }).finally(() => inflight.delete(p))
    inflight.add(p)
  }
  await Promise.race([Promise.all(inflight), sleep(8000)])
  const w = await client.call('wait', { target: n * slots, timeoutMs: 8000, perClient: slots })
  return { sent: slots, publishErrors: errors, expected: n * slots, delivered: w.total, correct: errors === 0 && w.total === n * slots && w.wrong === 0, p50: w.latency.p50, p99: w.latency.p99, max: w.latency.max }
}

/** One notification per user (u0…u<N-1>), all published on the first instance: half of them cross to the second. */
async function targeted (t) {
  const n = config.n
  await client.call('reset')
  const cpu0 = cpuOf(t.pids)
  const t0 = now()
  await publishAll(t, n, (k) => message(`u${k}`))
  const w = await client.call('wait', { target: n, timeoutMs: 60_000, perClient: 1 })
  const seconds = (w.lastAt - t0) / 1000
  const cpu = cpuOf(t.pids) - cpu0
  return {
    expected: n,
    delivered: w.total,
    correct: w.total === n && w.wrong === 0,
    perSec: Math.round(w.total / seconds),
    cpuUsPerDelivery: Math.round(cpu * 1000 / Math.max(1, w.total) * 1000) / 1000,
    p50: w.latency.p50,
    p99: w.latency.p99
  }
}

async function session (name, rep) {
  const def = TARGETS[name]
  const rec = { server: name, n: config.n, rep }
  const started = now()
  process.stdout.write(`  [rep ${rep + 1}/${config.reps}] ${name.padEnd(14)}`)
  const step = (s) => process.stdout.write(` ${s}`)
  const procs = []
  try {
    for (let i = 0; i < def.instances; i++) procs.push(await def.server.start({ fdLimit, pinning, nodeFlags: [], env: def.env ?? {} }))
    const t = { server: def.server, ports: procs.map(p => p.port), pids: procs.map(p => p.child.pid) }
    const per = config.n / def.instances
    const t0 = now()
    for (let i = 0; i < def.instances; i++) {
      const c = await client.call('connect', { kind: def.client, port: t.ports[i], n: per, offset: i * per, total: config.n, secret: JWT_SECRET, concurrency: config.connectConcurrency })
      if (c.connected !== per) throw new Error(`only ${c.connected}/${per} connected to instance ${i + 1}: ${JSON.stringify(c.failures)}`)
    }
    rec.connectMs = Math.round(now() - t0)
    step(`connect ${rec.connectMs}ms`)
    rec.burst = await burst(t)
    step(`burst ${rec.burst.perSec}/s p99 ${rec.burst.p99}ms${rec.burst.correct ? '' : ' LOSSY'}`)
    rec.rate10 = await rate(t)
    step(`10/s p50 ${rec.rate10.p50}ms p99 ${rec.rate10.p99}ms${rec.rate10.correct ? '' : ' INCOMPLETE'}`)
    rec.targeted = await targeted(t)
    step(`targeted ${rec.targeted.perSec}/s${rec.targeted.correct ? '' : ' LOSSY'}`)
  } catch (err) {
    rec.error = err.message
    step(`ERROR ${err.message.split('\n')[0]}`)
  } finally {
    await client.call('closeAll').catch(() => {})
    for (const p of procs) { await stopProcess(p.child); p.child.cleanup?.() }
  }
  console.log(` (${Math.round((now() - started) / 1000)}s)`)
  return rec
}

// Only correct runs count: a lossy run's speed means nothing.
const METRICS = [
  { id: 'burstPerSec', label: 'burst: delivered /s', path: r => r.burst?.correct ? r.burst.perSec : undefined },
  { id: 'burstCpuUs', label: 'burst: server CPU µs per delivery (all instances)', path: r => r.burst?.correct ? r.burst.cpuUsPerDelivery : undefined },
  { id: 'burstP50', label: 'burst: publish-to-receive p50 (ms)', path: r => r.burst?.correct ? r.burst.p50 : undefined },
  { id: 'burstP99', label: 'burst: publish-to-receive p99 (ms)', path: r => r.burst?.correct ? r.burst.p99 : undefined },
  { id: 'rate10P50', label: '10/s: publish-to-receive p50 (ms)', path: r => r.rate10?.correct ? r.rate10.p50 : undefined },
  { id: 'rate10P99', label: '10/s: publish-to-receive p99 (ms)', path: r => r.rate10?.correct ? r.rate10.p99 : undefined },
  { id: 'targetedPerSec', label: 'targeted: delivered /s (1 per user)', path: r => r.targeted?.correct ? r.targeted.perSec : undefined },
  { id: 'targetedCpuUs', label: 'targeted: server CPU µs per delivery (all instances)', path: r => r.targeted?.correct ? r.targeted.cpuUsPerDelivery : undefined },
  { id: 'targetedP50', label: 'targeted: publish-to-receive p50 (ms)', path: r => r.targeted?.correct ? r.targeted.p50 : undefined },
  { id: 'targetedP99', label: 'targeted: publish-to-receive p99 (ms)', path: r => r.targeted?.correct ? r.targeted.p99 : undefined }
]
const RATIOS = [['ours-redis-x2', 'ours-sqlite'], ['ours-redis-x2', 'sio-redis-x2']]
const fmt = (v) => v === undefined || v === null ? '–' : String(Math.round(v * 1000) / 1000)

function summarise (runs) {
  const medians = {}
  for (const s of NAMES) {
    medians[s] = {}
    for (const m of METRICS) {
      const v = median(runs.filter(r => r.server === s).map(m.path))
      if (v !== null) medians[s][m.id] = v
    }
  }
  const ratios = {}
  for (const [a, b] of RATIOS) {
    ratios[`${a} / ${b}`] = {}
    for (const m of METRICS) {
      const x = medians[a][m.id]
      const y = medians[b][m.id]
      if (x !== undefined && y !== undefined && y !== 0) ratios[`${a} / ${b}`][m.id] = x / y
    }
  }
  return { medians, ratios }
}

function table (summary) {
  const head = ['metric', ...NAMES, ...RATIOS.map(([a, b]) => `${a} / ${b}`)]
  const rows = METRICS.map(m => [m.label, ...NAMES.map(s => fmt(summary.medians[s][m.id])), ...RATIOS.map(([a, b]) => fmt(summary.ratios[`${a} / ${b}`][m.id]))])
  return { head, rows }
}

async function main () {
  const load = os.loadavg().map(v => Math.round(v * 100) / 100)
  console.log(`unified-notifications multi-instance benchmark (${config.mode}): N = ${config.n}, ${config.reps} repetition(s); ${NAMES.join(', ')}; Redis ${args.redis}, run ${runId}`)
  console.log(`machine: ${os.cpus().length} cores, Node ${process.version}, load ${load.join(' ')}; ${pinning.enabled ? 'every server instance on core 0, harness and load client on ' + pinning.clientCores + ', Redis unpinned' : pinning.reason}`)
  await redis.connect()
  if (!args['no-build']) {
    process.stdout.write('building (npm run build)… ')
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
    console.log('done')
  }
  const startedAt = new Date().toISOString()
  const t0 = Date.now()
  client = startLoadClient(fdLimit)
  const runs = []
  for (let rep = 0; rep < config.reps; rep++) {
    // Alternate the order, so no target always runs first.
    for (let k = 0; k < NAMES.length; k++) runs.push(await session(NAMES[(k + rep) % NAMES.length], rep))
  }
  client.kill()
  await cleanRedis()
  const summary = summarise(runs)
  const bad = runs.filter(r => r.error || !r.burst?.correct || !r.rate10?.correct || !r.targeted?.correct)
  const result = {
    mode: config.mode,
    startedAt,
    durationSeconds: Math.round((Date.now() - t0) / 1000),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version, loadAverageAtStart: load, loadAverageAtEnd: os.loadavg().map(v => Math.round(v * 100) / 100), pinning: pinning.enabled ? `server instances on core ${pinning.serverCores}, harness and load client on ${pinning.clientCores}, Redis unpinned` : pinning.reason },
    config: { ...config, burstMessages, publishesTo: 'the first instance of each target', clients: 'split evenly across the instances of a target' },
    incorrectRuns: bad.map(r => ({ server: r.server, rep: r.rep, error: r.error, burst: r.burst?.correct, rate10: r.rate10?.correct, targeted: r.targeted?.correct })),
    ...summary,
    runs
  }
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
  writeFileSync(outFile, JSON.stringify(result, null, 1) + '\n')
  const t = table(summary)
  console.log(`\nmedians of ${config.reps} run(s), N = ${config.n}; ratios: lower is better for µs and ms, higher for /s\n`)
  console.log(textTable(t.head, t.rows))
  if (bad.length > 0) console.log(`\n! incorrect runs (left out of the medians): ${JSON.stringify(result.incorrectRuns)}`)
  console.log(`\nresults: ${outFile} (${result.durationSeconds}s); Redis keys of run ${runId} deleted`)
  if (writeDocs) {
    writeDocsSection(result, t)
    console.log('updated docs/benchmarks.md (Multi-instance on Redis)')
  }
}

function describe (r) {
  const failed = ['burst', 'rate10', 'targeted'].filter(k => r[k] === false)
  return `${r.server} rep ${r.rep + 1}/${config.reps}: ${r.error ?? `lost or duplicated notifications in ${failed.join(', ')}`}`
}

/** The metric name left-aligned, every figure right-aligned. */
function markdownTable (head, rows) {
  const esc = (c) => c.replace(/\|/g, '\\|')
  return [`| ${head.map(esc).join(' | ')} |`, `|${head.map((_, i) => i === 0 ? '---' : '---:').join('|')}|`, ...rows.map(r => `| ${r.map(esc).join(' | ')} |`)].join('\n')
}

function writeDocsSection (result, t) {
  const docPath = join(ROOT, 'docs/benchmarks.md')
  const doc = readFileSync(docPath, 'utf8')
  const m = result.machine
  const block = [
    '<!-- bench:cluster:start (generated by bench/cluster.mjs; do not edit by hand) -->',
    `Run: **${result.mode}**, ${result.startedAt}, ${result.durationSeconds} s. Machine: ${m.cpus} cores (${m.cpuModel}), Node ${m.node}; ${m.pinning}; load average ${m.loadAverageAtStart.join(' ')} at start, ${m.loadAverageAtEnd.join(' ')} at end. N = ${config.n} (split evenly across a target's instances), ${config.reps} repetition(s), medians; burst ${burstMessages} broadcasts; every publish on the first instance.${result.incorrectRuns.length > 0 ? ` Incorrect runs, left out of the medians: ${result.incorrectRuns.map(describe).join('; ')}.` : ' Every run correct: every client got every broadcast and its one targeted notification exactly once.'}`,
    '',
    markdownTable(t.head, t.rows),
    '<!-- bench:cluster:end -->'
  ].join('\n')
  const re = /<!-- bench:cluster:start[\s\S]*?<!-- bench:cluster:end -->/
  writeFileSync(docPath, re.test(doc) ? doc.replace(re, block) : doc + '\n' + block + '\n')
}

main().then(() => { redis.disconnect(); process.exit(0) }, (err) => cleanupAndExit(1, err.stack))
