import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { z } from 'zod';
import { adminNameSchema, DomainError, dnsLabel } from '#contracts';

export const TOKEN_ISSUER = 'cloudlunacy';
export const TOKEN_AUDIENCE = 'cloudlunacy-api';
/** The only algorithm tokens are signed with and the only one accepted on verify. */
export const TOKEN_ALGORITHM = 'ES256' as const;

export const adminName = adminNameSchema;

const agentClaims = z.object({
  kind: z.literal('agent'),
  sub: z.string().regex(/^agent:/),
  agentId: dnsLabel,
  /** The refresh-token family this access token belongs to: revoking the family revokes the token. */
  fam: z.uuid(),
  jti: z.string().min(1),
  iat: z.number(),
  exp: z.number(),
});
const adminClaims = z.object({
  kind: z.literal('admin'),
  sub: z.string().regex(/^admin:/),
  name: adminName,
  jti: z.uuid(),
  iat: z.number(),
  exp: z.number(),
});
export const principalClaims = z.discriminatedUnion('kind', [agentClaims, adminClaims]);
export type AgentClaims = z.output<typeof agentClaims>;
export type AdminClaims = z.output<typeof adminClaims>;
export type PrincipalClaims = z.output<typeof principalClaims>;

export interface SignedToken {
  token: string;
  id: string;
  expiresAt: Date;
}

/** Signs access and admin tokens with the installation's private key (ES256). */
export class TokenSigner {
  constructor(private readonly privateKeyPem: string) {}

  private sign(
    payload: Record<string, unknown>,
    subject: string,
    ttlSeconds: number,
    id: string,
  ): SignedToken {
    const now = Math.floor(Date.now() / 1000);
    const token = jwt.sign({ ...payload, iat: now, exp: now + ttlSeconds }, this.privateKeyPem, {
      algorithm: TOKEN_ALGORITHM,
      issuer: TOKEN_ISSUER,
      audience: TOKEN_AUDIENCE,
      subject,
      jwtid: id,
    });
    return { token, id, expiresAt: new Date((now + ttlSeconds) * 1000) };
  }

  agentAccessToken(agentId: string, familyId: string, ttlSeconds: number): SignedToken {
    return this.sign({ kind: 'agent', agentId, fam: familyId }, `agent:${agentId}`, ttlSeconds, randomUUID());
  }

  adminToken(name: string, ttlSeconds: number, id: string = randomUUID()): SignedToken {
    return this.sign({ kind: 'admin', name }, `admin:${name}`, ttlSeconds, id);
  }

  /** A new enrollment token: random, or the same one for every retry of an admin's Idempotency-Key. */
  enrollmentToken(admin: string, idempotencyKey?: string): string {
    return idempotencyKey === undefined
      ? newEnrollmentToken()
      : enrollmentTokenFor(this.privateKeyPem, admin, idempotencyKey);
  }
}

/**
 * Verifies bearer tokens: signature with the public key and only ES256 (so `alg: none` and HS256 signed
 * with the public key as a secret are refused), issuer, audience, expiry, then the claims' shape.
 * Every failure is the same 401, so a caller learns nothing about why.
 */
export class TokenVerifier {
  constructor(private readonly publicKeyPem: string) {}

  verify(token: string): PrincipalClaims {
    let decoded: unknown;
    try {
      decoded = jwt.verify(token, this.publicKeyPem, {
        algorithms: [TOKEN_ALGORITHM],
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        clockTolerance: 5,
      });
    } catch {
      throw new DomainError('unauthorized', 'invalid or expired token');
    }
    const parsed = principalClaims.safeParse(decoded);
    if (!parsed.success) throw new DomainError('unauthorized', 'invalid or expired token');
    const claims = parsed.data;
    const expectedSubject = claims.kind === 'agent' ? `agent:${claims.agentId}` : `admin:${claims.name}`;
    if (claims.sub !== expectedSubject) throw new DomainError('unauthorized', 'invalid or expired token');
    return claims;
  }
}

/** SHA-256 of a secret token as lower-case hex: what is stored instead of the token. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === right.length && timingSafeEqual(left, right);
}

const ENROLLMENT_PREFIX = 'clenr_';
const REFRESH_PREFIX = 'clref_';

/** The shape of tokens this installation hands out: a prefix and 32 random bytes in base64url. */
export const enrollmentTokenFormat = z
  .string({ error: 'must be a string' })
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters')
  .regex(/^clenr_[A-Za-z0-9_-]{43}$/, 'must be an enrollment token (clenr_…)');
export const refreshTokenFormat = z
  .string({ error: 'must be a string' })
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters')
  .regex(/^clref_[A-Za-z0-9_-]{43}$/, 'must be a refresh token (clref_…)');

export function newEnrollmentToken(): string {
  return ENROLLMENT_PREFIX + randomBytes(32).toString('base64url');
}

/**
 * The enrollment token of a request retried under one Idempotency-Key: derived with a keyed hash from a
 * secret of the installation, the admin and the key, so a retry answers the same token while the token
 * itself is stored nowhere (the log keeps its hash, as for random ones). Without the secret it cannot
 * be guessed from the key.
 */
export function enrollmentTokenFor(secret: string, admin: string, idempotencyKey: string): string {
  const mac = createHmac('sha256', secret).update(`enrollment-token\0${admin}\0${idempotencyKey}`, 'utf8');
  return ENROLLMENT_PREFIX + mac.digest().toString('base64url');
}

export function newRefreshToken(): string {
  return REFRESH_PREFIX + randomBytes(32).toString('base64url');
}
