// Validator compilers for this project's routes. Fastify's default Ajv strips
// unknown fields and coerces types; a body must instead be exactly what the
// schema says, so bodies get a strict Ajv. Querystrings keep coercion, since
// every query value arrives as a string.
import { Ajv, type Options } from 'ajv'
import addFormats from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'

function build (options: Options): Ajv {
  const ajv = new Ajv({ allErrors: false, strict: false, ...options })
  addFormats.default(ajv)
  return ajv
}

const strict = build({ coerceTypes: false, removeAdditional: false, useDefaults: false })
const lenient = build({ coerceTypes: 'array', removeAdditional: false, useDefaults: true })

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) =>
  (httpPart === 'body' ? strict : lenient).compile(schema as object)
