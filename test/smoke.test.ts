import t from 'tap'
import { build, connect, publish } from './helper.js'

t.test('a published notification reaches its user over a real socket', async t => {
  const h = await build(t)
  const c = await connect(h.ws, { token: await h.token('alice') })
  const connected = await c.next()
  t.equal(connected.type, 'connected')
  const sent = await publish(h, { category: 'dashboard', title: 'hello', audience: { users: ['alice'] } })
  const frame = await c.nextOf('notification')
  t.equal(frame.notification.id, sent.id)
  t.notOk('audience' in frame.notification)
  c.close()
})
