// Validator compilers and the wording of schema errors for this project's
// routes. Fastify's default Ajv strips unknown fields and coerces types; a body
// must instead be exactly what the schema says, so bodies get a strict Ajv.
// Querystrings keep coercion, since every query value arrives as a string.
import { Ajv, type Options } from 'ajv'
import addFormats from 'ajv-formats'
import type { FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify'

function build (options: Options): Ajv {
  const ajv = new Ajv({ allErrors: false, strict: false, ...options })
  addFormats.default(ajv)
  return ajv
}

const strict = build({ coerceTypes: false, removeAdditional: false, useDefaults: false })
const lenient = build({ coerceTypes: 'array', removeAdditional: false, useDefaults: true })

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) =>
  (httpPart === 'body' ? strict : lenient).compile(schema as object)

/** What went wrong at one place, in words: a union of literals names its allowed values. */
function describe (errors: FastifySchemaValidationError[]): string {
  const anyOf = errors.find(e => e.keyword === 'anyOf')
  const branches = errors.filter(e => e.keyword !== 'anyOf')
  if (anyOf !== undefined && branches.length > 0 && branches.every(e => e.keyword === 'const')) {
    return `must be one of: ${branches.map(e => String(e.params.allowedValue)).join(', ')}`
  }
  const first = branches[0] ?? anyOf ?? errors[0]!
  if (first.keyword === 'additionalProperties') return `has unknown property '${String(first.params.additionalProperty)}'`
  return first.message ?? 'is invalid'
}

/** Where, in words: a batch item is named `notifications[i]`, as the manager names it for its own checks. */
function where (dataVar: string, instancePath: string): string {
  const item = dataVar === 'body' ? /^\/notifications\/(\d+)(?:\/(.*))?$/.exec(instancePath) : null
  if (item !== null) return `notifications[${item[1]}]:${item[2] !== undefined ? ` ${item[2]}` : ''}`
  return `${dataVar}${instancePath}`
}

/** Replaces Fastify's "body/type must be equal to constant" ×5 with one sentence per failing place. */
export function schemaErrorFormatter (errors: FastifySchemaValidationError[], dataVar: string): Error {
  const byPath = new Map<string, FastifySchemaValidationError[]>()
  for (const e of errors) {
    const list = byPath.get(e.instancePath)
    if (list) list.push(e)
    else byPath.set(e.instancePath, [e])
  }
  const sentences = [...byPath].map(([path, list]) => `${where(dataVar, path)} ${describe(list)}`)
  return new Error(sentences.join('; '))
}
