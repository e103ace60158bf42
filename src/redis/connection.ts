// Opens ioredis connections with bounded waits. ioredis is imported here, on
// demand, so that a library user who never asks for Redis never loads it.
import type { Redis, RedisOptions } from 'ioredis'

export interface RedisConnectionOptions {
  /** How long one command may wait for Redis before it fails (a publish then answers 503). */
  commandTimeoutMs?: number
  /** How long opening a connection may take. */
  connectTimeoutMs?: number
}

export const REDIS_DEFAULTS = { commandTimeoutMs: 2000, connectTimeoutMs: 2000 } as const

/** A Redis connection: an ioredis URL, an ioredis instance, or a factory of one. */
export type RedisSource = string | Redis | (() => Redis)

/**
 * Options for every connection: no offline queue (a command while Redis is away
 * fails at once instead of piling up), bounded command and connect timeouts, and
 * reconnection forever with a capped backoff.
 */
export function connectionOptions (opts: RedisConnectionOptions = {}): RedisOptions {
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: opts.commandTimeoutMs ?? REDIS_DEFAULTS.commandTimeoutMs,
    connectTimeout: opts.connectTimeoutMs ?? REDIS_DEFAULTS.connectTimeoutMs,
    retryStrategy: (times: number) => Math.min(100 * times, 1000)
  }
}

/** Opens (and waits for) a connection from a source; a URL is opened with connectionOptions(). */
export async function openRedis (source: RedisSource, opts: RedisConnectionOptions = {}): Promise<Redis> {
  let client: Redis
  if (typeof source === 'string') {
    const { Redis } = await import('ioredis')
    client = new Redis(source, connectionOptions(opts))
    // Connection errors reach callers as failed commands and failed health checks; ioredis
    // would otherwise print each reconnect attempt as an unhandled error event.
    client.on('error', () => {})
  } else {
    client = typeof source === 'function' ? source() : source
  }
  await ready(client)
  return client
}

/** Resolves when the client is ready, connecting it if it is not; rejects (and disconnects it) when the first connect fails. */
export async function ready (client: Redis): Promise<void> {
  if (client.status === 'ready') return
  try {
    if (client.status === 'wait' || client.status === 'end') await client.connect()
    else {
      await new Promise<void>((resolve, reject) => {
        const onReady = () => { client.off('error', onError); resolve() }
        const onError = (err: Error) => { client.off('ready', onReady); reject(err) }
        client.once('ready', onReady)
        client.once('error', onError)
      })
    }
  } catch (err) {
    client.disconnect()
    throw new Error(`Redis is not reachable: ${(err as Error).message}`)
  }
}

/** Whether a spec names Redis (redis:// or rediss://, with an optional /db). */
export function isRedisUrl (spec: string): boolean {
  return spec.startsWith('redis://') || spec.startsWith('rediss://')
}

/**
 * Key names of one deployment: every key starts with the prefix inside one hash
 * tag (prefix 'un:' gives '{un}:seq'), so every key of a script is in one
 * Redis Cluster slot.
 */
export function keyspace (prefix: string): string {
  if (typeof prefix !== 'string' || prefix === '' || /[{}]/.test(prefix)) {
    throw new TypeError(`Redis prefix must be a non-empty string without braces, got '${String(prefix)}'`)
  }
  return `{${prefix.replace(/:$/, '')}}:`
}
