// docs/errors.md must list exactly the REST error codes that src/errors.ts defines.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { CloseCode, FrameErrorCode, ERROR_CODES } from '../src/errors.js'

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')

t.test('docs/errors.md lists exactly the UN_ codes of src/errors.ts', async t => {
  const documented = [...new Set([...doc.matchAll(/`(UN_[A-Z_]+)`/g)].map(m => m[1]))].sort()
  t.same(documented, [...ERROR_CODES].sort())
})

t.test('docs/errors.md lists every frame error code and close code', async t => {
  for (const code of Object.values(FrameErrorCode)) t.match(doc, `| \`${code}\` |`, code)
  for (const code of Object.values(CloseCode)) t.match(doc, `| ${code} |`, String(code))
})
