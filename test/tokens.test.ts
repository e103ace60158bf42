// The maximum token age: a token without exp is honoured until iat + max age, a
// longer exp is capped there, a token with neither iat nor exp is refused, and
// the socket closes with 4001 at the capped time.
import { SignJWT, decodeJwt } from 'jose'
import t from 'tap'
import { resolveOptions } from '../plugins/options.js'
import { DEFAULT_MAX_TOKEN_AGE_SECONDS, TokenError, createTokenVerifier, signToken } from '../src/tokens.js'
import { SECRET, build, connect, refusedUpgrade, within } from './helper.js'

const key = new TextEncoder().encode(SECRET)
const now = () => Math.floor(Date.now() / 1000)

/** A token with exactly the claims given (jose adds none by itself). */
function sign (claims: { iat?: number, exp?: number }, sub = 'alice', role = 'user'): Promise<string> {
  const jwt = new SignJWT({ role }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub)
  if (claims.iat !== undefined) jwt.setIssuedAt(claims.iat)
  if (claims.exp !== undefined) jwt.setExpirationTime(claims.exp)
  return jwt.sign(key)
}

t.test('the verifier applies the maximum age', async t => {
  const verify = createTokenVerifier(SECRET, { maxAgeSeconds: 3600 })
  const iat = now() - 60

  const noExp = await verify(await sign({ iat }))
  t.equal(noExp.expiresAt, (iat + 3600) * 1000, 'no exp: honoured until iat + max age')
  t.equal(noExp.issuedAt, iat * 1000, 'iat is kept for revocation')

  const longExp = await verify(await sign({ iat, exp: iat + 30 * 86_400 }))
  t.equal(longExp.expiresAt, (iat + 3600) * 1000, 'an exp beyond iat + max age is capped')

  const shortExp = await verify(await sign({ iat, exp: iat + 600 }))
  t.equal(shortExp.expiresAt, (iat + 600) * 1000, 'an earlier exp stands')

  await t.rejects(verify(await sign({ iat: now() - 3700 })), new TokenError('token expired'), 'iat older than the max age: expired')
  await t.rejects(verify(await sign({ iat: now() - 3700, exp: now() + 3600 })), new TokenError('token expired'), 'even with a later exp')
  await t.rejects(verify(await sign({})), { message: "token has neither 'exp' nor 'iat': it would never expire" }, 'neither claim: refused')

  const noIat = await verify(await sign({ exp: now() + 600 }))
  t.equal(noIat.expiresAt, (now() + 600) * 1000, 'no iat, exp within the max age from now: honoured until exp')
  t.notOk('issuedAt' in noIat)
  await t.rejects(verify(await sign({ exp: now() + 7200 })), { message: /no 'iat' claim and its 'exp' is further away than the maximum token age \(3600 s\)/ }, 'no iat and a far exp: refused')
})

t.test('the default maximum age is 24 hours', async t => {
  const verify = createTokenVerifier(SECRET)
  const iat = now()
  t.equal((await verify(await sign({ iat, exp: iat + 7 * 86_400 }))).expiresAt, (iat + DEFAULT_MAX_TOKEN_AGE_SECONDS) * 1000)
  t.equal(DEFAULT_MAX_TOKEN_AGE_SECONDS, 86_400)
  t.equal(resolveOptions({ jwtSecret: SECRET }).maxTokenAgeSeconds, 86_400, 'and the plugin option defaults to it')
})

t.test('maxTokenAgeSeconds must be a positive whole number of seconds', async t => {
  for (const bad of [0, -1, 1.5, '60' as unknown as number]) {
    t.throws(() => resolveOptions({ jwtSecret: SECRET, maxTokenAgeSeconds: bad }), /maxTokenAgeSeconds must be a positive integer/, String(bad))
  }
})

t.test('a token without exp is refused at the handshake once iat + max age has passed, and closed 4001 at it while open', async t => {
  const h = await build(t, { maxTokenAgeSeconds: 2 })
  const old = await refusedUpgrade(h.ws, { token: await sign({ iat: now() - 5 }) })
  t.equal(old.statusCode, 401, 'older than the max age: 401 before the upgrade')
  const never = await refusedUpgrade(h.ws, { token: await sign({}) })
  t.equal(never.statusCode, 401, 'no iat, no exp: 401')

  const iat = now()
  const c = await connect(h.ws, { token: await sign({ iat, exp: iat + 3600 }) })
  t.equal((await c.next()).type, 'connected')
  const closed = await within(c.closed, 4000, 'the close at iat + max age')
  t.equal(closed.code, 4001, 'closed as expired at iat + max age, though exp was an hour away')
  t.ok(Date.now() >= (iat + 2) * 1000 - 50, 'not before iat + max age')

  const fresh = now()
  const r = await connect(h.ws, { token: await sign({ iat: fresh }, 'bob') })
  await r.next()
  const reply = await r.request({ type: 'refresh', token: await sign({ iat: fresh, exp: fresh + 3600 }, 'bob') })
  t.equal(reply.result.expiresAt, new Date((fresh + 2) * 1000).toISOString(), 'refresh reports the capped expiry')
  r.close()
})

t.test('signToken with seconds: the token lasts at least that long, whatever the moment in the second it is signed', async t => {
  for (let i = 0; i < 20; i++) {
    const before = Date.now()
    const claims = decodeJwt(await signToken('s'.repeat(32), { sub: 'u', role: 'user', expiresIn: 1 }))
    t.ok(claims.exp! * 1000 >= before + 1000, `exp ${claims.exp} is at least a second after ${before}`)
    t.ok(claims.exp! * 1000 < Date.now() + 2000, 'and less than two')
    await new Promise(resolve => setTimeout(resolve, 37))
  }
})
