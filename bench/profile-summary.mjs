#!/usr/bin/env node
// node bench/profile-summary.mjs <file.cpuprofile> [--top=40] [--filter=<substring>] [--from=<function>] [--until=<function>]
// Prints where a V8 CPU profile (node --cpu-prof, or npm run bench -- --profile=<dir>)
// spent its time: functions and files by self time, and functions by inclusive time, as % of the samples.
// --from=<function> counts only the samples from the first one with that function on its stack
// (e.g. --from=publishMany: the publishing phase of a run, without the connects before it);
// --until=<function> stops at the first later sample with that function on its stack (e.g. closeAll).
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '40' }, filter: { type: 'string' }, from: { type: 'string' }, until: { type: 'string' } } })
if (positionals.length !== 1) {
  console.error('usage: node bench/profile-summary.mjs <file.cpuprofile> [--top=40] [--filter=<substring>]')
  process.exit(2)
}
const profile = JSON.parse(readFileSync(positionals[0], 'utf8'))
const top = Number(values.top)

// Self time per node: V8 records the node of each sample and the time delta before it.
const byId = new Map(profile.nodes.map(n => [n.id, n]))
const parent = new Map()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const onStack = (id, name) => {
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) if (byId.get(cur).callFrame.functionName === name) return true
  return false
}
let first = 0
if (values.from) {
  first = profile.samples.findIndex(id => onStack(id, values.from))
  if (first < 0) { console.error(`no sample has ${values.from} on its stack`); process.exit(1) }
}
let end = profile.samples.length
if (values.until) {
  const k = profile.samples.findIndex((id, i) => i > first && onStack(id, values.until))
  if (k > 0) end = k
}
const self = new Map()
for (let i = first; i < end; i++) {
  const id = profile.samples[i]
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
}
const total = [...self.values()].reduce((a, b) => a + b, 0)

const shortUrl = (url) => url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, '~/').replace(process.cwd() + '/', '')
const where = (cf) => `${cf.functionName || '(anonymous)'} ${shortUrl(cf.url)}:${cf.lineNumber + 1}`
const fileOf = (cf) => {
  if (!cf.url) return `(${cf.functionName || 'native'})`
  const u = shortUrl(cf.url)
  const pkg = u.match(/^~\/((?:@[^/]+\/)?[^/]+)/)
  return pkg ? `~/${pkg[1]}` : u
}

const fns = new Map()
const files = new Map()
for (const [id, t] of self) {
  const cf = byId.get(id).callFrame
  const k = where(cf)
  if (values.filter && !k.includes(values.filter)) continue
  fns.set(k, (fns.get(k) ?? 0) + t)
  const f = fileOf(cf)
  files.set(f, (files.get(f) ?? 0) + t)
}
// Inclusive time: each sampled stack counts once for every distinct function on it.
const incl = new Map()
for (const [id, t] of self) {
  const seen = new Set()
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const k = where(byId.get(cur).callFrame)
    if (seen.has(k)) continue
    seen.add(k)
    if (values.filter && !k.includes(values.filter)) continue
    incl.set(k, (incl.get(k) ?? 0) + t)
  }
}
const pct = (t) => (t / total * 100).toFixed(1).padStart(5) + '%'
const print = (title, m) => {
  console.log(`\n${title}`)
  for (const [k, t] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(t)}  ${k}`)
}
console.log(`${positionals[0]}: ${(total / 1e6).toFixed(2)} s sampled`)
print('self time by function', fns)
print('self time by file or package', files)
print('inclusive time by function (callees included)', incl)
