// User tokens: JWT, HS256 only (the algorithm list is pinned, so alg:none and
// every other algorithm are refused). Claims: sub (user id), role, exp.
// fast-jwt (the verifier behind @fastify/jwt) verifies synchronously with
// node:crypto, much cheaper than WebCrypto for what every WebSocket connect and
// every user REST request pays.
import { createSigner, createVerifier, TokenError as JwtError } from 'fast-jwt'
import type { User } from './schemas.js'

export interface VerifiedToken {
  user: User
  /** Epoch ms of `exp`, when the token has one. */
  expiresAt?: number
}

export class TokenError extends Error {}

export type TokenVerifier = (token: string) => Promise<VerifiedToken>

export function createTokenVerifier (secret: string): TokenVerifier {
  const verify = createVerifier({ key: Buffer.from(secret), algorithms: ['HS256'] })
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
    return {
      user: { id: payload.sub, role: payload.role },
      ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp * 1000 } : {})
    }
  }
}

export interface SignOptions {
  sub: string
  role: string
  /** A duration ('1h', '15m', '2 days') or seconds from now (negative: already expired, for tests). */
  expiresIn?: string | number
}

/** Signs a development/test token. Production tokens come from your identity provider. */
export async function signToken (secret: string, opts: SignOptions): Promise<string> {
  const exp = opts.expiresIn ?? '1h'
  const key = Buffer.from(secret)
  if (typeof exp === 'string') return createSigner({ key, algorithm: 'HS256', expiresIn: exp })({ sub: opts.sub, role: opts.role })
  const now = Math.floor(Date.now() / 1000)
  return createSigner({ key, algorithm: 'HS256', noTimestamp: true })({ sub: opts.sub, role: opts.role, iat: now, exp: now + exp })
}
