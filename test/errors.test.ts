// The one error table (src/errors.ts): each error carries its code, HTTP status
// and frame code, and the socket and adapter mappings read them from it.
import t from 'tap'
import {
  BadRequestError, DataTooDeepError, DataTooLargeError, ERROR_TABLE, ForbiddenError, FrameErrorCode, InternalError,
  InvalidTokenError, RateLimitedError, UnavailableError, UnknownCategoryError, errorSpec, frameErrorOf, isInputError
} from '../src/errors.js'
import { nestedDeeperThan } from '../src/json-depth.js'

t.test('every error of the table carries the code, status and frame code the table gives it', async t => {
  const samples = [
    new BadRequestError('x'), new UnknownCategoryError('billing'), new DataTooLargeError(16), new DataTooDeepError(32),
    new InvalidTokenError('x'), new ForbiddenError('x'), new RateLimitedError('1 s'), new InternalError('req-1'), new UnavailableError('x')
  ]
  for (const err of samples) {
    const spec = ERROR_TABLE.get(err.code)
    t.ok(spec, `${err.code} is in the table`)
    t.equal(err.statusCode, spec!.status, `${err.code}: status`)
    t.match(err.code, /^UN_[A-Z_]+$/, 'one prefix for the project')
  }
  t.equal(new Set(ERROR_TABLE.keys()).size, ERROR_TABLE.size)
})

t.test('frameErrorOf: the same mistake gets the frame code of its table entry', async t => {
  t.same(frameErrorOf(new UnknownCategoryError('billing')), { code: FrameErrorCode.badRequest, message: "Unknown category 'billing'" })
  t.same(frameErrorOf(new ForbiddenError("Role 'viewer' may not see category 'admin'")), { code: FrameErrorCode.forbidden, message: "Role 'viewer' may not see category 'admin'" })
  t.equal(frameErrorOf(new InvalidTokenError('token expired')).code, FrameErrorCode.badRequest)
  t.equal(frameErrorOf(new RateLimitedError('1 s')).code, FrameErrorCode.rateLimited)
})

t.test('frameErrorOf: anything outside the table is internal, and its message is not passed on', async t => {
  const foreign = [new Error('SQLITE_BUSY: /var/lib/secret.db'), Object.assign(new Error('coded elsewhere'), { code: 'EACCES' }), 'a string', null]
  for (const err of foreign) t.same(frameErrorOf(err), { code: 'internal', message: 'Internal error; the request was not completed' })
  t.same(frameErrorOf(new UnavailableError('shutting down')).code, 'internal', 'a 503 is internal on the socket')
  // A look-alike plain object is not one of ours: only errors count.
  t.equal(errorSpec({ code: 'UN_BAD_REQUEST' }), undefined)
})

t.test('isInputError classifies by code, not by a numeric statusCode', async t => {
  t.ok(isInputError(new DataTooLargeError(16)))
  t.ok(isInputError(new UnknownCategoryError('x')))
  t.notOk(isInputError(Object.assign(new Error('a 400 from some other library'), { statusCode: 400 })), 'a foreign 400 is a failure, not the payload')
  t.notOk(isInputError(new UnavailableError('x')))
  t.notOk(isInputError(new ForbiddenError('x')))
})

t.test('nestedDeeperThan counts object and array levels without recursion', async t => {
  t.equal(nestedDeeperThan(1, 0), false, 'a scalar is 0 levels')
  t.equal(nestedDeeperThan({}, 0), true)
  t.equal(nestedDeeperThan({}, 1), false, '{} is 1 level')
  t.equal(nestedDeeperThan({ a: [] }, 1), true)
  t.equal(nestedDeeperThan({ a: [] }, 2), false, '{"a":[]} is 2 levels')
  t.equal(nestedDeeperThan({ a: 1, b: { c: [1, { d: null }] } }, 3), true)
  t.equal(nestedDeeperThan({ a: 1, b: { c: [1, { d: null }] } }, 4), false)
  const deep = JSON.parse('['.repeat(100_000) + ']'.repeat(100_000)) as unknown
  t.equal(nestedDeeperThan(deep, 32), true, '100,000 levels: refused, no stack overflow')
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  t.equal(nestedDeeperThan(cyclic, 32), true, 'a cycle is over any limit')
})
