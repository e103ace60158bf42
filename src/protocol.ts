// WebSocket protocol v1: the frame table, parsing and validation of client
// frames, and the serialisers of server frames.
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import type { TSchema } from '@sinclair/typebox'
import sjson from 'secure-json-parse'
import { FrameErrorCode } from './errors.js'
import {
  ConnectedFrame, ErrorFrame, HistoryFrame, LegacyFrame, MarkReadFrame, NotificationFrame, PingFrame, RefreshFrame, ReplayedFrame,
  ReplyFrame, SetPreferencesFrame, PreferencesFrame, SubscribeFrame, UnreadFrame, UnsubscribeFrame, type ClientFrame, type ClientNotification
} from './schemas.js'

export const PROTOCOL_VERSION = 1

/** Client → server frame types and their schemas: the runtime checks below and the AsyncAPI document come from here. */
export const CLIENT_FRAME_SCHEMAS = {
  subscribe_category: SubscribeFrame, // → reply {subscriptions}
  unsubscribe_category: UnsubscribeFrame, // → reply {subscriptions}
  request_notification_history: HistoryFrame, // → reply {notifications, hasMore}
  mark_read: MarkReadFrame, // → reply {unread}
  ping: PingFrame, // → reply {time}
  refresh: RefreshFrame, // → reply {expiresAt}
  set_preferences: SetPreferencesFrame // → reply {muted, subscriptions}
} as const

/** Server → client frame types and their schemas. */
export const SERVER_FRAME_SCHEMAS = {
  connected: ConnectedFrame, // always first
  notification: NotificationFrame,
  replayed: ReplayedFrame, // after a replay (since=)
  reply: ReplyFrame, // answers a client frame
  error: ErrorFrame, // refuses a client frame
  legacy: LegacyFrame, // legacy=1 connections only
  unread: UnreadFrame, // the user's unread count changed by a mark_read on any of their connections
  preferences: PreferencesFrame // the user's muted categories changed
} as const

/** Each client frame type with its compiled check. A Map, so '__proto__' or 'toString' is simply unknown. */
const CLIENT_FRAMES = new Map<string, TypeCheck<TSchema>>(
  Object.entries(CLIENT_FRAME_SCHEMAS).map(([type, schema]) => [type, TypeCompiler.Compile(schema)])
)

export type ClientFrameType = keyof typeof CLIENT_FRAME_SCHEMAS
export type ServerFrameType = keyof typeof SERVER_FRAME_SCHEMAS

export const SERVER_FRAME_TYPES = Object.keys(SERVER_FRAME_SCHEMAS) as ServerFrameType[]

export const CLIENT_FRAME_TYPES = Object.keys(CLIENT_FRAME_SCHEMAS) as ClientFrameType[]

export type ParsedFrame =
  | { ok: true, frame: ClientFrame }
  | { ok: false, id: string | undefined, code: FrameErrorCode, message: string }

function requestId (value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const id = (value as { id?: unknown }).id
  return typeof id === 'string' && id.length <= 64 ? id : undefined
}

/** Parses one text frame. Never throws: every failure is a result with an error code. */
export function parseClientFrame (text: string): ParsedFrame {
  let value: unknown
  try {
    // Fastify's JSON protections do not cover socket frames: refuse prototype keys here.
    value = sjson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' })
  } catch (err) {
    const proto = err instanceof SyntaxError && /prototype/i.test(err.message)
    return { ok: false, id: undefined, code: FrameErrorCode.badRequest, message: proto ? 'Frame contains a forbidden prototype key' : 'Frame is not valid JSON' }
  }
  return checkClientFrame(value)
}

/** Checks one decoded client frame (parsed from text, or a transport's own decoding). Never throws. */
export function checkClientFrame (value: unknown): ParsedFrame {
  const id = requestId(value)
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, id, code: FrameErrorCode.badRequest, message: 'Frame must be a JSON object' }
  }
  const type = (value as { type?: unknown }).type
  if (typeof type !== 'string') {
    return { ok: false, id, code: FrameErrorCode.badRequest, message: "Frame needs a string 'type'" }
  }
  const check = CLIENT_FRAMES.get(type)
  if (!check) {
    return { ok: false, id, code: FrameErrorCode.unknownType, message: `Unknown frame type '${type.slice(0, 64)}'` }
  }
  if (!check.Check(value)) {
    const first = check.Errors(value).First()
    const where = first?.path !== undefined && first.path !== '' ? first.path : '/'
    return { ok: false, id, code: FrameErrorCode.badRequest, message: `${type}: ${where} ${first?.message ?? 'is invalid'}` }
  }
  return { ok: true, frame: value as ClientFrame }
}

// ---- server frames, serialised ------------------------------------------------

export function connectedFrame (f: Omit<ConnectedFrame, 'type' | 'protocol'>): string {
  return JSON.stringify({ type: 'connected', protocol: PROTOCOL_VERSION, ...f })
}

/**
 * A frame serialised once and written to many sockets. A transport may cache
 * its own wire encoding of `text` in `wire`, so a broadcast is also framed once.
 */
export interface SharedFrame {
  readonly text: string
  wire?: unknown
  /** The Socket.IO door's encoding of `text` (its packet, and that packet's WebSocket frame), cached like `wire`. */
  packet?: unknown
}

/** One string per notification, shared by every recipient. */
export function notificationFrame (n: ClientNotification): string {
  return '{"type":"notification","notification":' + JSON.stringify(n) + '}'
}

export function replayedFrame (count: number, complete: boolean): string {
  return JSON.stringify({ type: 'replayed', count, complete })
}

export function replyFrame (id: string | undefined, result: Record<string, unknown>): string {
  return JSON.stringify(id === undefined ? { type: 'reply', result } : { type: 'reply', id, result })
}

export function errorFrame (id: string | undefined, code: FrameErrorCode, message: string): string {
  return JSON.stringify(id === undefined ? { type: 'error', code, message } : { type: 'error', id, code, message })
}

export function legacyFrame (event: string, data: unknown): string {
  return JSON.stringify({ type: 'legacy', event, data })
}

export function unreadFrame (f: Omit<UnreadFrame, 'type'>): string {
  return JSON.stringify({ type: 'unread', ...f })
}

export function preferencesFrame (muted: readonly string[], subscriptions: readonly string[]): string {
  return JSON.stringify({ type: 'preferences', muted, subscriptions })
}
