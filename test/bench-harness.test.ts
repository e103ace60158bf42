// The benchmark's own logic (not its figures): the issue-15 targets evaluated
// from a run's medians, and the coalescing raw ws server (bench/servers/raw-batch.mjs)
// delivering what it is given, intact and in order, in as few writes as ours.
import { spawn } from 'node:child_process'
import net from 'node:net'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import WebSocket from 'ws'

const ROOT = resolve(import.meta.dirname, '..')
// Plain .mjs without declarations: imported by URL, typed by what the tests use.
interface GoalRow { id: string, n: number | null, measured: number | null, threshold: number, met: boolean | null | undefined, comparable?: boolean, stretchMet?: boolean | null, note?: string }
const goals = await import(pathToFileURL(resolve(ROOT, 'bench/lib/goals.mjs')).href) as {
  evaluateGoals: (a: object) => GoalRow[]
  goalRows: (rows: GoalRow[]) => { head: string[], rows: string[][] }
}

t.test('targets: each ratio against its bound, at the N where it applies', async t => {
  const m = (ours: object, raw: object, sio: object = {}) => ({ ours, raw, sio, 'raw-batch': {} })
  const medians = {
    1000: m({ targetedCpuUs: 30, targetedPerSec: 13_000, connectPerSec: 900, burstCpuUs: 1.2, rate10p50: 10, rate10p99: 25, rssPerConnKB: 20, heapPerConnKB: 9 },
      { targetedCpuUs: 20, targetedPerSec: 30_000, connectPerSec: 1000, burstCpuUs: 10, rate10p50: 10, rate10p99: 20, rssPerConnKB: 10, heapPerConnKB: 3 },
      { targetedPerSec: 10_000 }),
    15000: m({ targetedCpuUs: 40, targetedPerSec: 16_000, connectPerSec: 700, burstCpuUs: 3, rssPerConnKB: 8, heapPerConnKB: 4 },
      { targetedCpuUs: 20, targetedPerSec: 20_000, connectPerSec: 1000, burstCpuUs: 10, rssPerConnKB: 7, heapPerConnKB: 3 },
      { targetedPerSec: 10_000 })
  }
  const rest = { medians: { ours: { cpuUsPerReq: 40 }, 'bare-fastify': { cpuUsPerReq: 28 } } }
  const previous = { burstCpuUsOursVsRaw: { 1000: 0.131, 5000: 0.203, 10000: 0.219 } }
  const rows = goals.evaluateGoals({ medians, ns: [1000, 15000], rest, previous, capacity: { raw: 5000, ours: 1000 } })
  const get = (id: string, n: number | null = null) => rows.find(r => r.id === id && r.n === n)

  t.match(get('targetedCpu', 1000), { measured: 1.5, threshold: 1.5, met: true }, 'the bound itself is met')
  t.match(get('targetedCpu', 15000), { measured: 2, met: false })
  t.match(get('targetedRate', 1000), { measured: 1.3, met: true, stretchMet: false }, 'against Socket.IO, with the stretch')
  t.match(get('targetedRate', 15000), { measured: 1.6, met: true, stretchMet: true })
  t.match(get('connectRate', 15000), { measured: 0.7, met: false }, 'higher is better: under 0.8 is not met')
  t.notOk(get('resumeCpu', 1000), 'a scenario the run did not measure gives no row')
  t.notOk(get('idleRss', 1000), 'memory only at the largest N')
  t.match(get('idleRss', 15000), { measured: 1.143, met: true })
  t.match(get('idleHeap', 15000), { measured: 1.333, met: true })
  t.match(get('restCpu'), { n: null, measured: 1.429, threshold: 1.5, met: true })
  t.match(get('burstCpu', 1000), { measured: 0.12, threshold: 0.131, met: true, note: 'previous round at this N' })
  t.match(get('burstCpu', 15000), { measured: 0.3, threshold: 0.219, met: false, note: 'previous round at N = 10000' }, 'an N the previous round lacks: its nearest below')
  t.match(get('rate10p50', 1000), { measured: 1, met: true })
  t.match(get('rate10p99', 1000), { measured: 1.25, met: false })
  t.notOk(get('rate10p99', 15000), 'latency only at N = 1000')
  t.match(get('capacity'), { measured: 0.2, met: false })

  const table = goals.goalRows(rows)
  t.same(table.head, ['target', 'N', 'measured', 'threshold', 'status'])
  t.same(table.rows.find(r => r[0]!.startsWith('targeted: delivered') && r[1] === '1,000'), ['targeted: delivered /s, ours / Socket.IO', '1,000', '1.30×', '>= 1.2× (stretch >= 1.5×)', 'met (stretch not)'])
  t.same(table.rows.find(r => r[1] === 'REST')?.[4], 'met')
})

t.test("targets: the previous round's bounds only on its CPU model; the previous build in the same run anywhere", async t => {
  const medians = {
    1000: {
      ours: { burstCpuUs: 1.2, targetedCpuUs: 60, resumeCpuMs: 0.5 },
      raw: { burstCpuUs: 6 },
      'ours-prev': { burstCpuUs: 1.5, targetedCpuUs: 50, resumeCpuMs: 0.5 }
    }
  }
  const previous = { source: { cpuModel: 'AMD EPYC' }, burstCpuUsOursVsRaw: { 1000: 0.131 } }
  const elsewhere = goals.evaluateGoals({ medians, ns: [1000], previous, cpuModel: 'Intel(R) Xeon(R) Processor' })
  const burst = elsewhere.find(r => r.id === 'burstCpu')
  t.match(burst, { measured: 0.2, comparable: false }, 'measured, but another machine\'s bound')
  t.equal(burst!.met, undefined, 'neither met nor not met')
  t.match(goals.goalRows(elsewhere).rows.find(r => r[0]!.includes('ours / raw') && r[0]!.startsWith('no regression: burst'))?.[4], 'not comparable')
  t.match(elsewhere.find(r => r.id === 'burstCpuPrev'), { measured: 0.8, met: true }, 'against the previous build: 1.2 / 1.5')
  t.match(elsewhere.find(r => r.id === 'targetedCpuPrev'), { measured: 1.2, met: false }, 'more than 10% dearer than the previous build')
  t.match(elsewhere.find(r => r.id === 'resumeCpuPrev'), { measured: 1, met: true })
  const same = goals.evaluateGoals({ medians, ns: [1000], previous, cpuModel: 'AMD EPYC' })
  t.match(same.find(r => r.id === 'burstCpu'), { measured: 0.2, met: false }, 'on the same CPU model the bound holds')
  t.notOk(goals.evaluateGoals({ medians: { 1000: { ours: { burstCpuUs: 1 }, raw: { burstCpuUs: 6 } } }, ns: [1000] }).some(r => r.id === 'burstCpuPrev'), 'no previous build run: no row')
})

t.test('targets: a lossy run (no median) is reported as having no figure, not as met', async t => {
  const medians = { 1000: { ours: { connectPerSec: 900 }, raw: { connectPerSec: 1000, targetedCpuUs: 20 } } }
  const rows = goals.evaluateGoals({ medians, ns: [1000] })
  t.match(rows.find(r => r.id === 'targetedCpu'), { measured: null, met: null })
  t.match(goals.goalRows(rows).rows.find(r => r[0]!.startsWith('targeted: server'))?.[4], /no figure/)
})

const report = await import(pathToFileURL(resolve(ROOT, 'bench/lib/report.mjs')).href) as {
  summarise: (runs: object[], servers: string[], ns: number[], baselines: string[]) => { medians: Record<number, Record<string, Record<string, number>>>, ratios: Record<string, Record<number, Record<string, Record<string, number>>>> }
  ratioColumns: (servers: string[], baselines: string[]) => Array<{ server: string, baseline: string }>
}

t.test('ratios against each baseline: every other server, and raw-batch against raw but not the reverse', async t => {
  const servers = ['raw', 'raw-batch', 'ours', 'sio']
  t.same(report.ratioColumns(servers, ['raw', 'raw-batch']).map(c => `${c.server}/${c.baseline}`),
    ['raw-batch/raw', 'ours/raw', 'sio/raw', 'ours/raw-batch', 'sio/raw-batch'])
  const runs = [['raw', 8], ['raw-batch', 1.6], ['ours', 2.4], ['sio', 8]].map(([server, us]) => ({ server, n: 1000, burst: { correct: true, cpuUsPerDelivery: us } }))
  const { medians, ratios } = report.summarise(runs, servers, [1000], ['raw', 'raw-batch'])
  t.equal(medians[1000]!.ours!.burstCpuUs, 2.4)
  t.equal(ratios.raw![1000]!.ours!.burstCpuUs, 0.3)
  t.equal(ratios['raw-batch']![1000]!.ours!.burstCpuUs, 1.5)
  t.equal(ratios['raw-batch']![1000]!.raw!.burstCpuUs, 5)
})

/** Starts raw-batch.mjs on a free port; stopped (SIGTERM) at the end of the test. */
async function rawBatch (t: Test): Promise<number> {
  const child = spawn(process.execPath, [resolve(ROOT, 'bench/servers/raw-batch.mjs')], { env: { ...process.env, PORT: '0', HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => new Promise<void>(done => { child.once('exit', () => done()); child.kill('SIGTERM') }))
  return await new Promise((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(JSON.parse(d.toString()).listening))
    child.once('exit', code => reject(new Error(`raw-batch exited ${code}`)))
  })
}

/** A client that keeps every text frame and counts the socket's reads after the upgrade. */
function client (port: number, query: string) {
  const frames: Array<{ type: string, notification?: { seq: number, data: unknown }, count?: number }> = []
  let reads = 0
  const ws = new WebSocket(`ws://127.0.0.1:${port}/?${query}`, {
    perMessageDeflate: false,
    createConnection: ((opts: net.NetConnectOpts) => net.connect(opts).on('data', () => { reads++ })) as typeof net.createConnection
  })
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())))
  const opened = new Promise<void>((resolve, reject) => { ws.once('open', () => { reads = 0; resolve() }); ws.once('error', reject) })
  const until = async (count: number) => { while (frames.length < count) await new Promise(resolve => setTimeout(resolve, 5)) }
  return { ws, frames, opened, until, reads: () => reads }
}

async function publish (port: number, messages: object[]): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages }) })
  return ((await res.json()) as { lastSeq: number }).lastSeq
}

t.test('raw-batch: one publish of 20 reaches every socket intact, in order, in at most two writes each', async t => {
  const port = await rawBatch(t)
  const a = client(port, 'id=u1')
  const b = client(port, 'id=u2')
  await Promise.all([a.opened, b.opened])
  t.teardown(() => { a.ws.terminate(); b.ws.terminate() })

  const big = 'x'.repeat(200) // as the bench's payload: the 19 held frames stay far under the 64 KiB bound
  t.equal(await publish(port, Array.from({ length: 20 }, (_, k) => ({ data: { k, big } }))), 20)
  await Promise.all([a.until(20), b.until(20)])
  for (const c of [a, b]) {
    t.same(c.frames.map(f => f.notification?.seq), Array.from({ length: 20 }, (_, k) => k + 1), 'seq 1..20 in order')
    t.same(c.frames.map(f => (f.notification?.data as { k: number, big: string }).k), Array.from({ length: 20 }, (_, k) => k), 'payloads intact')
    t.ok(c.frames.every(f => (f.notification?.data as { big: string }).big === big))
    t.ok(c.reads() <= 2, `the first frame at once, the other 19 together (${c.reads()} reads)`)
  }

  // 20 for one socket in one publish: all of them, in order, to that socket only.
  t.equal(await publish(port, Array.from({ length: 20 }, (_, k) => ({ data: { k }, to: 'u2' }))), 40)
  await b.until(40)
  t.same(b.frames.slice(20).map(f => f.notification?.seq), Array.from({ length: 20 }, (_, k) => k + 21))
  await new Promise(resolve => setTimeout(resolve, 50))
  t.equal(a.frames.length, 20, 'nothing for u1')

  // ?since= replays the log from there, then the end-of-replay marker.
  const c = client(port, 'since=30')
  await c.opened
  t.teardown(() => c.ws.terminate())
  await c.until(11)
  t.same(c.frames.slice(0, 10).map(f => f.notification?.seq), Array.from({ length: 10 }, (_, k) => k + 31))
  t.match(c.frames[10], { type: 'replayed', count: 10, complete: true })
})
