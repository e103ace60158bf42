// `npm start`: the standalone server from the environment, closed gracefully on a signal.
import closeWithGrace from 'close-with-grace'
import { buildServer } from './build.js'
import { configFromEnv } from './config.js'

async function main (): Promise<void> {
  const config = configFromEnv()
  const app = await buildServer(config)
  closeWithGrace({ delay: 10_000, logger: { error: (msg: unknown) => app.log.error(msg) } }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'closing after an uncaught error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
  })
  await app.listen({ port: config.port, host: config.host })
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
