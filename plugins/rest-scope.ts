// What every REST scope of this project sets for its own routes only (a host
// app keeps its own): strict validation worded clearly, JSON bodies only, a
// prototype key named as such, and errors in Fastify's shape with this
// project's codes, where a 500 says only that it happened and which request.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errorCodes } from 'fastify'
import sjson from 'secure-json-parse'
import { BadRequestError, InternalError, errorSpec } from '../src/errors.js'
import { schemaErrorFormatter, validatorCompiler } from './validation.js'

const PARSE_OPTIONS = { protoAction: 'error', constructorAction: 'error' } as const

/** Fastify's JSON parser, except that a prototype key is told apart from broken JSON. */
function parseJson (_request: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void {
  const text = typeof body === 'string' ? body : body.toString('utf8')
  if (text.length === 0) return done(new errorCodes.FST_ERR_CTP_EMPTY_JSON_BODY())
  try {
    done(null, sjson.parse(text, undefined, PARSE_OPTIONS))
  } catch (err) {
    // secure-json-parse's only own error; JSON.parse's say where the syntax broke.
    if (err instanceof SyntaxError && err.message.includes('forbidden prototype property')) {
      return done(new BadRequestError('Body contains a prototype key (__proto__, or constructor.prototype): such keys are refused at any depth'))
    }
    done(new errorCodes.FST_ERR_CTP_INVALID_JSON_BODY())
  }
}

/** Client errors go out as they are; anything else is logged in full and answered 500 UN_INTERNAL. */
export function restErrorHandler (err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const spec = errorSpec(err)
  const status = spec?.status ?? err.statusCode
  // 503 UN_UNAVAILABLE is an expected moment (starting, draining), not a fault: its message is for the caller.
  if (typeof status === 'number' && ((status >= 400 && status < 500) || spec?.status === 503)) {
    reply.send(err)
    return
  }
  request.log.error({ err }, 'request failed')
  reply.send(new InternalError(request.id))
}

export function configureRestScope (scope: FastifyInstance): void {
  scope.setValidatorCompiler(validatorCompiler)
  scope.setSchemaErrorFormatter(schemaErrorFormatter)
  // JSON in and out: a text/plain body is 415, not a string that fails validation as 400.
  scope.removeContentTypeParser(['text/plain', 'application/json'])
  scope.addContentTypeParser('application/json', { parseAs: 'string' }, parseJson)
  scope.setErrorHandler(restErrorHandler)
}
