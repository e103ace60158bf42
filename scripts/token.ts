// npm run token -- --user alice --role user [--expires 1h]
// Prints a development JWT signed with NOTIFY_JWT_SECRET, or with the secret
// the standalone server generated in ./data on its first start.
import { existsSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { DEFAULT_SECRET_FILE, developmentSecret } from '../server/dev-secret.js'
import { signToken } from '../src/tokens.js'

const { values } = parseArgs({
  options: {
    user: { type: 'string' },
    role: { type: 'string', default: 'user' },
    expires: { type: 'string', default: '1h' }
  }
})

if (values.user === undefined) {
  console.error('usage: npm run token -- --user <id> [--role admin|moderator|user|viewer] [--expires 1h]')
  process.exit(2)
}

let secret = process.env.NOTIFY_JWT_SECRET
if (!secret) {
  if (!existsSync(DEFAULT_SECRET_FILE)) {
    console.error(`No NOTIFY_JWT_SECRET and no ${DEFAULT_SECRET_FILE}: start the server once (npm start) or set NOTIFY_JWT_SECRET.`)
    process.exit(1)
  }
  secret = developmentSecret(DEFAULT_SECRET_FILE).secret
}

console.log(await signToken(secret, { sub: values.user, role: values.role, expiresIn: values.expires }))
