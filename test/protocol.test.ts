import t, { type Test } from 'tap'
import { FrameErrorCode } from '../src/errors.js'
import {
  CLIENT_FRAME_TYPES, PROTOCOL_VERSION, SERVER_FRAME_TYPES, connectedFrame, errorFrame, legacyFrame, notificationFrame,
  parseClientFrame, replayedFrame, replyFrame, type ParsedFrame
} from '../src/protocol.js'
import type { ClientNotification } from '../src/schemas.js'

const parse = (value: unknown): ParsedFrame => parseClientFrame(typeof value === 'string' ? value : JSON.stringify(value))

function failure (t: Test, result: ParsedFrame, code: string, id?: string) {
  if (result.ok) {
    t.fail(`expected ${code}, got a parsed frame ${JSON.stringify(result.frame)}`)
    return
  }
  t.equal(result.code, code, `code ${code}`)
  t.equal(result.id, id, `id ${String(id)}`)
  t.type(result.message, 'string')
  t.ok(result.message.length > 0, 'has a message')
}

t.test('the frame tables', async t => {
  t.same([...CLIENT_FRAME_TYPES].sort(), ['mark_read', 'ping', 'refresh', 'request_notification_history', 'set_preferences', 'subscribe_category', 'unsubscribe_category'])
  t.same([...SERVER_FRAME_TYPES].sort(), ['connected', 'error', 'legacy', 'notification', 'preferences', 'replayed', 'reply', 'unread'])
  t.equal(PROTOCOL_VERSION, 1)
})

t.test('every valid client frame parses to itself', async t => {
  const valid: Array<Record<string, unknown>> = [
    { type: 'subscribe_category', id: 'r1', categories: ['maintenance'] },
    { type: 'subscribe_category', categories: ['maintenance', 'system'] },
    { type: 'unsubscribe_category', id: 'r2', categories: ['dashboard'] },
    { type: 'request_notification_history', id: 'r3', limit: 50, before: 120, categories: ['dashboard'], unreadOnly: false },
    { type: 'request_notification_history' },
    { type: 'request_notification_history', limit: 1 },
    { type: 'request_notification_history', limit: 100 },
    { type: 'request_notification_history', categories: [] },
    { type: 'mark_read', id: 'r4', ids: ['a', 'b'] },
    { type: 'mark_read', all: true },
    { type: 'ping', id: 'r5' },
    { type: 'ping' },
    { type: 'ping', id: '' },
    { type: 'ping', id: 'x'.repeat(64) },
    { type: 'refresh', id: 'r6', token: 'a.b.c' }
  ]
  for (const frame of valid) {
    const r = parse(frame)
    t.ok(r.ok, `${JSON.stringify(frame)} parses`)
    if (r.ok) t.same(r.frame, frame)
  }
})

t.test('not JSON is bad_request', async t => {
  for (const text of ['', 'not json', '{', '{"type":"ping"', "{'type':'ping'}", 'undefined']) {
    failure(t, parseClientFrame(text), FrameErrorCode.badRequest)
  }
})

t.test('JSON that is not an object is bad_request', async t => {
  for (const text of ['[]', '[{"type":"ping"}]', '42', '-1.5', 'null', 'true', '"ping"']) {
    failure(t, parseClientFrame(text), FrameErrorCode.badRequest)
  }
})

t.test('a missing or non-string type is bad_request, with the id echoed', async t => {
  failure(t, parse({}), FrameErrorCode.badRequest)
  failure(t, parse({ id: 'r1' }), FrameErrorCode.badRequest, 'r1')
  failure(t, parse({ id: 'r1', type: 1 }), FrameErrorCode.badRequest, 'r1')
  failure(t, parse({ id: 'r1', type: null }), FrameErrorCode.badRequest, 'r1')
  failure(t, parse({ id: 'r1', type: ['ping'] }), FrameErrorCode.badRequest, 'r1')
  failure(t, parse({ id: 'r1', type: { toString: 'ping' } }), FrameErrorCode.badRequest, 'r1')
})

t.test('unknown and prototype-named types are unknown_type, never a TypeError', async t => {
  for (const type of ['nope', 'PING', 'Ping', '', '__proto__', 'toString', 'constructor', 'hasOwnProperty', 'valueOf', '__defineGetter__']) {
    let r: ParsedFrame | undefined
    t.doesNotThrow(() => { r = parse({ type, id: 'q' }) }, `type ${JSON.stringify(type)} does not throw`)
    failure(t, r!, FrameErrorCode.unknownType, 'q')
  }
  const long = parse({ type: 'x'.repeat(10_000) })
  t.ok(!long.ok && long.message.length < 200, 'a long unknown type is not echoed in full')
})

t.test('wrong field types are bad_request with the request id echoed', async t => {
  const bad: Array<Record<string, unknown>> = [
    { type: 'subscribe_category', id: 'r1', categories: 'maintenance' },
    { type: 'subscribe_category', id: 'r1', categories: [1] },
    { type: 'subscribe_category', id: 'r1', categories: [] },
    { type: 'subscribe_category', id: 'r1' },
    { type: 'subscribe_category', id: 'r1', categories: [''] },
    { type: 'subscribe_category', id: 'r1', categories: ['bad\u0001cat'] },
    { type: 'unsubscribe_category', id: 'r1', categories: null },
    { type: 'unsubscribe_category', id: 'r1', categories: [{}] },
    { type: 'request_notification_history', id: 'r1', limit: '10' },
    { type: 'request_notification_history', id: 'r1', limit: 1.5 },
    { type: 'request_notification_history', id: 'r1', before: 0 },
    { type: 'request_notification_history', id: 'r1', before: 'x' },
    { type: 'request_notification_history', id: 'r1', categories: 'dashboard' },
    { type: 'request_notification_history', id: 'r1', unreadOnly: 'yes' },
    { type: 'mark_read', id: 'r1', ids: 'abc' },
    { type: 'mark_read', id: 'r1', ids: [] },
    { type: 'mark_read', id: 'r1', ids: [1] },
    { type: 'mark_read', id: 'r1', all: false },
    { type: 'mark_read', id: 'r1', all: 'true' },
    { type: 'refresh', id: 'r1' },
    { type: 'refresh', id: 'r1', token: 42 },
    { type: 'refresh', id: 'r1', token: '' }
  ]
  for (const frame of bad) failure(t, parse(frame), FrameErrorCode.badRequest, 'r1')
})

t.test('an id that is not a valid string is bad_request and not echoed', async t => {
  failure(t, parse({ type: 'ping', id: 5 }), FrameErrorCode.badRequest)
  failure(t, parse({ type: 'ping', id: null }), FrameErrorCode.badRequest)
  failure(t, parse({ type: 'ping', id: ['r1'] }), FrameErrorCode.badRequest)
  failure(t, parse({ type: 'ping', id: 'x'.repeat(65) }), FrameErrorCode.badRequest)
  failure(t, parse({ type: 'nope', id: 'x'.repeat(65) }), FrameErrorCode.unknownType)
})

t.test('a __proto__ key is bad_request, at the top level and nested', async t => {
  const texts = [
    '{"type":"ping","__proto__":{"polluted":true}}',
    '{"__proto__":{"type":"ping"}}',
    '{"type":"request_notification_history","categories":["dashboard"],"x":{"__proto__":{"polluted":true}}}',
    '{"type":"mark_read","ids":[{"__proto__":{"a":1}}]}',
    '{"type":"subscribe_category","categories":["system"],"id":"r1","__proto__":null}',
    '{"type":"ping","constructor":{"prototype":{"polluted":true}}}'
  ]
  for (const text of texts) {
    const r = parseClientFrame(text)
    t.equal(r.ok, false, text)
    if (!r.ok) {
      t.equal(r.code, FrameErrorCode.badRequest, `${text} is bad_request`)
      t.match(r.message, /prototype/, 'refused for the prototype key, not only for the schema')
    }
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is not polluted')
})

t.test('an extra property is bad_request', async t => {
  failure(t, parse({ type: 'ping', id: 'r1', extra: 1 }), FrameErrorCode.badRequest, 'r1')
  failure(t, parse({ type: 'subscribe_category', id: 'r1', categories: ['system'], all: true }), FrameErrorCode.badRequest, 'r1')
  failure(t, parse({ type: 'mark_read', id: 'r1', all: true, user: 'bob' }), FrameErrorCode.badRequest, 'r1')
  failure(t, parse({ type: 'request_notification_history', id: 'r1', after: 3 }), FrameErrorCode.badRequest, 'r1')
})

t.test('history limit must be 1..100', async t => {
  failure(t, parse({ type: 'request_notification_history', id: 'h', limit: 0 }), FrameErrorCode.badRequest, 'h')
  failure(t, parse({ type: 'request_notification_history', id: 'h', limit: 101 }), FrameErrorCode.badRequest, 'h')
  failure(t, parse({ type: 'request_notification_history', id: 'h', limit: -5 }), FrameErrorCode.badRequest, 'h')
})

t.test('an id longer than 64 characters is bad_request', async t => {
  const r = parse({ type: 'ping', id: 'y'.repeat(65) })
  failure(t, r, FrameErrorCode.badRequest)
  t.ok(parse({ type: 'ping', id: 'y'.repeat(64) }).ok, '64 is still fine')
})

t.test('the message of a schema failure names the frame type', async t => {
  const r = parse({ type: 'request_notification_history', limit: 0 })
  t.ok(!r.ok && r.message.startsWith('request_notification_history:'))
})

// ---- server frames ------------------------------------------------------------

const notification: ClientNotification = {
  id: '2b0f6c1e-1d1c-4f59-9f5b-8c1f0a3f7c11',
  seq: 7,
  category: 'dashboard',
  type: 'info',
  priority: 'normal',
  title: 'Hello "world"',
  message: 'line\nbreak',
  data: { n: 1, nested: { ok: true } },
  createdAt: '2024-01-01T00:00:00.000Z',
  source: 'api',
  read: false
}

t.test('connectedFrame', async t => {
  const text = connectedFrame({
    sessionId: 's1',
    user: { id: 'u1', role: 'user' },
    categories: ['system', 'dashboard'],
    subscriptions: ['dashboard'],
    unread: 3,
    lastSeq: 42,
    epoch: 'e1'
  })
  t.same(JSON.parse(text), {
    type: 'connected',
    protocol: 1,
    sessionId: 's1',
    user: { id: 'u1', role: 'user' },
    categories: ['system', 'dashboard'],
    subscriptions: ['dashboard'],
    unread: 3,
    lastSeq: 42,
    epoch: 'e1'
  })
})

t.test('notificationFrame', async t => {
  const text = notificationFrame(notification)
  const parsed = JSON.parse(text)
  t.same(parsed, { type: 'notification', notification })
  t.same(Object.keys(parsed), ['type', 'notification'])
})

t.test('replayedFrame', async t => {
  t.same(JSON.parse(replayedFrame(7, true)), { type: 'replayed', count: 7, complete: true })
  t.same(JSON.parse(replayedFrame(0, false)), { type: 'replayed', count: 0, complete: false })
})

t.test('replyFrame', async t => {
  t.same(JSON.parse(replyFrame('r1', { subscriptions: ['a'] })), { type: 'reply', id: 'r1', result: { subscriptions: ['a'] } })
  const noId = JSON.parse(replyFrame(undefined, { time: 'x' }))
  t.same(noId, { type: 'reply', result: { time: 'x' } })
  t.notOk('id' in noId, 'no id key without an id')
})

t.test('errorFrame', async t => {
  t.same(JSON.parse(errorFrame('r1', FrameErrorCode.forbidden, 'no')), { type: 'error', id: 'r1', code: 'forbidden', message: 'no' })
  const noId = JSON.parse(errorFrame(undefined, FrameErrorCode.badRequest, 'bad'))
  t.same(noId, { type: 'error', code: 'bad_request', message: 'bad' })
  t.notOk('id' in noId)
})

t.test('legacyFrame', async t => {
  t.same(JSON.parse(legacyFrame('user_notification', { user_id: 'u1', message: 'm' })), {
    type: 'legacy', event: 'user_notification', data: { user_id: 'u1', message: 'm' }
  })
  t.same(JSON.parse(legacyFrame('e', null)), { type: 'legacy', event: 'e', data: null })
})
