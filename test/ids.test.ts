import t from 'tap'
import { uuidv7 } from '../src/ids.js'

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

t.test('uuidv7: RFC 9562 layout (version 7, variant 10xx), the time in its first 48 bits', async t => {
  const at = Date.UTC(2026, 10, 26, 4, 0, 0, 123)
  const id = uuidv7(at)
  t.match(id, V7)
  t.equal(parseInt(id.slice(0, 8) + id.slice(9, 13), 16), at, 'the first 12 hex digits are the ms timestamp')
  const now = uuidv7()
  t.ok(Math.abs(parseInt(now.slice(0, 8) + now.slice(9, 13), 16) - Date.now()) < 1000, 'defaults to now')
})

t.test('uuidv7: ids of later milliseconds sort after earlier ones; ids are unique', async t => {
  const ids = Array.from({ length: 2000 }, (_, i) => uuidv7(1_700_000_000_000 + Math.floor(i / 10)))
  const time = (id: string) => parseInt(id.slice(0, 8) + id.slice(9, 13), 16)
  t.same([...ids].sort().map(time), ids.map(time), 'sorted as strings, they are in time order')
  t.equal(new Set(ids).size, ids.length, 'no two alike')
  t.same(ids.filter(id => !V7.test(id)), [], 'all in the v7 layout')
})
