// Two instances on one Redis with Socket.IO clients on the websocket transport
// (no sticky sessions needed): a publish on one reaches Socket.IO and /ws
// clients on both, same id and seq, and a Socket.IO client resumes on the other.
import t from 'tap'
import { connect, publish } from './helper.js'
import { REDIS_URL, redisPrefixes } from './redis-helper.js'
import { buildSio, sio } from './socketio-helper.js'

const { prefix } = redisPrefixes(t)

t.test('two instances on Redis: Socket.IO clients on each get every notification; resume with auth.since on the other instance', async t => {
  const redisPrefix = prefix()
  const one = await buildSio(t, { store: REDIS_URL, redisPrefix })
  const two = await buildSio(t, { store: REDIS_URL, redisPrefix })
  const token = await one.token('ann')
  const onOne = await sio(one, { auth: { token }, transports: ['websocket'] })
  const onTwo = await sio(two, { auth: { token }, transports: ['websocket'] })
  const wsOnTwo = await connect(two.ws, { token })
  t.teardown(() => { onOne.close(); onTwo.close(); wsOnTwo.close() })
  const { lastSeq, epoch } = await onOne.next('connected')
  await onTwo.next('connected')
  await wsOnTwo.next()

  const sent = await publish(one, { category: 'dashboard', title: 'across' })
  const [a, b, c] = await Promise.all([onOne.next('notification', 10_000), onTwo.next('notification', 10_000), wsOnTwo.nextOf('notification', 10_000)])
  for (const got of [a, b, c]) {
    t.equal(got.notification.id, sent.id)
    t.equal(got.notification.seq, sent.seq)
  }
  t.same(await onTwo.ask('mark_read', { ids: [sent.id] }), { unread: 0 }, 'read on instance two')
  t.equal((await onOne.ask('request_notification_history', { limit: 1 })).notifications[0].read, true, 'seen as read on instance one')

  // Away from instance one, back on instance two with the cursor: exactly what was missed.
  onOne.close()
  const missed = [await publish(two, { category: 'system', title: 'm1' }), await publish(one, { category: 'dashboard', title: 'm2' })]
  const back = await sio(two, { auth: { token, since: lastSeq, epoch }, transports: ['websocket'] })
  t.teardown(() => back.close())
  await back.next('connected')
  const seqs = [(await back.next('notification', 10_000)).notification.seq, (await back.next('notification', 10_000)).notification.seq, (await back.next('notification', 10_000)).notification.seq]
  t.same(seqs, [sent.seq, missed[0]!.seq, missed[1]!.seq], 'replayed in order from the shared history')
  const replayed = await back.next('replayed', 10_000)
  t.same(replayed, { type: 'replayed', count: 3, complete: true })
})
