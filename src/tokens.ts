// User tokens: JWT, HS256 only (jose rejects alg:none and any other algorithm
// when the list is pinned). Claims: sub (user id), role, exp.
import { SignJWT, jwtVerify, errors } from 'jose'
import type { User } from './schemas.js'

export interface VerifiedToken {
  user: User
  /** Epoch ms of `exp`, when the token has one. */
  expiresAt?: number
}

export class TokenError extends Error {}

export type TokenVerifier = (token: string) => Promise<VerifiedToken>

export function createTokenVerifier (secret: string): TokenVerifier {
  const key = new TextEncoder().encode(secret)
  return async (token) => {
    let payload
    try {
      ({ payload } = await jwtVerify(token, key, { algorithms: ['HS256'] }))
    } catch (err) {
      if (err instanceof errors.JWTExpired) throw new TokenError('token expired')
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
  /** jose duration ('1h', '15m') or seconds from now. */
  expiresIn?: string | number
}

/** Signs a development/test token. Production tokens come from your identity provider. */
export async function signToken (secret: string, opts: SignOptions): Promise<string> {
  const exp = opts.expiresIn ?? '1h'
  return new SignJWT({ role: opts.role })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(opts.sub)
    .setIssuedAt()
    .setExpirationTime(typeof exp === 'number' ? Math.floor(Date.now() / 1000) + exp : exp)
    .sign(new TextEncoder().encode(secret))
}
