// docs/errors.md must list exactly the error codes that src/errors.ts defines, each with its status and frame code.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { CloseCode, ERROR_TABLE, FrameErrorCode } from '../src/errors.js'

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')

t.test('docs/errors.md lists exactly the UN_ codes of src/errors.ts', async t => {
  const documented = [...new Set([...doc.matchAll(/`(UN_[A-Z_]+)`/g)].map(m => m[1]))].sort()
  t.same(documented, [...ERROR_TABLE.keys()].sort())
})

t.test("docs/errors.md gives each UN_ code the table's HTTP status and frame code", async t => {
  for (const [code, spec] of ERROR_TABLE) {
    t.match(doc, `| \`${code}\` | ${spec.status} | \`${spec.frame}\` |`, code)
  }
})

t.test('docs/errors.md lists every frame error code and close code', async t => {
  for (const code of Object.values(FrameErrorCode)) t.match(doc, `| \`${code}\` |`, code)
  for (const code of Object.values(CloseCode)) t.match(doc, `| ${code} |`, String(code))
})
