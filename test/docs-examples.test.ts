// The docs cannot drift from the server: every command block of README.md, and the
// curl, route and frame examples of docs/rest-api.md and docs/protocol.md, run against
// a real standalone server, their answers compared with what the docs show.
// Driven by what the docs contain; a block that needs a service this test does not
// start is marked in the markdown with `<!-- docs-test: skip <reason> -->`.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { API_KEY, build, connect, SECRET, type Client, type Harness } from './helper.js'
import { balancedObject, bareCommand, blocks, commands, differences, parseDocumented, proseBetween, type Block } from './docs-markdown.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const read = (file: string): string => readFileSync(new URL(`../${file}`, import.meta.url), 'utf8')
const packageScripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts

/** Commands that start a server or change the install: checked, never run. */
const LONG_RUNNING = /^npm (install|start|test|run [\w:-]+)$/

interface Shell { env: Record<string, string> }

function newShell (h: Harness): Shell {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v
  return { env: { ...env, PORT: String(h.port), NOTIFY_JWT_SECRET: SECRET, API_KEY } }
}

/** Runs one command in bash with the session's variables; assignments it makes carry over (set -a). */
async function run (shell: Shell, command: string): Promise<{ code: number, stdout: string, stderr: string }> {
  const script = `set -a\n${command}\nrc=$?\nprintf '\\0'\nenv -0\nexit $rc`
  // Bounded, so that a command waiting for something that never comes fails instead of hanging the suite.
  const child = spawn('/bin/bash', ['-c', script], { cwd: root, env: shell.env, timeout: 30_000 })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const code = await new Promise<number>(resolve => child.on('close', c => resolve(c ?? 1)))
  const cut = stdout.indexOf('\0')
  if (cut >= 0) {
    const env: Record<string, string> = {}
    for (const entry of stdout.slice(cut + 1).split('\0')) {
      const eq = entry.indexOf('=')
      if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1)
    }
    for (const k of ['PWD', 'OLDPWD', 'SHLVL', '_']) delete env[k]
    shell.env = env
    stdout = stdout.slice(0, cut)
  }
  return { code, stdout, stderr }
}

/** A curl command that also prints the status on a last line (only a plain curl, not a pipeline). */
async function runCurl (shell: Shell, command: string): Promise<{ status: number, body: string }> {
  const result = await run(shell, command.replace(/^curl /, `curl -w '\\n%{http_code}' `))
  if (result.code !== 0) throw new Error(`${command}: exit ${result.code}: ${result.stderr}`)
  const cut = result.stdout.lastIndexOf('\n')
  return { status: Number(result.stdout.slice(cut + 1)), body: result.stdout.slice(0, cut) }
}

function isPlainCurl (command: string): boolean {
  return /^curl\s/.test(command) && !/[|;]/.test(command.replace(/'[^']*'|"[^"]*"/g, ''))
}

/** The documented answer in prose: `NNN {…}`, or `{…}` followed by ` (NNN)`, or `→ {…}` (200). */
function documentedAnswer (prose: string): { status: number, json: string } | undefined {
  const before = /`?(\d{3}) \{/.exec(prose)
  const after = /answers `\{/.exec(prose)
  const arrow = /→\s*`\{/.exec(prose)
  const candidates = [
    before && { at: before.index, status: Number(before[1]), start: before.index + before[0].length - 1 },
    after && { at: after.index, status: 0, start: after.index + after[0].length - 1 },
    arrow && { at: arrow.index, status: 200, start: arrow.index + arrow[0].length - 1 }
  ].filter((c): c is { at: number, status: number, start: number } => Boolean(c)).sort((a, b) => a.at - b.at)
  const first = candidates[0]
  if (!first) return undefined
  const json = balancedObject(prose, first.start)
  if (json === undefined) return undefined
  const status = first.status || Number(/^`\s*\((\d{3})\)/.exec(prose.slice(first.start + json.length))?.[1] ?? 200)
  return { status, json }
}

function checkAnswer (t: Test, what: string, documented: { status: number, json: string }, status: number, body: string, mode: 'exact' | 'shape'): void {
  t.equal(status, documented.status, `${what}: the documented status`)
  const diffs = differences(parseDocumented(documented.json), JSON.parse(body), mode)
  t.same(diffs, [], `${what}: the answer has the documented keys${mode === 'exact' ? ' and values' : ''} (${body.slice(0, 200)})`)
}

t.test('README.md: every sh block, in order, as a reader runs them', async t => {
  const h = await build(t)
  const readme = read('README.md')
  const all = blocks(readme)
  const shell = newShell(h)
  let client: Client | undefined
  t.teardown(() => client?.close())
  const longRunning = new Set<string>()
  let ran = 0
  let transcripts = 0
  for (const [i, block] of all.entries()) {
    if (block.skip) { t.comment(`README line ${block.line + 1}: skipped: ${block.skip}`); continue }
    const transcript = block.body.split('\n').filter(l => /^[<>] /.test(l))
    if (block.lang === '' && transcript.length > 0) {
      if (!client) { t.fail(`README line ${block.line + 1}: a frame transcript with no wscat connection before it`); continue }
      for (const line of transcript) {
        const frame = line.slice(2).trim()
        if (line.startsWith('>')) { client.send(JSON.parse(frame)); continue }
        const real = await client.next(5000)
        t.same(differences(parseDocumented(frame), real, 'exact'), [], `README line ${block.line + 1}: ${frame.slice(0, 60)}… matches ${JSON.stringify(real).slice(0, 200)}`)
      }
      transcripts++
      continue
    }
    if (block.lang !== 'sh') continue
    for (const command of commands(block.body)) {
      const bare = bareCommand(command)
      t.notMatch(command, /127\.0\.0\.1:3000/, `README: "${command.slice(0, 60)}" works for any PORT`)
      const segments = bare.split(/\s*&&\s*/)
      if (segments.every(s => LONG_RUNNING.test(s))) {
        for (const s of segments) {
          longRunning.add(s)
          const script = /^npm (?:run )?(\S+)$/.exec(s)?.[1]
          if (script !== undefined && script !== 'install') t.ok(packageScripts[script], `package.json has the script of "${s}"`)
        }
        continue
      }
      const wscat = /^npx -y wscat -c "([^"]+)"$/.exec(bare)
      if (wscat) {
        const url = (await run(shell, `printf '%s' "${wscat[1]}"`)).stdout
        client?.close()
        client = await connect(url)
        // Without a transcript after it, the reader is at least shown the connected frame.
        const next = all[i + 1]
        if (!next || !next.body.split('\n').some(l => /^[<>] /.test(l))) {
          t.equal((await client.next(5000)).type, 'connected', `README: ${bare.slice(0, 60)} connects`)
        }
        ran++
        continue
      }
      if (isPlainCurl(bare)) {
        const answer = await runCurl(shell, bare)
        const next = all[i + 1]
        const documented = documentedAnswer(proseBetween(readme, block.line, next ? next.line : readme.length))
        if (documented) checkAnswer(t, `README: ${bare.slice(0, 60)}`, documented, answer.status, answer.body, 'exact')
        else t.ok(answer.status >= 200 && answer.status < 300 && JSON.parse(answer.body) !== undefined, `README: ${bare.slice(0, 60)} answers 2xx JSON (${answer.status})`)
        ran++
        continue
      }
      if (/&\s*$/.test(bare)) { t.fail(`README: "${command.slice(0, 80)}" starts a background process: mark its block with docs-test skip`); continue }
      const result = await run(shell, command)
      t.equal(result.code, 0, `README: "${command.slice(0, 80)}" exits 0 (${result.stderr.slice(0, 300)})`)
      t.ok(result.stdout.trim() !== '' || /^(export |\w+=)/.test(command), `README: "${command.slice(0, 80)}" prints something or sets a variable`)
      ran++
    }
  }
  t.ok(['npm install', 'npm start', 'npm test'].every(c => longRunning.has(c)), `the set-up commands are documented (${[...longRunning].join(', ')})`)
  t.ok(ran >= 5 && transcripts >= 2, `the walkthrough ran (${ran} commands, ${transcripts} transcripts)`)
})

interface Section { title: string, text: string, blocks: Block[] }

function sections (markdown: string): Section[] {
  const lines = markdown.split('\n')
  const all = blocks(markdown)
  const starts = lines.flatMap((l, i) => /^##+\s/.test(l) ? [i] : [])
  return starts.map((start, k) => {
    const end = starts[k + 1] ?? lines.length
    return {
      title: lines[start]!.replace(/^#+\s*/, ''),
      text: proseBetween(markdown, start, end),
      blocks: all.filter(b => b.line > start && b.line < end)
    }
  })
}

t.test('docs/rest-api.md: every route example and curl against the server', async t => {
  const h = await build(t)
  const doc = read('docs/rest-api.md')
  const shell = newShell(h)
  const alice = await h.token('alice', 'user')
  const admin = await h.token('ops', 'admin')
  // A connected user, so that stats and subscriptions have something to show.
  const ws = await connect(h.ws, { token: alice })
  t.teardown(() => ws.close())
  let lastId: string | undefined
  const lastBody = new Map<string, string>()
  let routes = 0
  for (const section of sections(doc)) {
    const route = /^`(GET|POST|PUT|PATCH|DELETE) ([^`]+)`(.*)$/m.exec(section.text)
    if (route) {
      const [, method, path, rest] = route as unknown as [string, string, string, string]
      if (path.includes('<')) { t.comment(`rest-api.md "${section.title}": ${path} has a placeholder; its examples are in migration.md`); continue }
      const credential = /user JWT/.test(rest) ? alice : /no credentials/.test(rest) ? undefined : /admin JWT/.test(rest) && !/API key/.test(rest) ? admin : API_KEY
      let body: string | undefined
      if (method !== 'GET') {
        const inline = /with `(\{[^`]*\})`/.exec(section.text.slice(route.index))
        // "with the same body": the body of the last example on the same path.
        body = section.blocks.find(b => b.lang === 'json' && !b.skip)?.body ?? inline?.[1] ?? lastBody.get(path.split('?')[0]!)
        if (body !== undefined) lastBody.set(path.split('?')[0]!, body)
        if (body !== undefined && lastId !== undefined) body = body.replace(/"…"/g, JSON.stringify(lastId))
      }
      const res = await fetch(h.http + path, {
        method,
        headers: { ...(credential ? { authorization: `Bearer ${credential}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body } : {})
      })
      const text = await res.text()
      const afterRoute = section.text.slice(route.index)
      const responseBlock = method === 'GET' ? section.blocks.find(b => b.lang === 'json' && !b.skip) : undefined
      const documented = responseBlock ? { status: 200, json: responseBlock.body } : documentedAnswer(afterRoute)
      const what = `rest-api.md "${section.title}": ${method} ${path}`
      if (documented) checkAnswer(t, what, documented, res.status, text, 'shape')
      else t.ok(res.status >= 200 && res.status < 300, `${what} answers 2xx (${res.status} ${text.slice(0, 200)})`)
      if (res.ok && /json/.test(res.headers.get('content-type') ?? '')) {
        const parsed = JSON.parse(text) as { id?: string, results?: Array<{ id: string }> }
        lastId = parsed.id ?? parsed.results?.[0]?.id ?? lastId
      }
      routes++
    }
    for (const block of section.blocks.filter(b => b.lang === 'sh')) {
      if (block.skip) { t.comment(`rest-api.md line ${block.line + 1}: skipped: ${block.skip}`); continue }
      for (const command of commands(block.body)) {
        const local = command.replaceAll('127.0.0.1:3000', `127.0.0.1:${h.port}`)
        t.ok(isPlainCurl(local), `rest-api.md: "${command.slice(0, 60)}" is a curl example`)
        const answer = await runCurl(shell, local)
        const documented = documentedAnswer(section.text)
        const what = `rest-api.md "${section.title}": ${command.slice(0, 60)}`
        if (documented) checkAnswer(t, what, documented, answer.status, answer.body, 'shape')
        else t.ok(answer.status >= 200 && answer.status < 300, `${what} answers 2xx (${answer.status})`)
      }
    }
  }
  t.ok(routes >= 8, `every documented route ran (${routes})`)
})

t.test('docs/protocol.md: every client frame sent on a real /ws, every server frame compared with a real one', async t => {
  const h = await build(t)
  const doc = read('docs/protocol.md')
  const alice = await h.token('alice', 'user')
  const published = await fetch(`${h.http}/api/notifications`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ category: 'dashboard', title: 'Report ready', message: 'Your export finished', data: { reportId: 7 }, action: { url: '/reports/7', label: 'Open' }, audience: { users: ['alice'] } })
  })
  const { id } = await published.json() as { id: string }
  const client = await connect(h.ws, { token: alice, query: { since: '0' } })
  t.teardown(() => client.close())
  // Real frames of every type the doc shows, to compare its server-frame examples with.
  const seen = new Map<string, Array<Record<string, unknown>>>()
  const keep = (f: Record<string, unknown> & { type: string }): void => { seen.set(f.type, [...seen.get(f.type) ?? [], f]) }
  keep(await client.nextOf('connected'))
  keep(await client.nextOf('notification'))
  keep(await client.nextOf('replayed'))

  let frames = 0
  for (const line of doc.split('\n')) {
    const cells = line.split(/(?<!\\)\|/).map(c => c.trim())
    if (!line.startsWith('|') || cells.length < 4) continue
    const sent = [...cells[1]!.matchAll(/`(\{"type":[^`]*\})`/g)].map(m => m[1]!)
    const reply = /`(\{[^`]*\})`/.exec(cells[2]!)?.[1]
    if (sent.length === 0 || reply === undefined) continue
    for (const example of sent) {
      const frame = JSON.parse(example.replace(/"…"|"[^"]*…"/g, JSON.stringify(id))) as Record<string, unknown>
      if (typeof frame.token === 'string' && frame.token.startsWith('<')) frame.token = await h.token('alice', 'user')
      const answer = await client.request(frame)
      keep(answer)
      t.equal(answer.type, 'reply', `protocol.md: ${example} is answered with a reply (${JSON.stringify(answer).slice(0, 200)})`)
      t.same(differences(parseDocumented(reply), answer.result, 'shape'), [], `protocol.md: the reply to ${example.slice(0, 50)} has the documented shape`)
      frames++
    }
  }
  t.ok(frames >= 6, `every client frame of the table was sent (${frames})`)

  // An error and an unread frame, as the doc's examples show them.
  keep(await client.request({ type: 'subscribe_category', id: 'r1', categories: ['admin'] }))
  const other = await connect(h.ws, { token: alice })
  t.teardown(() => other.close())
  await other.nextOf('connected')
  await client.request({ type: 'mark_read', ids: [id] })
  keep(await other.nextOf('unread'))
  await client.request({ type: 'mark_read', all: true })
  keep(await other.nextOf('unread'))

  for (const block of blocks(doc).filter(b => b.lang === 'json')) {
    let examples: unknown[]
    try {
      examples = [parseDocumented(block.body)]
    } catch {
      examples = block.body.split('\n').filter(l => l.trim() !== '').map(l => parseDocumented(l))
    }
    for (const example of examples) {
      const type = (example as { type: string }).type
      if (block.skip) { t.comment(`protocol.md line ${block.line + 1}: skipped: ${block.skip}`); continue }
      // The example matches one of the real frames of its type (an unread frame has two forms).
      const diffs = (seen.get(type) ?? []).map(real => differences(example, real, 'shape'))
      t.ok(diffs.length > 0, `protocol.md line ${block.line + 1}: a real ${type} frame was seen`)
      if (diffs.length > 0) t.same(diffs.find(d => d.length === 0) ?? diffs[0], [], `protocol.md line ${block.line + 1}: the ${type} example has a real frame's keys`)
    }
  }
})
