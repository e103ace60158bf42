// A published notification serialised once. Its JSON pieces are cut when the
// manager prepares it (the data's JSON is the one its size check needs anyway);
// the stored body and the live frame are both joined from them, byte for byte
// what JSON.stringify gave each before, instead of stringifying `data` three
// times. A notification the pieces do not know (read back from Redis, written
// by another caller) takes JSON.stringify as before.
import type { StoredNotification } from './schemas.js'
import type { Draft } from './stores/history-store.js'
import { notificationFrame } from './protocol.js'
import { toClient } from './stores/history-store.js'

interface Pieces {
  /** `"id":…` */
  readonly id: string
  /** `,"category":…` through `,"source":…`: the fields between seq and read in a frame, between id and data in a body. */
  readonly head: string
  /** The optional fields present, each `,"key":…`, in the draft's order (data, action, expiresAt, collapseKey). */
  readonly tail: string
}

/** By prepared draft; the same object becomes the stored notification (stamp). */
const pieces = new WeakMap<object, Pieces>()

/**
 * The JSON of `data` as it sits in a notification (its toJSON, if any, called
 * with the key 'data', as JSON.stringify does inside an object); undefined when
 * JSON would leave the member out.
 */
export function dataJson (data: unknown): string | undefined {
  const json = JSON.stringify({ data })
  return json === '{}' ? undefined : json.slice(8, -1)
}

/**
 * Cuts the pieces of a draft the manager has just built (keys in the order
 * #prepare sets them), `data` already serialised by dataJson.
 */
export function keepPieces (draft: Draft, data: string | undefined): void {
  if (draft.data !== undefined && data === undefined) return
  const { category, type, priority, title, message, createdAt, source } = draft
  const head = JSON.stringify({ category, type, priority, title, message, createdAt, source })
  let tail = data === undefined ? '' : ',"data":' + data
  // action is an object (toJSON would see its key); id, expiresAt and collapseKey are strings, written the same anywhere.
  if (draft.action !== undefined) tail += ',' + JSON.stringify({ action: draft.action }).slice(1, -1)
  if (draft.expiresAt !== undefined) tail += ',"expiresAt":' + JSON.stringify(draft.expiresAt)
  if (draft.collapseKey !== undefined) tail += ',"collapseKey":' + JSON.stringify(draft.collapseKey)
  pieces.set(draft, { id: '"id":' + JSON.stringify(draft.id), head: ',' + head.slice(1, -1), tail })
}

/** What the store keeps as the body: the draft without its audience, as JSON.stringify writes it. */
export function storedBody (draft: Draft): string {
  const p = pieces.get(draft)
  if (p !== undefined) return '{' + p.id + p.head + p.tail + '}'
  const { audience: _audience, ...pub } = draft
  return JSON.stringify(pub)
}

/**
 * The stored notification of a draft given its seq: `{ ...draft, seq }`. A
 * prepared draft is the manager's own object, used for nothing else: it takes
 * the seq itself (same keys, same order) instead of being copied, which cost a
 * microsecond a notification, and keeps its pieces for the frame.
 */
export function stamp (draft: Draft, seq: number): StoredNotification {
  if (!pieces.has(draft)) return { ...draft, seq }
  const n = draft as StoredNotification
  n.seq = seq
  return n
}

/** `{ ...draft }`, keeping its pieces (a store that reads every draft of a batch before it stores any). */
export function copyDraft (draft: Draft): Draft {
  const copy = { ...draft }
  const p = pieces.get(draft)
  if (p !== undefined) pieces.set(copy, p)
  return copy
}

/** The notification frame of a stored notification, unread: notificationFrame(toClient(n, false)). */
export function liveFrame (n: StoredNotification): string {
  const p = pieces.get(n)
  if (p === undefined) return notificationFrame(toClient(n, false))
  return '{"type":"notification","notification":{' + p.id + ',"seq":' + n.seq + p.head + ',"read":false' + p.tail + '}}'
}
