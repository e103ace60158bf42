// The development JWT secret: made on the first start without NOTIFY_JWT_SECRET and
// kept on disk, so `npm run token` signs with the secret the server verifies with.
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'

export const DEFAULT_SECRET_FILE = './data/.jwt-secret'

/** The development secret: read from `file`, or made and written there (0600) on first use. */
export function developmentSecret (file: string): { secret: string, created: boolean } {
  try {
    const secret = readFileSync(file, 'utf8').trim()
    if (secret.length >= 16) return { secret, created: false }
  } catch {}
  const secret = randomBytes(32).toString('base64url')
  mkdirSync(dirname(resolve(file)), { recursive: true })
  writeFileSync(file, secret + '\n', { mode: 0o600 })
  return { secret, created: true }
}
