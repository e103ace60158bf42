// Process plumbing: free ports, CPU pinning, fd limits, /proc readings, and
// spawning servers so that every one of them is measured the same way.
import { execFileSync, spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import { fileURLToPath } from 'node:url'

export const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))
export const now = () => performance.timeOrigin + performance.now()

export function which (cmd) {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || null
  } catch {
    return null
  }
}

const CLK_TCK = (() => {
  try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100 } catch { return 100 }
})()

/**
 * CPU time of a process (all its threads), in ms: the sum of /proc/<pid>/task/<tid>/schedstat
 * (nanoseconds on CPU), else utime + stime from /proc/<pid>/stat (10 ms ticks).
 */
export function cpuMs (pid) {
  try {
    let ns = 0
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0])
    }
    if (Number.isFinite(ns) && ns > 0) return ns / 1e6
  } catch {}
  return statCpuMs(pid)
}

/** utime + stime of a process, in ms (from /proc/<pid>/stat; tick resolution, usually 10 ms). */
export function statCpuMs (pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 1000 / CLK_TCK
}

/** VmRSS of a process in bytes (from /proc/<pid>/status). */
export function rssBytes (pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : null
}

export function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/** The hard fd limit, as the shell reports it (Node cannot raise its own limit). */
export function hardFdLimit () {
  try {
    const v = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim()
    return v === 'unlimited' ? 1_048_576 : Number(v)
  } catch {
    return 1024
  }
}

/**
 * CPU placement: with taskset and at least 2 cores, servers get core 0 and the
 * harness and load client (this process and its forks) the others.
 */
export function planPinning () {
  const cores = os.availableParallelism?.() ?? os.cpus().length
  const taskset = which('taskset')
  if (!taskset) return { enabled: false, cores, reason: 'taskset not found: server and load client share all cores' }
  if (cores < 2) return { enabled: false, cores, reason: 'one core: no pinning possible' }
  const clientCores = cores === 2 ? '1' : `1-${cores - 1}`
  try {
    // -a: every thread of this process (libuv pool, V8 helpers); forks inherit it.
    execFileSync(taskset, ['-a', '-pc', clientCores, String(process.pid)], { stdio: 'ignore' })
  } catch (err) {
    return { enabled: false, cores, reason: `taskset failed: ${err.message}` }
  }
  return { enabled: true, cores, serverCores: '0', clientCores, taskset }
}

export const children = new Set()

/**
 * Starts a Node server script through `sh -c 'ulimit -n …; exec [taskset -c 0] node …'`, so
 * the pid is the server's own. Has an IPC channel (for bench/servers/probe.mjs).
 */
export function spawnServer ({ script, args = [], env, fdLimit, pinning, cwd, nodeFlags = [] }) {
  const probe = fileURLToPath(new URL('../servers/probe.mjs', import.meta.url))
  const argv = [
    ...(pinning.enabled ? [pinning.taskset, '-c', pinning.serverCores] : []),
    process.execPath, '--expose-gc', ...nodeFlags, '--import', probe, script, ...args
  ]
  const child = spawnWithFdLimit(argv, fdLimit, { env: { ...process.env, ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
  let tail = ''
  const keep = (d) => { tail = (tail + d.toString()).slice(-4000) }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  child.output = () => tail
  let nextId = 0
  const pending = new Map()
  child.on('message', (m) => {
    if (m?.probe === 'mem' && pending.has(m.id)) { pending.get(m.id)(m); pending.delete(m.id) }
  })
  /** Heap and RSS after two full GCs, from inside the server (probe.mjs). */
  child.memAfterGc = () => new Promise((resolve) => {
    const id = ++nextId
    const timer = setTimeout(() => { pending.delete(id); resolve(null) }, 10_000)
    pending.set(id, (m) => { clearTimeout(timer); resolve(m) })
    try { child.send({ probe: 'mem', id }) } catch { clearTimeout(timer); resolve(null) }
  })
  return child
}

/** Spawns argv through `sh -c 'ulimit -n <fdLimit>; exec …'`: the pid stays the program's own. */
export function spawnWithFdLimit (argv, fdLimit, options) {
  const child = spawn('/bin/sh', ['-c', 'ulimit -n "$1" 2>/dev/null || true; shift; exec "$@"', 'sh', String(fdLimit), ...argv], options)
  children.add(child)
  child.on('exit', () => children.delete(child))
  return child
}

/**
 * The load client (bench/load-client.mjs) in its own process, with `fdLimit`
 * descriptors; `child.call(cmd, args)` sends it one command over IPC and
 * resolves with its answer (rejects with its error, or when it exits).
 */
export function startLoadClient (fdLimit) {
  const child = spawnWithFdLimit([process.execPath, '--max-old-space-size=4096', fileURLToPath(new URL('../load-client.mjs', import.meta.url))], fdLimit, {
    cwd: fileURLToPath(new URL('../..', import.meta.url)), stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  let nextId = 0
  const pending = new Map()
  child.on('message', (m) => {
    const p = pending.get(m.id)
    if (!p) return
    pending.delete(m.id)
    if (m.error) p.reject(new Error(`load client: ${m.error}`))
    else p.resolve(m.result)
  })
  child.on('exit', (code) => {
    for (const p of pending.values()) p.reject(new Error(`load client exited (${code})`))
    pending.clear()
  })
  child.call = (cmd, a = {}) => new Promise((resolve, reject) => {
    const id = ++nextId
    pending.set(id, { resolve, reject })
    child.send({ id, cmd, args: a })
  })
  return child
}

export async function waitHealthy (port, child, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${child.output()}`)
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health`)
      if (res.ok) return
    } catch {}
    await sleep(100)
  }
  throw new Error(`server on port ${port} not healthy after ${timeoutMs} ms:\n${child.output()}`)
}

export async function stopProcess (child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise(resolve => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = sleep(graceMs).then(() => 'timeout')
  if (await Promise.race([exited, timer]) === 'timeout') {
    child.kill('SIGKILL')
    await exited
  }
}

export function killAll () {
  for (const child of children) {
    try { child.kill('SIGKILL') } catch {}
  }
}
