// `npm start`: the standalone server from the environment, closed gracefully on a signal.
// A configuration mistake prints one line and exits 1; a stack is only for real crashes.
import closeWithGrace from 'close-with-grace'
import { configErrorLine, startServer } from './start.js'

startServer().then(app => {
  closeWithGrace({ delay: 10_000, logger: { error: (msg: unknown) => app.log.error(msg) } }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'closing after an uncaught error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
  })
}, (err: unknown) => {
  console.error(configErrorLine(err) ?? err)
  process.exit(1)
})
