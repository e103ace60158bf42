// npm run token -- --user alice --role user [--expires 1h]
// Prints a development JWT signed with NOTIFY_JWT_SECRET, or with the secret
// the standalone server generated in ./data on its first start.
import { existsSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { DEFAULT_SECRET_FILE, developmentSecret } from '../server/dev-secret.js'
import { DEFAULT_ROLES } from '../src/policy.js'
import { signToken } from '../src/tokens.js'

const { values } = parseArgs({
  options: {
    user: { type: 'string' },
    role: { type: 'string', default: 'user' },
    expires: { type: 'string', default: '1h' }
  }
})

const roles = Object.keys(DEFAULT_ROLES)
if (values.user === undefined) {
  console.error(`usage: npm run token -- --user <id> [--role ${roles.join('|')}] [--expires 1h]`)
  process.exit(2)
}

// The standalone server uses the default policy: a token for another role would only be refused with 403.
if (!roles.includes(values.role)) {
  console.error(`unknown role '${values.role}': the server's policy knows ${roles.join(', ')}`)
  process.exit(2)
}

let secret = process.env.NOTIFY_JWT_SECRET
if (secret === '') {
  // As the server does: an empty secret is a mistake, not a request for the development one.
  console.error('NOTIFY_JWT_SECRET is set but empty: unset it to use the development secret, or set the real one.')
  process.exit(1)
}
if (secret === undefined) {
  if (!existsSync(DEFAULT_SECRET_FILE)) {
    console.error(`No NOTIFY_JWT_SECRET and no ${DEFAULT_SECRET_FILE}: start the server once (npm start) or set NOTIFY_JWT_SECRET.`)
    process.exit(1)
  }
  secret = developmentSecret(DEFAULT_SECRET_FILE).secret
}

console.log(await signToken(secret, { sub: values.user, role: values.role, expiresIn: values.expires }))
