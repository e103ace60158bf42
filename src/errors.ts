// Every error this project raises, in one place: REST errors (Fastify's error
// shape, through @fastify/error) and WebSocket error-frame / close codes.
import createError from '@fastify/error'

export const BadRequestError = createError<[string]>('UN_BAD_REQUEST', '%s', 400)
export const UnknownCategoryError = createError<[string]>('UN_UNKNOWN_CATEGORY', "Unknown category '%s'", 400)
export const InvalidPublishError = createError<[string]>('UN_INVALID_NOTIFICATION', 'Invalid notification: %s', 400)
export const DataTooLargeError = createError<[number]>('UN_DATA_TOO_LARGE', 'data is larger than %d bytes once serialised', 400)
export const MissingCredentialsError = createError('UN_MISSING_CREDENTIALS', 'Missing credentials: send Authorization: Bearer <token or API key>', 401)
export const InvalidTokenError = createError<[string]>('UN_INVALID_TOKEN', 'Invalid token: %s', 401)
export const ForbiddenError = createError<[string]>('UN_FORBIDDEN', '%s', 403)
export const UnknownRoleError = createError<[string]>('UN_UNKNOWN_ROLE', "Role '%s' is not in the role policy", 403)
export const NotFoundError = createError<[string]>('UN_NOT_FOUND', '%s', 404)
export const RateLimitedError = createError<[string]>('UN_RATE_LIMITED', 'Rate limit exceeded, retry in %s', 429)
export const UnavailableError = createError<[string]>('UN_UNAVAILABLE', '%s', 503)
export const InvalidLegacyPayloadError = createError<[string, string]>('UN_INVALID_LEGACY_PAYLOAD', "Invalid '%s' payload: %s", 400)

/** Every REST error code above; docs/errors.md must list exactly these (tested). */
export const REST_ERROR_CODES = [
  BadRequestError, UnknownCategoryError, InvalidPublishError, DataTooLargeError, MissingCredentialsError, InvalidTokenError,
  ForbiddenError, UnknownRoleError, NotFoundError, RateLimitedError, UnavailableError, InvalidLegacyPayloadError
].map(E => new E('x' as never).code)

/** Codes carried by {"type":"error"} frames on the WebSocket. */
export const FrameErrorCode = {
  badRequest: 'bad_request',
  unknownType: 'unknown_type',
  forbidden: 'forbidden',
  rateLimited: 'rate_limited',
  internal: 'internal'
} as const
export type FrameErrorCode = typeof FrameErrorCode[keyof typeof FrameErrorCode]

/** WebSocket close codes. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  tooBig: 1009,
  internal: 1011,
  tokenExpired: 4001,
  policy: 4008,
  slowConsumer: 4009
} as const
export type CloseCode = typeof CloseCode[keyof typeof CloseCode]

/** Raised inside the core for a request the caller got wrong: error frame bad_request, HTTP 400. */
export class ValidationError extends Error {
  readonly code: FrameErrorCode = FrameErrorCode.badRequest
}

/** Raised inside the core for a category the role may not see: error frame forbidden, HTTP 403. */
export class PermissionError extends Error {
  readonly code: FrameErrorCode = FrameErrorCode.forbidden
}

/** The HTTP form of a core error; anything else is returned unchanged. */
export function toHttpError (err: unknown): unknown {
  if (err instanceof ValidationError) return new BadRequestError(err.message)
  if (err instanceof PermissionError) return new ForbiddenError(err.message)
  return err
}
