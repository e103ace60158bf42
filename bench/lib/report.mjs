// Medians, ratios against raw ws, the console/markdown tables and the SVG chart.

/** What is reported per (server, N); `path` reads a run record. */
export const METRICS = [
  { id: 'connectPerSec', label: 'connections opened /s', path: r => r.connect?.perSec, better: 'higher' },
  { id: 'connectCpuUs', label: 'connect: server CPU µs per connection', path: r => r.connect?.cpuUsPerConn, better: 'lower' },
  { id: 'connectClientCpuPct', label: 'connect: load-client CPU %', path: r => r.connect?.clientCpuPct, better: 'info' },
  { id: 'rssPerConnKB', label: 'idle RSS per connection (KB, after GC)', path: r => r.idle?.rssPerConnKB, better: 'lower' },
  { id: 'heapPerConnKB', label: 'idle heap per connection (KB, after GC)', path: r => r.idle?.heapPerConnKB, better: 'lower' },
  { id: 'burstPerSec', label: 'burst: delivered notifications /s', path: r => r.burst?.correct ? r.burst.perSec : undefined, better: 'higher' },
  { id: 'burstCpuUs', label: 'burst: server CPU µs per delivery', path: r => r.burst?.correct ? r.burst.cpuUsPerDelivery : undefined, better: 'lower' },
  { id: 'burstServerCpuPct', label: 'burst: server CPU % (100 = one core saturated)', path: r => r.burst?.correct ? r.burst.serverCpuPct : undefined, better: 'info' },
  { id: 'burstClientCpuPct', label: 'burst: load-client CPU %', path: r => r.burst?.correct ? r.burst.clientCpuPct : undefined, better: 'info' },
  { id: 'rate10p50', label: '10/s: latency p50 (ms)', path: r => r.rate10?.p50, better: 'lower' },
  { id: 'rate10p99', label: '10/s: latency p99 (ms)', path: r => r.rate10?.p99, better: 'lower' },
  { id: 'rate10Cpu', label: '10/s: server CPU %', path: r => r.rate10?.cpuPct, better: 'lower' },
  { id: 'rate100p50', label: '100/s: latency p50 (ms)', path: r => r.rate100?.p50, better: 'lower' },
  { id: 'rate100p99', label: '100/s: latency p99 (ms)', path: r => r.rate100?.p99, better: 'lower' },
  { id: 'rate100Cpu', label: '100/s: server CPU %', path: r => r.rate100?.cpuPct, better: 'lower' },
  { id: 'targetedPerSec', label: 'targeted: delivered /s (1 per user)', path: r => r.targeted?.correct ? r.targeted.perSec : undefined, better: 'higher' },
  { id: 'targetedCpuUs', label: 'targeted: server CPU µs per delivery', path: r => r.targeted?.correct ? r.targeted.cpuUsPerDelivery : undefined, better: 'lower' },
  { id: 'resumeMs', label: 'resume storm: ms until all caught up (10 each)', path: r => r.resume?.correct ? r.resume.ms : undefined, better: 'lower' },
  { id: 'resumePerSec', label: 'resume storm: clients caught up /s', path: r => r.resume?.caughtUpPerSec, better: 'higher' },
  { id: 'resumeCpuMs', label: 'resume storm: server CPU ms per client', path: r => r.resume?.cpuMsPerClient, better: 'lower' },
  { id: 'afterRssPerConnKB', label: 'after traffic: RSS per connection (KB, after GC)', path: r => r.afterTraffic?.rssPerConnKB, better: 'lower' },
  { id: 'afterHeapPerConnKB', label: 'after traffic: heap per connection (KB, after GC)', path: r => r.afterTraffic?.heapPerConnKB, better: 'lower' },
  // Each server against its own idle figure: growth that traffic left behind (target ≤ 1.1).
  { id: 'afterRssVsIdle', label: 'after traffic / idle, RSS per connection', path: r => r.afterTraffic && r.idle ? r.afterTraffic.rssPerConnKB / r.idle.rssPerConnKB : undefined, better: 'info' },
  { id: 'afterHeapVsIdle', label: 'after traffic / idle, heap per connection', path: r => r.afterTraffic && r.idle ? r.afterTraffic.heapPerConnKB / r.idle.heapPerConnKB : undefined, better: 'info' }
]

export const REST_METRICS = [
  { id: 'reqPerSec', label: 'REST publish: requests /s', path: r => r.reqPerSec, better: 'higher' },
  { id: 'p99', label: 'REST publish: latency p99 (ms)', path: r => r.p99, better: 'lower' },
  { id: 'cpuUsPerReq', label: 'REST publish: server CPU µs per request', path: r => r.cpuUsPerReq, better: 'lower' }
]

export function median (values) {
  const v = values.filter(x => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const mid = v.length >> 1
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

const round = (v, d = 3) => v === null ? null : Number(v.toPrecision(d + 1 > 6 ? 6 : Math.max(d, 3)))

/**
 * {n: {server: {metric: median}}} and, for each baseline, the ratios of every other server
 * against it in the same run: ratios[baseline][n][server][metric].
 */
export function summarise (runs, servers, ns, baselines = ['raw']) {
  const medians = {}
  for (const n of ns) {
    medians[n] = {}
    for (const s of servers) {
      medians[n][s] = {}
      const mine = runs.filter(r => r.server === s && r.n === n)
      for (const m of METRICS) {
        const v = median(mine.map(m.path))
        if (v !== null) medians[n][s][m.id] = round(v, 4)
      }
    }
  }
  const ratios = {}
  for (const baseline of baselines) {
    ratios[baseline] = {}
    for (const n of ns) {
      ratios[baseline][n] = {}
      for (const s of servers) {
        if (s === baseline) continue
        ratios[baseline][n][s] = {}
        for (const m of METRICS) {
          if (m.better === 'info') continue
          const a = medians[n][s][m.id]
          const b = medians[n][baseline]?.[m.id]
          if (a !== undefined && b !== undefined && b !== 0) ratios[baseline][n][s][m.id] = round(a / b, 3)
        }
      }
    }
  }
  return { medians, ratios }
}

/** The ratio columns: each server against each baseline, except a baseline against an earlier one's inverse. */
export function ratioColumns (servers, baselines) {
  const cols = []
  baselines.forEach((b, i) => {
    for (const s of servers) if (s !== b && !baselines.slice(0, i).includes(s)) cols.push({ server: s, baseline: b })
  })
  return cols
}

export function summariseRest (rest) {
  const out = {}
  for (const s of [...new Set(rest.map(r => r.server))]) {
    out[s] = {}
    for (const m of REST_METRICS) {
      const v = median(rest.filter(r => r.server === s && r.correct).map(m.path))
      if (v !== null) out[s][m.id] = round(v, 4)
    }
  }
  const ratio = {}
  if (out.ours && out['bare-fastify']) {
    for (const m of REST_METRICS) {
      if (out.ours[m.id] !== undefined && out['bare-fastify'][m.id]) ratio[m.id] = round(out.ours[m.id] / out['bare-fastify'][m.id], 3)
    }
  }
  // With --previous: ours against the previous build, same run.
  const vsPrev = {}
  if (out.ours && out['ours-prev']) {
    for (const m of REST_METRICS) {
      if (out.ours[m.id] !== undefined && out['ours-prev'][m.id]) vsPrev[m.id] = round(out.ours[m.id] / out['ours-prev'][m.id], 3)
    }
  }
  return { medians: out, oursVsBareFastify: ratio, ...(out['ours-prev'] ? { oursVsPrevious: vsPrev } : {}) }
}

/** Largest N whose median p99 at 10/s is under 250 ms with every notification delivered. */
export function capacity (runs, servers, ns) {
  const out = {}
  for (const s of servers) {
    let best = null
    for (const n of [...ns].sort((a, b) => a - b)) {
      const mine = runs.filter(r => r.server === s && r.n === n && r.rate10)
      if (mine.length === 0) continue
      const p99 = median(mine.map(r => r.rate10.p99))
      const complete = mine.every(r => r.rate10.complete)
      if (p99 !== null && p99 < 250 && complete) best = n
      else break
    }
    out[s] = best
  }
  return out
}

export function fmt (v) {
  if (v === null || v === undefined) return '–'
  const a = Math.abs(v)
  if (a >= 1000) return Math.round(v).toLocaleString('en-US')
  if (a >= 100) return v.toFixed(0)
  if (a >= 10) return v.toFixed(1)
  return v.toFixed(2)
}

const ratioFmt = (v) => v === undefined || v === null ? '–' : `${v.toFixed(2)}×`

/** Rows of [N, metric, ...server medians, ...ratios against each baseline]. */
export function tableRows (summary, servers, ns, rest, baselines = ['raw']) {
  const cols = ratioColumns(servers, baselines)
  const head = ['N', 'metric', ...servers, ...cols.map(c => `${c.server}/${c.baseline}`)]
  const rows = []
  for (const n of ns) {
    for (const m of METRICS) {
      const vals = servers.map(s => summary.medians[n]?.[s]?.[m.id])
      if (vals.every(v => v === undefined)) continue
      rows.push([String(n), m.label, ...vals.map(fmt), ...cols.map(c => m.better === 'info' ? '' : ratioFmt(summary.ratios[c.baseline]?.[n]?.[c.server]?.[m.id]))])
    }
  }
  const restRows = []
  if (rest && Object.keys(rest.medians).length > 0) {
    for (const m of REST_METRICS) {
      const prev = rest.oursVsPrevious ? [fmt(rest.medians['ours-prev']?.[m.id]), ratioFmt(rest.oursVsPrevious[m.id])] : []
      restRows.push([m.label, fmt(rest.medians.ours?.[m.id]), fmt(rest.medians['bare-fastify']?.[m.id]), ratioFmt(rest.oursVsBareFastify[m.id]), ...prev])
    }
  }
  const restHead = ['metric', 'ours', 'bare-fastify', 'ours/bare', ...(rest?.oursVsPrevious ? ['ours-prev', 'ours/ours-prev'] : [])]
  return { head, rows, restHead, restRows }
}

export function textTable (head, rows) {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map(r => r[i].length)))
  const line = (cells) => cells.map((c, i) => i < 2 && head[0] === 'N' ? c.padEnd(widths[i]) : (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
  return [line(head), widths.map(w => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

/** `left`: the columns aligned left (text); the others are figures, aligned right. */
export function markdownTable (head, rows, left = [0, 1]) {
  const esc = (c) => c.replace(/\|/g, '\\|')
  return [`| ${head.map(esc).join(' | ')} |`, `|${head.map((_, i) => left.includes(i) ? '---' : '---:').join('|')}|`, ...rows.map(r => `| ${r.map(esc).join(' | ')} |`)].join('\n')
}

const COLORS = { raw: '#6b7280', 'raw-batch': '#111827', ours: '#2563eb', sio: '#dc2626', 'fastify-ws': '#16a34a', 'ours-sio': '#7c3aed' }
const esc = (t) => String(t).replace(/&/g, '&amp;').replace(/</g, '&lt;')

/**
 * Three panels against N, one line per server: burst delivered /s; server CPU µs per
 * delivery (burst solid, targeted dashed; log scale); p99 at 10 /s (log scale).
 * Plain SVG, no external service. `labels`: server → legend text.
 */
export function chartSvg (summary, servers, ns, title, labels = {}) {
  const W = 1020
  const H = 420
  const pw = 260
  const top = 64
  const ph = 240
  const panels = [
    { series: [{ metric: 'burstPerSec' }], label: 'burst: delivered notifications /s', x0: 70 },
    { series: [{ metric: 'burstCpuUs' }, { metric: 'targetedCpuUs', dash: '6 4' }], label: 'server CPU µs per delivery (log)', x0: 405, log: true },
    { series: [{ metric: 'rate10p99' }], label: 'p99 latency at 10 /s, ms (log)', x0: 740, log: true, threshold: 250 }
  ]
  const sorted = [...ns].sort((a, b) => a - b)
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`]
  for (const p of panels) {
    const lines = []
    for (const s of servers) {
      for (const ser of p.series) {
        const v = sorted.map(n => [n, summary.medians[n]?.[s]?.[ser.metric]]).filter(([, y]) => typeof y === 'number' && y > 0)
        if (v.length > 0) lines.push({ s, dash: ser.dash, v })
      }
    }
    const all = lines.flatMap(l => l.v.map(([, y]) => y))
    if (p.threshold !== undefined) all.push(p.threshold)
    const scale = p.log ? logScale(all) : linearScale(all)
    const X = (n) => p.x0 + (sorted.length === 1 ? pw / 2 : 12 + (sorted.indexOf(n) / (sorted.length - 1)) * (pw - 24))
    const Y = (v) => top + ph - scale.at(v) * ph
    out.push(`<text x="${p.x0 + pw / 2}" y="${top - 16}" text-anchor="middle" font-weight="bold">${esc(p.label)}</text>`)
    for (const v of scale.ticks) {
      out.push(`<line x1="${p.x0 - 3}" y1="${Y(v).toFixed(1)}" x2="${p.x0 + pw}" y2="${Y(v).toFixed(1)}" stroke="#e5e7eb"/><text x="${p.x0 - 6}" y="${(Y(v) + 4).toFixed(1)}" text-anchor="end">${fmtAxis(v)}</text>`)
    }
    out.push(`<line x1="${p.x0}" y1="${top + ph}" x2="${p.x0 + pw}" y2="${top + ph}" stroke="#111"/><line x1="${p.x0}" y1="${top}" x2="${p.x0}" y2="${top + ph}" stroke="#111"/>`)
    for (const n of sorted) out.push(`<text x="${X(n)}" y="${top + ph + 16}" text-anchor="middle">${n.toLocaleString('en-US')}</text>`)
    out.push(`<text x="${p.x0 + pw / 2}" y="${top + ph + 33}" text-anchor="middle">connections (N)</text>`)
    if (p.threshold !== undefined) {
      out.push(`<line x1="${p.x0}" y1="${Y(p.threshold).toFixed(1)}" x2="${p.x0 + pw}" y2="${Y(p.threshold).toFixed(1)}" stroke="#f59e0b" stroke-dasharray="4 3"/><text x="${p.x0 + pw - 4}" y="${(Y(p.threshold) + 14).toFixed(1)}" text-anchor="end" fill="#b45309">${p.threshold} ms (capacity)</text>`)
    }
    for (const { s, dash, v } of lines) {
      const c = COLORS[s] ?? '#9333ea'
      if (v.length > 1) out.push(`<polyline fill="none" stroke="${c}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''} points="${v.map(([n, y]) => `${X(n).toFixed(1)},${Y(y).toFixed(1)}`).join(' ')}"/>`)
      for (const [n, y] of v) out.push(`<circle cx="${X(n).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="3.5" fill="${dash ? 'white' : c}" stroke="${c}" stroke-width="1.5"><title>${esc(s)} N=${n}: ${fmt(y)}</title></circle>`)
    }
  }
  // Legend: one entry per server, then the two line styles of the CPU panel.
  const ly = H - 44
  let x = 70
  for (const s of servers) {
    const text = labels[s] ?? s
    out.push(`<line x1="${x}" y1="${ly}" x2="${x + 22}" y2="${ly}" stroke="${COLORS[s] ?? '#9333ea'}" stroke-width="3"/><circle cx="${x + 11}" cy="${ly}" r="3.5" fill="${COLORS[s] ?? '#9333ea'}"/><text x="${x + 28}" y="${ly + 4}">${esc(text)}</text>`)
    x += 44 + text.length * 5.6
  }
  out.push(`<line x1="405" y1="${ly + 24}" x2="427" y2="${ly + 24}" stroke="#374151" stroke-width="2"/><text x="433" y="${ly + 28}">burst (broadcast)</text>`,
    `<line x1="560" y1="${ly + 24}" x2="582" y2="${ly + 24}" stroke="#374151" stroke-width="2" stroke-dasharray="6 4"/><circle cx="571" cy="${ly + 24}" r="3.5" fill="white" stroke="#374151" stroke-width="1.5"/><text x="588" y="${ly + 28}">targeted (one per user)</text>`)
  out.push('</svg>')
  return out.join('\n') + '\n'
}

/** 0 .. a round maximum, five ticks. */
function linearScale (values) {
  const max = Math.max(1, ...values) * 1.1
  const step = niceStep(max / 4)
  const top = Math.ceil(max / step) * step
  return { at: (v) => v / top, ticks: Array.from({ length: Math.round(top / step) + 1 }, (_, k) => k * step) }
}

/** Whole decades around the values, ticks at 1, 2 and 5 of each. */
function logScale (values) {
  const lo = Math.floor(Math.log10(Math.min(...values)))
  const hi = Math.ceil(Math.log10(Math.max(...values) * 1.05))
  const span = Math.max(1, hi - lo)
  const ticks = []
  for (let d = lo; d <= lo + span; d++) for (const m of span > 2 ? [1] : [1, 2, 5]) if (d + Math.log10(m) <= lo + span) ticks.push(m * 10 ** d)
  return { at: (v) => (Math.log10(v) - lo) / span, ticks }
}

function niceStep (raw) {
  const p = 10 ** Math.floor(Math.log10(raw))
  return [1, 2, 2.5, 5, 10].map(m => m * p).find(s => s >= raw)
}

function fmtAxis (v) {
  if (v >= 1e6) return +(v / 1e6).toFixed(1) + 'M'
  if (v >= 1e3) return +(v / 1e3).toFixed(1) + 'k'
  return v >= 10 ? v.toFixed(0) : String(+v.toPrecision(2))
}
