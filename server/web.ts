// The notification-center page (GET /) and the client SDK as a browser module
// (GET /client.js), served from the build: web/ holds the page's HTML and CSS,
// `npm run build` compiles web/*.ts to dist/web and the SDK to dist/src/client.
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'

/** The package root: the nearest folder above this file with a package.json (the same from server/ and dist/server/). */
export function packageRoot (from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = resolve(from)
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir)
    if (up === dir) throw new Error(`no package.json above ${from}`)
    dir = up
  }
  return dir
}

// Only the page's own assets: web/ also holds its TypeScript sources and tsconfig.
const SERVED = /\.(html|css|js|svg|png|ico)$/

export async function webRoutes (app: FastifyInstance, opts: { root?: string } = {}): Promise<void> {
  const root = opts.root ?? packageRoot()
  const built = join(root, 'dist', 'web')
  const client = join(root, 'dist', 'src', 'client')
  if (!existsSync(join(built, 'app.js')) || !existsSync(join(client, 'index.js'))) {
    app.log.warn({ dir: built }, 'the notification-center page is not built: run `npm run build` (GET / and /client.js answer 404 until then)')
  }
  await app.register(fastifyStatic, {
    root: [join(root, 'web'), built],
    prefix: '/',
    index: 'index.html',
    allowedPath: pathName => pathName === '/' || SERVED.test(pathName)
  })
  app.get('/client.js', { schema: { hide: true } }, (_request, reply) => reply.sendFile('index.js', client))
}
