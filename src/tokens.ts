// User tokens: JWT, HS256 only (the algorithm list is pinned, so alg:none and
// every other algorithm are refused). Claims: sub (user id), role, exp, iat.
// fast-jwt (the verifier behind @fastify/jwt) verifies synchronously with
// node:crypto, much cheaper than WebCrypto for what every WebSocket connect and
// every user REST request pays.
import { createSigner, createVerifier, TokenError as JwtError } from 'fast-jwt'
import type { User } from './schemas.js'

export interface VerifiedToken {
  user: User
  /** Epoch ms the token stops being honoured: `exp`, capped at `iat` + the maximum token age. */
  expiresAt?: number
  /** Epoch ms of `iat`, when the token has one (revocation compares against it). */
  issuedAt?: number
}


export class TokenError extends Error {}

export type TokenVerifier = (token: string) => Promise<VerifiedToken>

/** Longest a token is honoured after its `iat`, whatever its `exp` says (NOTIFY_MAX_TOKEN_AGE). */
export const DEFAULT_MAX_TOKEN_AGE_SECONDS = 24 * 3600

export interface TokenVerifierOptions {
  /** Longest a token is honoured, in seconds: from `iat`; a token with neither `iat` nor `exp` is refused. */
  maxAgeSeconds?: number
}

export function createTokenVerifier (secret: string, opts: TokenVerifierOptions = {}): TokenVerifier {
  const maxAgeMs = (opts.maxAgeSeconds ?? DEFAULT_MAX_TOKEN_AGE_SECONDS) * 1000
  // fast-jwt's maxAge refuses a token whose iat is older than maxAge (as 'expired').
  const verify = createVerifier({ key: Buffer.from(secret), algorithms: ['HS256'], maxAge: maxAgeMs })
  return async (token) => {
    let payload: Record<string, unknown>
    try {
      payload = verify(token)
    } catch (err) {
      if (err instanceof JwtError && err.code === JwtError.codes.expired) throw new TokenError('token expired')
      throw new TokenError('token signature or format is not valid')
    }
    if (typeof payload.sub !== 'string' || payload.sub === '') throw new TokenError("token has no 'sub' claim")
    if (typeof payload.role !== 'string' || payload.role === '') throw new TokenError("token has no 'role' claim")
    const exp = typeof payload.exp === 'number' ? payload.exp * 1000 : undefined
    const iat = typeof payload.iat === 'number' ? payload.iat * 1000 : undefined
    let expiresAt: number
    if (iat !== undefined) {
      expiresAt = exp === undefined ? iat + maxAgeMs : Math.min(exp, iat + maxAgeMs)
    } else if (exp !== undefined) {
      // Without iat the age cannot be counted: the token must end within the maximum age from now.
      if (exp > Date.now() + maxAgeMs) throw new TokenError(`token has no 'iat' claim and its 'exp' is further away than the maximum token age (${maxAgeMs / 1000} s)`)
      expiresAt = exp
    } else {
      throw new TokenError("token has neither 'exp' nor 'iat': it would never expire")
    }
    return {
      user: { id: payload.sub, role: payload.role },
      expiresAt,
      ...(iat !== undefined ? { issuedAt: iat } : {})
    }
  }
}

export interface SignOptions {
  sub: string
  role: string
  /** A duration ('1h', '15m', '2 days') or at least this many seconds from now (negative: already expired, for tests). */
  expiresIn?: string | number
}

/** Signs a development/test token. Production tokens come from your identity provider. */
export async function signToken (secret: string, opts: SignOptions): Promise<string> {
  const exp = opts.expiresIn ?? '1h'
  const key = Buffer.from(secret)
  if (typeof exp === 'string') return createSigner({ key, algorithm: 'HS256', expiresIn: exp })({ sub: opts.sub, role: opts.role })
  const nowMs = Date.now()
  const iat = Math.floor(nowMs / 1000)
  // exp is in whole seconds: rounded up, so the token lasts at least `exp` seconds (rounded down, a
  // one-second token signed late in a second could expire at once).
  // An explicit iat is kept by the signer (noTimestamp would drop it, and revocations need it).
  return createSigner({ key, algorithm: 'HS256' })({ sub: opts.sub, role: opts.role, iat, exp: Math.ceil(nowMs / 1000) + exp })
}
