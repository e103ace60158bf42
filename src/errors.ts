// Every error this project raises, in one table: its stable code (UN_…), its
// HTTP status and the code of the {"type":"error"} frame that carries it on the
// WebSocket. The REST layer sends these errors as they are (Fastify's error
// shape, through @fastify/error); the socket layer maps them with frameErrorOf().
import createError from '@fastify/error'

/** Codes carried by {"type":"error"} frames on the WebSocket. */
export const FrameErrorCode = {
  badRequest: 'bad_request',
  unknownType: 'unknown_type',
  forbidden: 'forbidden',
  rateLimited: 'rate_limited',
  internal: 'internal'
} as const
export type FrameErrorCode = typeof FrameErrorCode[keyof typeof FrameErrorCode]

export interface ErrorSpec {
  status: number
  frame: FrameErrorCode
}

const TABLE = new Map<string, ErrorSpec>()

function define<C extends string, A extends unknown[]> (code: C, message: string, status: number, frame: FrameErrorCode) {
  TABLE.set(code, { status, frame })
  return createError<C, number, A>(code, message, status)
}

const { badRequest, forbidden, rateLimited, internal } = FrameErrorCode

export const BadRequestError = define<'UN_BAD_REQUEST', [string]>('UN_BAD_REQUEST', '%s', 400, badRequest)
export const UnknownCategoryError = define<'UN_UNKNOWN_CATEGORY', [string]>('UN_UNKNOWN_CATEGORY', "Unknown category '%s'", 400, badRequest)
export const InvalidPublishError = define<'UN_INVALID_NOTIFICATION', [string]>('UN_INVALID_NOTIFICATION', 'Invalid notification: %s', 400, badRequest)
export const DataTooLargeError = define<'UN_DATA_TOO_LARGE', [number]>('UN_DATA_TOO_LARGE', 'data is larger than %d bytes once serialised', 400, badRequest)
export const DataTooDeepError = define<'UN_DATA_TOO_DEEP', [number]>('UN_DATA_TOO_DEEP', 'data nests objects and arrays deeper than %d levels (or is circular)', 400, badRequest)
export const InvalidLegacyPayloadError = define<'UN_INVALID_LEGACY_PAYLOAD', [string, string]>('UN_INVALID_LEGACY_PAYLOAD', "Invalid '%s' payload: %s", 400, badRequest)
export const MissingCredentialsError = define<'UN_MISSING_CREDENTIALS', []>('UN_MISSING_CREDENTIALS', 'Missing credentials: send Authorization: Bearer <token or API key>', 401, badRequest)
// On the socket only a refresh frame carries a token: a bad one is a bad request, the connection stays.
export const InvalidTokenError = define<'UN_INVALID_TOKEN', [string]>('UN_INVALID_TOKEN', 'Invalid token: %s', 401, badRequest)
export const ForbiddenError = define<'UN_FORBIDDEN', [string]>('UN_FORBIDDEN', '%s', 403, forbidden)
export const UnknownRoleError = define<'UN_UNKNOWN_ROLE', [string]>('UN_UNKNOWN_ROLE', "Role '%s' is not in the role policy", 403, forbidden)
export const NotFoundError = define<'UN_NOT_FOUND', [string]>('UN_NOT_FOUND', '%s', 404, badRequest)
export const RateLimitedError = define<'UN_RATE_LIMITED', [string]>('UN_RATE_LIMITED', 'Rate limit exceeded, retry in %s', 429, rateLimited)
export const InternalError = define<'UN_INTERNAL', [string]>('UN_INTERNAL', 'Internal error (request %s); the details are in the server log', 500, internal)
export const UnavailableError = define<'UN_UNAVAILABLE', [string]>('UN_UNAVAILABLE', '%s', 503, internal)

/** Every UN_ code above with its status and frame code; docs/errors.md must list exactly these (tested). */
export const ERROR_TABLE: ReadonlyMap<string, ErrorSpec> = TABLE

/** The table's entry for an error raised by this project, or undefined for any other value. */
export function errorSpec (err: unknown): ErrorSpec | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && err instanceof Error ? TABLE.get(code) : undefined
}

/** The caller sent something wrong (a 400 of this table): not a fault of the service. */
export function isInputError (err: unknown): boolean {
  return errorSpec(err)?.status === 400
}

/** The {"type":"error"} frame for an error: its table code, or `internal` (without the detail) for anything else. */
export function frameErrorOf (err: unknown): { code: FrameErrorCode, message: string } {
  const spec = errorSpec(err)
  if (spec === undefined || spec.frame === internal) return { code: internal, message: 'Internal error; the request was not completed' }
  return { code: spec.frame, message: (err as Error).message }
}

/** WebSocket close codes. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  tooBig: 1009,
  internal: 1011,
  tokenExpired: 4001,
  /** The user's access was revoked (POST /api/users/<id>/disconnect): get a new token, do not retry the old one. */
  revoked: 4003,
  policy: 4008,
  slowConsumer: 4009
} as const
export type CloseCode = typeof CloseCode[keyof typeof CloseCode]
