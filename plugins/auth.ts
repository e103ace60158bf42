// Who is calling: a user (JWT, or the host app's own check) or a publisher
// (API key, or a user token with role admin). Failures are Fastify errors
// (401/403) so every route and the WebSocket upgrade answer in one shape.
import { hash } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { BadRequestError, ForbiddenError, InvalidTokenError, MissingCredentialsError, UnknownRoleError } from '../src/errors.js'
import type { RolePolicy } from '../src/policy.js'
import type { User } from '../src/schemas.js'
import { TokenError, type TokenVerifier, type VerifiedToken } from '../src/tokens.js'
import type { AuthenticateFn } from './options.js'

type Publisher = { kind: 'apiKey' } | { kind: 'user', user: User }

/** Whether a revocation refuses a user's token issued at `issuedAt` (epoch ms). */
export type RevocationCheck = (userId: string, issuedAt: number | undefined) => Promise<boolean>

// One-shot hash (node >= 20.12): cheaper than createHash, and every publish request pays it.
const sha256 = (s: string) => hash('sha256', s, 'base64url')

/** header.payload.signature in base64url: anything else cannot be a JWT, so it is not called a bad one. */
const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]*$/

export function bearerToken (request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (header === undefined) return undefined
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
  return match?.[1]
}

/**
 * API keys, kept and looked up as SHA-256 digests: a lookup's timing can only tell how much of the
 * digest of a guess matched, which says nothing about a key.
 */
export class ApiKeys {
  readonly #digests: ReadonlySet<string>
  /** Whether some key has the shape of a JWT: else a JWT-shaped token needs no digest to be told apart. */
  readonly #jwtShaped: boolean

  constructor (keys: readonly string[]) {
    this.#digests = new Set(keys.map(sha256))
    this.#jwtShaped = keys.some(k => JWT_SHAPE.test(k))
  }

  has (token: string): boolean {
    if (!this.#jwtShaped && JWT_SHAPE.test(token)) return false
    return this.#digests.has(sha256(token))
  }

  /** For a caller that has the digest already (one hash per request). */
  hasDigest (digest: string): boolean {
    return this.#digests.has(digest)
  }
}

/** What every door answers a token that a revocation refuses. */
export function revokedError (): Error {
  return new InvalidTokenError('access revoked: get a new token')
}

export class Auth {
  readonly verifyToken: TokenVerifier | undefined
  readonly #authenticate: AuthenticateFn | undefined
  readonly #apiKeys: ApiKeys
  readonly #policy: RolePolicy

  readonly #isRevoked: RevocationCheck | undefined

  constructor (opts: { verifyToken?: TokenVerifier, authenticate?: AuthenticateFn, apiKeys: readonly string[], policy: RolePolicy, isRevoked?: RevocationCheck }) {
    this.verifyToken = opts.verifyToken
    this.#isRevoked = opts.isRevoked
    this.#authenticate = opts.authenticate
    this.#apiKeys = new ApiKeys(opts.apiKeys)
    this.#policy = opts.policy
  }

  isApiKey (token: string): boolean {
    return this.#apiKeys.has(token)
  }

  readonly #credentials = new WeakMap<FastifyRequest, string>()

  /**
   * Who to count a request against (the publish rate limit): a digest of its bearer
   * credential, so the key itself is never kept, or its address when it has none.
   */
  credentialOf (request: FastifyRequest): string {
    let id = this.#credentials.get(request)
    if (id === undefined) {
      const token = bearerToken(request)
      id = token === undefined ? `ip:${request.ip}` : sha256(token)
      this.#credentials.set(request, id)
    }
    return id
  }

  /** The user behind a request; `queryToken` is the ?token= fallback that browsers need for WebSockets. */
  async user (request: FastifyRequest, queryToken?: string): Promise<VerifiedToken> {
    const verified = await this.unrevokedUser(request, queryToken)
    await this.#assertNotRevoked(verified)
    return verified
  }

  /**
   * user() without the revocation check, for a caller that reads the revocation along with other
   * state (the /ws handshake) and refuses with revokedError() itself.
   */
  async unrevokedUser (request: FastifyRequest, queryToken?: string): Promise<VerifiedToken> {
    let verified: VerifiedToken
    if (this.#authenticate) {
      const result = await this.#authenticate(request)
      if (result === null) throw new MissingCredentialsError()
      const { expiresAt, issuedAt, ...user } = result
      verified = {
        user: { id: user.id, role: user.role },
        ...(expiresAt !== undefined ? { expiresAt } : {}),
        ...(issuedAt !== undefined ? { issuedAt } : {})
      }
    } else {
      const header = bearerToken(request)
      if (header !== undefined && queryToken !== undefined && queryToken !== header) {
        throw new BadRequestError('Ambiguous credentials: the Authorization header and ?token= carry different tokens; send one')
      }
      return this.#userFromToken(header ?? queryToken)
    }
    if (!this.#policy.hasRole(verified.user.role)) throw new UnknownRoleError(verified.user.role)
    return verified
  }

  /** The user behind a bare token (also the Socket.IO handshake, which has no Fastify request). */
  async userFromToken (token: string | undefined): Promise<VerifiedToken> {
    const verified = await this.#userFromToken(token)
    await this.#assertNotRevoked(verified)
    return verified
  }

  async #userFromToken (token: string | undefined): Promise<VerifiedToken> {
    if (token === undefined || token === '') throw new MissingCredentialsError()
    if (this.isApiKey(token)) throw new ForbiddenError('An API key is not a user: this needs a user token (JWT)')
    if (!JWT_SHAPE.test(token)) throw new InvalidTokenError('not a JWT (header.payload.signature)')
    const verified = await this.#verify(token)
    if (!this.#policy.hasRole(verified.user.role)) throw new UnknownRoleError(verified.user.role)
    return verified
  }

  /** Every door (REST, /ws, Socket.IO) refuses a token issued before a revocation of its user. */
  async #assertNotRevoked (verified: VerifiedToken): Promise<void> {
    if (this.#isRevoked && await this.#isRevoked(verified.user.id, verified.issuedAt)) throw revokedError()
  }

  async #verify (token: string): Promise<VerifiedToken> {
    if (!this.verifyToken) throw new InvalidTokenError('tokens are not accepted by this server')
    try {
      return await this.verifyToken(token)
    } catch (err) {
      if (err instanceof TokenError) throw new InvalidTokenError(err.message)
      throw err
    }
  }

  readonly #users = new WeakMap<FastifyRequest, VerifiedToken>()

  /** onRequest hook for user routes: authenticates before the body is even parsed. */
  readonly requireUser = async (request: FastifyRequest): Promise<void> => {
    this.#users.set(request, await this.user(request))
  }

  /** onRequest hook for publisher routes (API key or admin token). */
  readonly requirePublisher = async (request: FastifyRequest): Promise<void> => {
    await this.publisher(request, 'Publishing')
  }

  /** onRequest hook for operator routes (stats, migration report): the same credentials as publishing. */
  readonly requireOperator = async (request: FastifyRequest): Promise<void> => {
    await this.publisher(request, 'This operator route')
  }

  /** The user that requireUser authenticated for this request. */
  userOf (request: FastifyRequest): User {
    const verified = this.#users.get(request)
    if (!verified) throw new Error('userOf() on a route without the requireUser hook')
    return verified.user
  }

  /** An API key, or a user whose role is admin; `purpose` names what is refused otherwise. */
  async publisher (request: FastifyRequest, purpose = 'Publishing'): Promise<Publisher> {
    const token = bearerToken(request)
    if (token !== undefined && this.#apiKeys.hasDigest(this.credentialOf(request))) return { kind: 'apiKey' }
    if (token === undefined && !this.#authenticate) throw new MissingCredentialsError()
    if (token !== undefined && !this.#authenticate && !JWT_SHAPE.test(token)) {
      throw new InvalidTokenError('neither an API key this server accepts nor a JWT')
    }
    const { user } = await this.user(request)
    if (user.role !== 'admin') throw new ForbiddenError(`${purpose} needs an API key or a token with role admin`)
    return { kind: 'user', user }
  }
}
