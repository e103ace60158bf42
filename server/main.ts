// `npm start`: the standalone server from the environment, closed gracefully on a signal.
// A configuration mistake prints one line and exits 1; a stack is only for real crashes.
import closeWithGrace from 'close-with-grace'
import { buildServer } from './build.js'
import { ConfigError, configFromEnv } from './config.js'

/** Listen errors that are the operator's address choice, not a crash. */
const ADDRESS_ERRORS: Record<string, string> = {
  EADDRINUSE: 'is already in use',
  EACCES: 'needs privileges this process does not have',
  EADDRNOTAVAIL: 'is not an address of this machine'
}

async function main (): Promise<void> {
  const config = configFromEnv()
  const app = await buildServer(config)
  closeWithGrace({ delay: 10_000, logger: { error: (msg: unknown) => app.log.error(msg) } }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'closing after an uncaught error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
  })
  try {
    await app.listen({ port: config.port, host: config.host })
  } catch (err) {
    const why = ADDRESS_ERRORS[(err as NodeJS.ErrnoException).code ?? '']
    if (why === undefined) throw err
    await app.close()
    throw new ConfigError(`PORT/HOST: ${config.host}:${config.port} ${why}`)
  }
}

main().catch(err => {
  if (err instanceof ConfigError) console.error(`unified-notifications: configuration error: ${err.message}`)
  else console.error(err)
  process.exit(1)
})
