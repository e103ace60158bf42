// Starting the standalone server from the environment, with the address errors an
// operator makes turned into ConfigErrors, and the one line `npm start` prints for them.
import type { FastifyInstance } from 'fastify'
import { buildServer } from './build.js'
import { ConfigError, configFromEnv } from './config.js'

/** Listen errors that are the operator's address choice, not a crash. */
const ADDRESS_ERRORS: Record<string, string> = {
  EADDRINUSE: 'is already in use',
  EACCES: 'needs privileges this process does not have',
  EADDRNOTAVAIL: 'is not an address of this machine'
}

/** Reads the environment, builds the app and listens; a configuration mistake rejects with a ConfigError. */
export async function startServer (env: NodeJS.ProcessEnv = process.env): Promise<FastifyInstance> {
  const config = configFromEnv(env)
  const app = await buildServer(config)
  try {
    await app.listen({ port: config.port, host: config.host })
  } catch (err) {
    await app.close()
    const why = ADDRESS_ERRORS[(err as NodeJS.ErrnoException).code ?? '']
    if (why === undefined) throw err
    throw new ConfigError(`PORT/HOST: ${config.host}:${config.port} ${why}`)
  }
  return app
}

/** The one line printed for a configuration mistake; undefined for a real crash (printed with its stack). */
export function configErrorLine (err: unknown): string | undefined {
  return err instanceof ConfigError ? `unified-notifications: configuration error: ${err.message}` : undefined
}
