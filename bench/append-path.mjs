#!/usr/bin/env node
// node bench/append-path.mjs [--previous=<dir>] [--mode=store|manager] [--rounds=16]
// In-process A/B of the targeted append path of two builds (<dir>/dist against this checkout's dist/),
// run in one process in alternating rounds, so both see the same machine load. CPU µs per notification,
// medians of the rounds; 50 one-user notifications per call, as the targeted scenario's REST batches.
//   store    SqliteStore.appendMany plus the manager's serialisation of each draft (the data's JSON for its size check)
//   manager  NotificationManager.publishMany of validated inputs through SQLite and the in-process broker to 5,000
//            fake connections: everything of a targeted publish but HTTP and the sockets
import { rmSync } from 'node:fs'
import { subscribe } from 'node:diagnostics_channel'
import { dirname, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { values } = parseArgs({ options: { previous: { type: 'string', default: '/work/base' }, mode: { type: 'string', default: 'store' }, rounds: { type: 'string', default: '16' } } })
const builds = [resolve(values.previous, 'dist'), resolve(ROOT, 'dist')]
const USERS = 5000
const BATCH = 50
const PAD = 'x'.repeat(170)
const { pino } = await import('pino')
// The metrics plugin listens to these in the server: with a subscriber, the manager builds the events.
for (const name of ['published', 'delivered']) subscribe(`unified-notifications:${name}`, () => {})

async function side (dist, i) {
  const load = (file) => import(pathToFileURL(resolve(dist, file)).href)
  const { SqliteStore } = await load('src/stores/sqlite-store.js')
  const path = resolve(ROOT, `data/append-path-${process.pid}-${i}.db`)
  const store = new SqliteStore(path)
  let k = 0
  let measured = 0
  if (values.mode === 'store') {
    await store.init()
    const { uuidv7 } = await load('src/ids.js')
    const json = await load('src/notification-json.js').catch(() => undefined)
    const draft = () => {
      const now = Date.now()
      const d = { id: uuidv7(now), category: 'system', type: 'info', priority: 'normal', title: 'bench', message: '', createdAt: new Date(now).toISOString(), source: 'api' }
      d.data = { t: now, pad: PAD }
      d.audience = { users: [`u${k++ % USERS}`] }
      // What #prepare does with the data in each build: its JSON for the size check (and, now, the pieces).
      if (json) json.keepPieces(d, json.dataJson(d.data))
      else measured += Buffer.byteLength(JSON.stringify(d.data))
      return d
    }
    return { dist, path, res: [], close: () => store.close(), call: () => store.appendMany(Array.from({ length: BATCH }, () => ({ draft: draft() }))) }
  }
  const { NotificationManager, markValidated } = await load('src/manager.js')
  const { LocalBroker } = await load('src/brokers/local-broker.js')
  const manager = new NotificationManager({ store, broker: new LocalBroker(), logger: pino({ level: 'info' }) })
  await manager.start()
  for (let u = 0; u < USERS; u++) {
    manager.registry.add({
      id: `c${u}`, user: { id: `u${u}`, role: 'user' }, subscriptions: new Set(['system']), legacy: false,
      deliver () {}, deliverLegacy () {}, deliverFrame () {}, applyMuted () {}, close () {}
    })
  }
  const call = async () => {
    // Parsed from JSON, as the REST route hands them over.
    const inputs = JSON.parse(JSON.stringify(Array.from({ length: BATCH }, () => ({ category: 'system', title: 'bench', data: { t: Date.now(), pad: PAD }, audience: { users: [`u${k++ % USERS}`] } }))))
    markValidated(inputs)
    await manager.publishMany(inputs, { source: 'api', requestId: 'r' })
    await new Promise(resolve => setImmediate(resolve))
  }
  return { dist, path, res: [], close: () => manager.close(), call }
}

const sides = []
for (const [i, dist] of builds.entries()) sides.push(await side(dist, i))
for (const s of sides) for (let j = 0; j < 200; j++) await s.call()
for (let r = 0; r < Number(values.rounds); r++) {
  for (const s of (r % 2 ? sides : [...sides].reverse())) {
    const t = process.cpuUsage()
    for (let j = 0; j < 40; j++) await s.call()
    const d = process.cpuUsage(t)
    s.res.push((d.user + d.system) / (40 * BATCH))
  }
}
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1]
const [before, after] = sides.map(s => median(s.res))
console.log(`${values.mode}: CPU µs per notification, previous ${before.toFixed(2)}, this ${after.toFixed(2)} (${(after / before).toFixed(2)}×)`)
for (const s of sides) {
  await s.close()
  for (const suffix of ['', '-wal', '-shm']) rmSync(s.path + suffix, { force: true })
}
