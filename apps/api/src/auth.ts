import {
  createParamDecorator,
  Inject,
  Injectable,
  SetMetadata,
  UseGuards,
  applyDecorators,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { DataSource } from 'typeorm';
import { TokenVerifier, type PrincipalClaims } from '#auth';
import { DomainError, type Actor } from '#contracts';
import { isAdminTokenRevoked } from '#persistence';
import { SessionStore } from './sessions.js';

export type Principal =
  { kind: 'admin'; name: string; tokenId: string } | { kind: 'agent'; agentId: string; familyId: string };

export function actorOf(principal: Principal): Actor {
  return principal.kind === 'admin'
    ? { kind: 'admin', id: principal.name }
    : { kind: 'agent', id: principal.agentId };
}

/**
 * Authenticates `Authorization: Bearer <jwt>`: signature and claims (TokenVerifier, ES256 only), then
 * revocation — an admin token revoked by `cli admin token revoke` (admin_tokens projection), an agent
 * token whose family was revoked (reuse, deregistration) or whose agent is deregistered.
 */
@Injectable()
export class Authenticator {
  constructor(
    @Inject(TokenVerifier) private readonly verifier: TokenVerifier,
    @Inject(SessionStore) private readonly sessions: SessionStore,
    @Inject(DataSource) private readonly dataSource: DataSource,
  ) {}

  async authenticate(header: string | undefined): Promise<Principal> {
    const match = /^Bearer ([A-Za-z0-9_.-]{1,4096})$/.exec(header ?? '');
    if (!match)
      throw new DomainError('unauthorized', 'send an access token as `Authorization: Bearer <token>`');
    const claims: PrincipalClaims = this.verifier.verify(match[1]!);
    if (claims.kind === 'admin') {
      if (await isAdminTokenRevoked(this.dataSource, claims.jti))
        throw new DomainError('unauthorized', 'invalid or expired token');
      return { kind: 'admin', name: claims.name, tokenId: claims.jti };
    }
    if (!(await this.sessions.familyActive(claims.fam, claims.agentId))) {
      throw new DomainError('unauthorized', 'invalid or expired token');
    }
    return { kind: 'agent', agentId: claims.agentId, familyId: claims.fam };
  }
}

const ALLOWED = Symbol('ALLOWED_PRINCIPALS');
type PrincipalKind = Principal['kind'];

@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(Authenticator) private readonly authenticator: Authenticator,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const allowed = this.reflector.get<PrincipalKind[]>(ALLOWED, context.getHandler()) ?? [];
    const request = context.switchToHttp().getRequest<Request & { principal?: Principal }>();
    const principal = await this.authenticator.authenticate(request.headers.authorization);
    if (!allowed.includes(principal.kind)) {
      throw new DomainError('forbidden', `this needs an ${allowed.join(' or ')} token`);
    }
    request.principal = principal;
    return true;
  }
}

/** Requires a bearer token of one of these kinds; handlers check ownership (an agent acts on itself). */
export function Auth(...kinds: PrincipalKind[]) {
  return applyDecorators(SetMetadata(ALLOWED, kinds), UseGuards(AuthGuard));
}

export const CurrentPrincipal = createParamDecorator(
  (_data: unknown, context: ExecutionContext): Principal => {
    const request = context.switchToHttp().getRequest<Request & { principal?: Principal }>();
    if (!request.principal) throw new DomainError('unauthorized', 'not authenticated');
    return request.principal;
  },
);
