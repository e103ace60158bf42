// ioredis is loaded only when Redis is asked for: a library user who imports the
// package and uses memory or SQLite never loads it.
import { execFile } from 'node:child_process'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { START_MS } from './instances.js'

const ROOT = resolve(import.meta.dirname, '..')
const run = promisify(execFile)
// Each snippet's process transpiles the package's entry point first: two of them, one after the other, on a loaded machine.
t.setTimeout(2 * START_MS + 60_000)

/** Runs a snippet in a fresh process with this run's loader flags; it prints whether ioredis is in the module cache. */
async function loadsIoredis (body: string): Promise<boolean> {
  const code = `
    import { createRequire } from 'node:module'
    ${body}
    const cache = createRequire(import.meta.url).cache
    console.log(Object.keys(cache).some(k => k.includes('/node_modules/ioredis/')) ? 'loaded' : 'not loaded')
  `
  const { stdout } = await run(process.execPath, [...process.execArgv, '--input-type=module', '-e', code], { cwd: ROOT, timeout: START_MS })
  return stdout.trim().endsWith('loaded') && !stdout.trim().endsWith('not loaded')
}

t.test('importing the package and building a memory store does not load ioredis; a redis:// store does', async t => {
  const entry = JSON.stringify(resolve(ROOT, 'index.ts'))
  const stores = JSON.stringify(resolve(ROOT, 'src/stores/index.ts'))
  t.equal(await loadsIoredis(`
    await import(${entry})
    const { createStore } = await import(${stores})
    await (await createStore('memory')).init()
  `), false, 'memory: not loaded')
  t.equal(await loadsIoredis(`
    const { createStore } = await import(${stores})
    const store = await createStore('redis://127.0.0.1:6379', { redisPrefix: 'untest-lazy-' + process.pid + ':' })
    await store.init()
    await store.fanout.client.unlink(store.keyPrefix + 'meta')
    await store.close()
  `), true, 'redis: loaded')
})
