// A connecting client's upgrade response, `connected`, its replay and `replayed`
// leave the server in one write (plugins/websocket-route.ts corks the upgrade
// socket; the session releases it once that run is written). Counted here as
// the writes the server's TCP socket hands to the kernel.
import type { Socket } from 'node:net'
import t, { type Test } from 'tap'
import { build, connect, type Harness } from './helper.js'

/** Counts, per upgraded server socket, the writes that reach the kernel (_write, or _writev for a corked batch). */
function countWrites (h: Harness): number[] {
  const counts: number[] = []
  h.app.server.prependListener('upgrade', (_req, socket: Socket) => {
    const k = counts.push(0) - 1
    const s = socket as unknown as { _write: (...a: unknown[]) => void, _writev: (...a: unknown[]) => void }
    const write = s._write
    const writev = s._writev
    s._write = function (...a) { counts[k]!++; return write.apply(this, a) }
    s._writev = function (...a) { counts[k]!++; return writev.apply(this, a) }
  })
  return counts
}

async function setup (t: Test) {
  const h = await build(t, { store: 'sqlite::memory:' })
  return { h, writes: countWrites(h) }
}

t.test('a resume: the upgrade response, connected, the replay and replayed leave in one write', async t => {
  const { h, writes } = await setup(t)
  for (let i = 0; i < 3; i++) await h.app.notifications.publish({ category: 'system', title: `n${i}` })
  const c = await connect(h.ws, { token: await h.token('alice'), query: { since: '0' } })
  t.same((await c.nextOf('replayed')).count, 3)
  t.same(writes, [1])
  c.close()
})

t.test('a plain connect: the upgrade response and connected leave in one write', async t => {
  const { h, writes } = await setup(t)
  const c = await connect(h.ws, { token: await h.token('alice') })
  t.equal((await c.next()).type, 'connected')
  t.same(writes, [1])
  c.close()
})
