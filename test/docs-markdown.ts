// Reads the examples out of the markdown docs for test/docs-examples.test.ts:
// fenced blocks (with the section they are in and any docs-test skip comment),
// shell commands, and documented JSON with `…` wildcards, matched against real answers.

export interface Block {
  lang: string
  body: string
  /** The `##`/`###` heading the block is under. */
  section: string
  /** Index of the block's first line in the file. */
  line: number
  /** Reason given by a `<!-- docs-test: skip reason -->` comment right before the block. */
  skip?: string
}

const SKIP = /^<!--\s*docs-test:\s*skip\s+(.+?)\s*-->$/

export function blocks (markdown: string): Block[] {
  const lines = markdown.split('\n')
  const out: Block[] = []
  let section = ''
  let skip: string | undefined
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    const heading = /^#{1,4}\s+(.*)$/.exec(line)
    if (heading) section = heading[1]!
    const skipMatch = SKIP.exec(line.trim())
    if (skipMatch) { skip = skipMatch[1]; continue }
    const fence = /^```(\w*)\s*$/.exec(line)
    if (!fence) {
      if (line.trim() !== '') skip = undefined
      continue
    }
    const start = i
    const body: string[] = []
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!)
    out.push({ lang: fence[1]!, body: body.join('\n'), section, line: start, ...(skip ? { skip } : {}) })
    skip = undefined
  }
  return out
}

/** The prose of the file between two line indexes, code blocks left out. */
export function proseBetween (markdown: string, from: number, to: number): string {
  const lines = markdown.split('\n').slice(from, to)
  let inFence = false
  return lines.filter(l => {
    if (/^```/.test(l)) { inFence = !inFence; return false }
    return !inFence
  }).join('\n')
}

/** The commands of a shell block: continuation lines joined, blank and comment lines dropped. */
export function commands (body: string): string[] {
  return body.replace(/\\\n\s*/g, ' ').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
}

/** A command without its trailing `# comment` and leading VAR=value assignments. */
export function bareCommand (command: string): string {
  return command.replace(/\s+#\s.*$/, '').replace(/^(\w+=\S*\s+)+/, '').trim()
}

/** The first balanced `{…}` starting at `text[start]`, respecting strings. */
export function balancedObject (text: string, start: number): string | undefined {
  let depth = 0
  let inString = false
  for (let i = start; i < text.length; i++) {
    const c = text[i]
    if (inString) {
      if (c === '\\') i++
      else if (c === '"') inString = false
      continue
    }
    if (c === '"') inString = true
    else if (c === '{' || c === '[') depth++
    else if (c === '}' || c === ']') {
      depth--
      if (depth === 0) return text.slice(start, i + 1)
    }
  }
  return undefined
}

export const ANY = Symbol('any value')
export const MORE = '\u0000more keys'

/**
 * Parses documented JSON where `…` is a wildcard: `[…]`, `{…}` and `[…text…]` any value,
 * `,…}` more keys, a string with `…` any string. Throws when the example is not JSON otherwise.
 */
export function parseDocumented (text: string): unknown {
  const prepared = text
    .replace(/\[…[^\]]*\]/g, '"\\u0000any"')
    .replace(/\{…[^{}]*\}/g, '"\\u0000any"')
    .replace(/,\s*…\s*\}/g, `,${JSON.stringify(MORE)}:true}`)
    .replace(/,\s*…\s*\]/g, ']')
  return revive(JSON.parse(prepared))
}

function revive (value: unknown): unknown {
  if (value === '\u0000any') return ANY
  if (Array.isArray(value)) return value.map(revive)
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) {
      // A `"…": …` key documents an open map: any keys.
      if (k === '…') out[MORE] = true
      else out[k] = revive(v)
    }
    return out
  }
  return value
}

/**
 * Differences between a documented value and an actual one, as paths.
 * Both modes: every documented key must be there, and no other key (unless the object has `…`).
 * exact: values must be equal (except wildcards); shape: of the same JSON type.
 */
export function differences (documented: unknown, actual: unknown, mode: 'exact' | 'shape', path = '$'): string[] {
  if (documented === ANY) return []
  if (typeof documented === 'string' && documented.includes('…')) {
    return typeof actual === 'string' ? [] : [`${path}: expected a string, got ${JSON.stringify(actual)}`]
  }
  if (Array.isArray(documented)) {
    if (!Array.isArray(actual)) return [`${path}: expected an array, got ${JSON.stringify(actual)}`]
    if (mode === 'shape') return []
    if (documented.length !== actual.length) return [`${path}: expected ${documented.length} items, got ${actual.length}`]
    return documented.flatMap((d, i) => differences(d, actual[i], mode, `${path}[${i}]`))
  }
  if (documented !== null && typeof documented === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return [`${path}: expected an object, got ${JSON.stringify(actual)}`]
    const doc = documented as Record<string, unknown>
    const act = actual as Record<string, unknown>
    const out: string[] = []
    for (const [k, v] of Object.entries(doc)) {
      if (k === MORE) continue
      if (!(k in act)) out.push(`${path}.${k}: documented, missing from the answer`)
      else out.push(...differences(v, act[k], mode, `${path}.${k}`))
    }
    if (!(MORE in doc)) {
      for (const k of Object.keys(act)) if (!(k in doc)) out.push(`${path}.${k}: in the answer, not documented`)
    }
    return out
  }
  if (mode === 'shape') {
    return typeof documented === typeof actual ? [] : [`${path}: expected a ${typeof documented}, got ${JSON.stringify(actual)}`]
  }
  return documented === actual ? [] : [`${path}: expected ${JSON.stringify(documented)}, got ${JSON.stringify(actual)}`]
}
