// The performance issue's targets (issue 15), evaluated from one run's medians:
// each a ratio of ours against a reference measured in the same run, at every
// N where it applies. No timings of their own: they only read the summary.

/**
 * Each goal: which ratio (ours / `against`, one metric), the bound, and where it
 * applies ('each' N, 'largest' N, N = 1000 only, or the REST run). `previous`: the
 * bound is the previous round's ratio at that N (bench/results/previous-round.json).
 */
export const GOALS = [
  { id: 'targetedCpu', label: 'targeted: server CPU µs per delivery, ours / raw', metric: 'targetedCpuUs', against: 'raw', op: '<=', bound: 1.5, at: 'each' },
  { id: 'targetedRate', label: 'targeted: delivered /s, ours / Socket.IO', metric: 'targetedPerSec', against: 'sio', op: '>=', bound: 1.2, stretch: 1.5, at: 'each' },
  { id: 'connectRate', label: 'connections opened /s, ours / raw', metric: 'connectPerSec', against: 'raw', op: '>=', bound: 0.8, at: 'each' },
  { id: 'resumeCpu', label: 'resume storm: server CPU ms per client, ours / raw', metric: 'resumeCpuMs', against: 'raw', op: '<=', bound: 1.5, at: 'each' },
  { id: 'idleRss', label: 'idle RSS per connection, ours / raw', metric: 'rssPerConnKB', against: 'raw', op: '<=', bound: 1.3, at: 'largest' },
  { id: 'idleHeap', label: 'idle heap per connection, ours / raw', metric: 'heapPerConnKB', against: 'raw', op: '<=', bound: 1.5, at: 'largest' },
  { id: 'restCpu', label: 'REST publish: server CPU µs per request, ours / bare Fastify', metric: 'cpuUsPerReq', against: 'bare-fastify', op: '<=', bound: 1.5, at: 'rest' },
  { id: 'burstCpu', label: 'no regression: burst server CPU µs per delivery, ours / raw', metric: 'burstCpuUs', against: 'raw', op: '<=', previous: 'burstCpuUsOursVsRaw', at: 'each' },
  { id: 'rate10p50', label: 'no regression: 10 /s latency p50, ours / raw', metric: 'rate10p50', against: 'raw', op: '<=', bound: 1.2, at: 1000 },
  { id: 'rate10p99', label: 'no regression: 10 /s latency p99, ours / raw', metric: 'rate10p99', against: 'raw', op: '<=', bound: 1.2, at: 1000 },
  // With --previous: the build of another checkout in the same run, which any machine can compare (10% for noise).
  { id: 'burstCpuPrev', label: 'no regression: burst server CPU µs per delivery, ours / previous build', metric: 'burstCpuUs', against: 'ours-prev', op: '<=', bound: 1.1, at: 'each' },
  { id: 'targetedCpuPrev', label: 'no regression: targeted server CPU µs per delivery, ours / previous build', metric: 'targetedCpuUs', against: 'ours-prev', op: '<=', bound: 1.1, at: 'each' },
  { id: 'resumeCpuPrev', label: 'no regression: resume storm server CPU ms per client, ours / previous build', metric: 'resumeCpuMs', against: 'ours-prev', op: '<=', bound: 1.1, at: 'each' },
  // The second round's target: the largest N with p99 < 250 ms at 10 /s (capacity()), against raw's.
  { id: 'capacity', label: 'no regression: capacity (p99 < 250 ms at 10 /s), ours / raw', against: 'raw', op: '>=', bound: 0.9, at: 'capacity' }
]

const round3 = (v) => Math.round(v * 1000) / 1000
const holds = (op, v, bound) => op === '<=' ? v <= bound : v >= bound

/** The previous round's figure for N, else for the nearest N it has (below first). */
export function previousAt (table, n) {
  const keys = Object.keys(table ?? {}).map(Number).sort((a, b) => a - b)
  if (keys.length === 0) return undefined
  const at = keys.filter(k => k <= n).pop() ?? keys[0]
  return { n: at, value: table[at] }
}

/**
 * One row per goal and N: {id, label, n, measured, threshold, op, met, stretchMet?, note?}.
 * `met` is null when the run measured the scenario but has no figure (a lossy or failed run).
 * medians: {n: {server: {metric}}}; rest: summariseRest()'s result; previous: previous-round.json;
 * capacity: capacity()'s result (server → largest N, or null); cpuModel: this machine's.
 */
export function evaluateGoals ({ medians, ns, rest, previous, capacity, cpuModel }) {
  // A ratio against raw moves with the CPU model: the previous round's bounds hold only on its kind of machine.
  const otherMachine = previous?.source?.cpuModel !== undefined && cpuModel !== undefined && previous.source.cpuModel !== cpuModel
  const rows = []
  const sorted = [...ns].sort((a, b) => a - b)
  for (const g of GOALS) {
    if (g.at === 'capacity') {
      // A server under 250 ms at no N tested has capacity null: counted as 0.
      if (capacity === undefined || !(g.against in capacity) || !('ours' in capacity)) continue
      const r = row(g, null, capacity.ours ?? 0, capacity[g.against] ?? 0, g.bound, `N = ${sorted.join(', ')}: ours ${capacity.ours ?? 'none'}, ${g.against} ${capacity[g.against] ?? 'none'}`)
      if (capacity.ours === capacity[g.against]) { r.measured = 1; r.met = true } // both none (0/0): equal
      rows.push(r)
      continue
    }
    if (g.at === 'rest') {
      const ours = rest?.medians?.ours?.[g.metric]
      const ref = rest?.medians?.[g.against]?.[g.metric]
      if (ours === undefined && ref === undefined) continue
      rows.push(row(g, null, ours, ref, g.bound))
      continue
    }
    const where = g.at === 'each' ? sorted : g.at === 'largest' ? sorted.slice(-1) : sorted.filter(n => n === g.at)
    for (const n of where) {
      const m = medians[n] ?? {}
      // Only where the run measured it (some server has the figure) and both servers took part.
      if (!Object.values(m).some(s => s[g.metric] !== undefined) || !m.ours || !m[g.against]) continue
      let bound = g.bound
      let note
      if (g.previous !== undefined) {
        const p = previousAt(previous?.[g.previous], n)
        if (p === undefined) continue
        bound = p.value
        note = p.n === n ? 'previous round at this N' : `previous round at N = ${p.n}`
        if (otherMachine) note += ` on ${previous.source.cpuModel}: not comparable here (compare builds with --previous)`
      }
      const r = row(g, n, m.ours[g.metric], m[g.against][g.metric], bound, note)
      if (g.previous !== undefined && otherMachine) Object.assign(r, { met: undefined, comparable: false })
      rows.push(r)
    }
  }
  return rows
}

function row (g, n, ours, ref, bound, note) {
  const measured = ours !== undefined && ref !== undefined && ref !== 0 ? round3(ours / ref) : null
  const r = { id: g.id, label: g.label, n, measured, op: g.op, threshold: bound, met: measured === null ? null : holds(g.op, measured, bound) }
  if (g.stretch !== undefined) { r.stretch = g.stretch; r.stretchMet = measured === null ? null : holds(g.op, measured, g.stretch) }
  if (note !== undefined) r.note = note
  return r
}

/** [head, rows] for textTable / markdownTable. */
export function goalRows (goals) {
  const status = (g) => g.met === undefined ? 'not comparable' : g.met === null ? 'no figure (lossy or failed run)' : !g.met ? 'NOT MET' : g.stretchMet === false ? 'met (stretch not)' : g.stretchMet ? 'met, stretch met' : 'met'
  return {
    head: ['target', 'N', 'measured', 'threshold', 'status'],
    rows: goals.map(g => [
      g.label,
      g.n === null ? (g.id === 'restCpu' ? 'REST' : 'all') : g.n.toLocaleString('en-US'),
      g.measured === null ? '–' : `${g.measured.toFixed(2)}×`,
      `${g.op} ${g.threshold}×${g.stretch !== undefined ? ` (stretch ${g.op} ${g.stretch}×)` : ''}${g.note ? `, ${g.note}` : ''}`,
      status(g)
    ])
  }
}
