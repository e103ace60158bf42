// Checks a SQLite store path before the server opens it, so a path that cannot
// work stops the start with one line naming the file instead of a stack or a hang.
import { mkdirSync, realpathSync, statSync, accessSync, constants } from 'node:fs'
import { dirname, resolve, sep } from 'node:path'
import Database from 'better-sqlite3'
import { ConfigError } from './config.js'

// Kernel pseudo-filesystems: opening a file there can block (a pipe, a tty) and can never hold a database.
const PSEUDO_FS = ['/proc', '/sys', '/dev']

/** The nearest existing ancestor of a path, resolved through symlinks. */
function existingAncestor (path: string): string {
  let dir = path
  for (;;) {
    try {
      return realpathSync(dir)
    } catch {
      const up = dirname(dir)
      if (up === dir) return dir
      dir = up
    }
  }
}

/** Throws a ConfigError naming the file when `sqlite:<path>` cannot be opened for writing as a database. */
export function checkSqlitePath (path: string, variable = 'NOTIFY_STORE'): void {
  if (path === ':memory:') return
  const file = resolve(path)
  const fail = (why: string): never => { throw new ConfigError(`${variable}: cannot use the SQLite file '${file}': ${why}`) }
  const real = existingAncestor(file)
  if (PSEUDO_FS.some(p => real === p || real.startsWith(p + sep))) fail(`${real} is a kernel pseudo-filesystem`)
  let stat
  try { stat = statSync(file) } catch {}
  if (stat !== undefined && !stat.isFile()) fail('it exists and is not a regular file')
  try {
    mkdirSync(dirname(file), { recursive: true })
    accessSync(dirname(file), constants.W_OK)
  } catch (err) {
    fail(`its directory cannot be created or written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  // A regular file on a real filesystem: opening it is bounded (busy timeout for a locked file).
  let db: Database.Database | undefined
  try {
    db = new Database(file, { timeout: 1000 })
    db.prepare('SELECT count(*) FROM sqlite_master').get()
  } catch (err) {
    fail((err as Error).message)
  } finally {
    db?.close()
  }
}
