// Standalone server instances as child processes (server/main.ts with this run's
// loader flags), and a redis-server of a test's own. Not a .test.ts file.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Test } from 'tap'
import { API_KEY, SECRET } from './helper.js'

const ROOT = resolve(import.meta.dirname, '..')
/**
 * How long a spawned server may take to say it listens. Its readiness is that
 * log line; this bound only ends a wait for a process that hangs. A start costs
 * about 12 s of CPU (transpiling server/main.ts and its imports): on a 2-core
 * machine busy with other work that was 53-61 s of wall time, a minute at times.
 */
export const START_MS = 180_000

export interface Instance {
  child: ChildProcess
  port: number
  http: string
  ws: string
  /** Its id, as /api/notifications/stats reports it. */
  id: string
  /** Resolves with the exit code or signal. */
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

export async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

function waitFor (stream: NodeJS.ReadableStream, pattern: RegExp, what: string, exited: Promise<unknown>): Promise<RegExpExecArray> {
  let out = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not happen within ${START_MS} ms: ${out.slice(-500)}`)), START_MS)
    stream.on('data', (d: Buffer) => {
      out += d.toString()
      const m = pattern.exec(out)
      if (m) { clearTimeout(timer); resolve(m) }
      // Only the tail is needed to match; a long-running child logs a lot.
      if (out.length > 100_000) out = out.slice(-10_000)
    })
    void exited.then(() => { clearTimeout(timer); reject(new Error(`${what}: the process exited: ${out.slice(-500)}`)) })
  })
}

/** The port a spawned server/main.ts listens on, once it logs it; rejects if the process exits first, with its stderr. */
export async function listeningPort (child: ChildProcess, exited: Promise<unknown>): Promise<number> {
  let err = ''
  const keep = (d: Buffer) => { err = (err + d.toString()).slice(-2000) }
  child.stderr!.on('data', keep)
  try {
    const m = await waitFor(child.stdout!, /Server listening at http:\/\/127\.0\.0\.1:(\d+)/, 'the server listening', exited)
    return Number(m[1])
  } catch (e) {
    throw new Error(`${(e as Error).message}\nstderr: ${err}`)
  } finally {
    child.stderr!.off('data', keep)
  }
}

/** Starts one standalone server on the given Redis; killed (SIGKILL) in teardown if still running. */
export async function startInstance (t: Test, env: Record<string, string>): Promise<Instance> {
  const child = spawn(process.execPath, [...process.execArgv, 'server/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env, PORT: '0', HOST: '127.0.0.1', NOTIFY_JWT_SECRET: SECRET, NOTIFY_API_KEYS: API_KEY, LOG_LEVEL: 'info', ...env
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
  })
  child.stderr!.resume()
  const port = await listeningPort(child, exited)
  const http = `http://127.0.0.1:${port}`
  const stats = await fetch(`${http}/api/notifications/stats`, { headers: { authorization: `Bearer ${API_KEY}` } }).then(r => r.json()) as { instance: string }
  return { child, port, http, ws: `ws://127.0.0.1:${port}/ws`, id: stats.instance, exited }
}

export interface OwnRedis {
  port: number
  url: string
  /** Stops it (SHUTDOWN: the append-only file is written first). */
  stop (): Promise<void>
  /** Starts it again on the same port and data directory. */
  start (): Promise<void>
}

/** A redis-server of this test's own, on a free port, with an fsync-always append-only file. */
export async function ownRedis (t: Test): Promise<OwnRedis> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'un-redis-'))
  let child: ChildProcess | undefined
  const start = async () => {
    const c = spawn('/usr/bin/redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    child = c
    const exited = new Promise(resolve => c.once('exit', resolve))
    await waitFor(c.stdout!, /Ready to accept connections/, 'redis-server ready', exited)
    c.stdout!.resume()
  }
  const stop = async () => {
    const c = child
    if (!c || c.exitCode !== null) return
    const exited = new Promise(resolve => c.once('exit', resolve))
    c.kill('SIGTERM')
    await exited
  }
  t.teardown(async () => {
    await stop()
    rmSync(dir, { recursive: true, force: true })
  })
  await start()
  return { port, url: `redis://127.0.0.1:${port}`, stop, start }
}
