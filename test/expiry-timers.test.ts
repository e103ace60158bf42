// The shared expiry timers: one clock timer for every deadline, exact to the ms, re-armed past setTimeout's ceiling.
import t from 'tap'
import { HandClock } from './hand-clock.js'
import { ExpiryTimers, expiryTimersOf } from '../src/expiry-timers.js'

function recorder (clock: HandClock, log: Array<[string, number]>, name: string) {
  return { onExpiry: () => { log.push([name, clock.now()]) } }
}

t.test('many deadlines on one clock timer, each told at its own ms, in order', async t => {
  const clock = new HandClock()
  const timers = new ExpiryTimers(clock)
  const log: Array<[string, number]> = []
  timers.add(recorder(clock, log, 'c'), 3000)
  timers.add(recorder(clock, log, 'a'), 1000)
  timers.add(recorder(clock, log, 'a2'), 1000)
  timers.add(recorder(clock, log, 'b'), 2000)
  t.equal(clock.timers, 1, 'one clock timer')
  t.equal(timers.size, 4)
  clock.advance(999)
  t.same(log, [], 'not a ms early')
  clock.advance(1)
  t.same(log, [['a', 1000], ['a2', 1000]], 'both of one deadline')
  clock.advance(5000)
  t.same(log.map(([name, at]) => `${name}@${at}`), ['a@1000', 'a2@1000', 'b@2000', 'c@3000'])
  t.equal(clock.timers, 0, 'nothing left armed')
  t.equal(timers.size, 0)
})

t.test('a deleted entry is not told; its deadline, once empty, is skipped', async t => {
  const clock = new HandClock()
  const timers = new ExpiryTimers(clock)
  const log: Array<[string, number]> = []
  const gone = recorder(clock, log, 'gone')
  const kept = recorder(clock, log, 'kept')
  timers.add(gone, 1000)
  timers.add(kept, 1000)
  timers.add(gone, 1500)
  timers.delete(gone, 1000)
  timers.delete(gone, 1500)
  timers.add(gone, 1500)
  timers.delete(gone, 1500)
  clock.advance(2000)
  t.same(log, [['kept', 1000]])
  t.equal(timers.size, 0)
  t.equal(clock.timers, 0)
})

t.test('a deadline beyond setTimeout\'s ceiling re-arms instead of firing early', async t => {
  const clock = new HandClock()
  const timers = new ExpiryTimers(clock)
  const log: Array<[string, number]> = []
  const far = 2 ** 31 + 5000
  timers.add(recorder(clock, log, 'far'), far)
  clock.advance(2 ** 31 - 1)
  t.same(log, [], 'still waiting after the first timer')
  t.equal(clock.timers, 1, 're-armed')
  clock.advance(far)
  t.same(log, [['far', far]])
})

t.test('an earlier deadline added later moves the timer forward', async t => {
  const clock = new HandClock()
  const timers = new ExpiryTimers(clock)
  const log: Array<[string, number]> = []
  timers.add(recorder(clock, log, 'late'), 5000)
  timers.add(recorder(clock, log, 'early'), 100)
  t.equal(clock.timers, 1)
  clock.advance(100)
  t.same(log, [['early', 100]])
  t.equal(clock.timers, 1, 'armed for the next one')
})

t.test('expiryTimersOf gives one instance per clock', async t => {
  const a = new HandClock()
  const b = new HandClock()
  t.equal(expiryTimersOf(a), expiryTimersOf(a))
  t.not(expiryTimersOf(a), expiryTimersOf(b))
})
