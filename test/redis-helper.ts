// Shared by the Redis tests: the Redis on this machine, a fresh key prefix per
// test, and the cleanup of every key a test file made. Not a .test.ts file.
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import type { Test } from 'tap'

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** A prefix family for one test file: prefix() gives a new prefix in it, and every key in it is deleted at the end. */
export function redisPrefixes (t: Test): { prefix: () => string, admin: Redis } {
  const family = `untest-${randomBytes(4).toString('hex')}`
  let n = 0
  // Fails (not skips) when Redis is absent: the first command rejects.
  const admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
  t.teardown(async () => {
    await deleteKeys(admin, `{${family}-*`)
    admin.disconnect()
  })
  return { prefix: () => `${family}-${++n}:`, admin }
}

export async function deleteKeys (redis: Redis, pattern: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) await redis.unlink(...keys)
  } while (cursor !== '0')
}
