import { Body, Controller, Delete, Get, Headers, HttpCode, Inject, Param, Post, Req } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { DataSource } from 'typeorm';
import { enrollmentTokenFormat, hashToken, refreshTokenFormat, TokenSigner } from '#auth';
import {
  agentLabels,
  approvedAddresses,
  clientAddress,
  DomainError,
  dnsLabel,
  ipAddress,
  label,
  natsUserPublicKey,
  parseOrThrow,
  registrationCommands,
  ValidationError,
  type AgentCredentialsResult,
  type AgentView,
  type AgentSubjectSet,
  type DeregisterResult,
  type EnrollResult,
  type IssueEnrollmentTokenResult,
} from '#contracts';
import { CommandBus, LastHeartbeats, laterOf } from '#messaging';
import { queryAgent, queryAgents } from '#persistence';
import { actorOf, Auth, CurrentPrincipal, type Principal } from './auth.js';
import type { ApiConfig } from './config.js';
import { commandIdOf } from './routes.controller.js';
import { SessionStore } from './sessions.js';

export const API_CONFIG = Symbol('API_CONFIG');

/** HTTP bodies, validated at the edge: the first bad field is named in the 400. */
const enrollBody = z.strictObject({
  token: enrollmentTokenFormat,
  agentId: dnsLabel.optional(),
  /** Where the agent is reached; the address it enrolls from when not given. */
  publicAddress: z
    .string({ error: 'must be a string' })
    .max(64, 'must be at most 64 characters')
    .pipe(ipAddress)
    .optional(),
  natsPublicKey: natsUserPublicKey,
  labels: agentLabels.optional(),
});
const refreshBody = z.strictObject({ refreshToken: refreshTokenFormat });
const deregisterBody = z.strictObject({ reason: label(200).optional() });

function tokenBody(maxTtl: number) {
  return z.strictObject({
    ttlSeconds: z
      .number({ error: 'must be a number' })
      .int('must be an integer')
      .min(60, 'must be at least 60 seconds')
      .max(maxTtl, `must be at most ${maxTtl} seconds`)
      .optional(),
    note: label(200).optional(),
    /** Addresses the enrolling agent may have although it does not connect from them, or shares them. */
    approvedAddresses: approvedAddresses.optional(),
  });
}

function agentIdParam(id: string): string {
  return parseOrThrow(z.object({ id: dnsLabel }), { id }).id;
}

/** `lastSeenAt` is the last heartbeat when one was recorded, else the last transition's time. */
function withHeartbeat(view: AgentView, heartbeats: LastHeartbeats): AgentView {
  const runtimes = heartbeats.runtimesOf(view.agentId);
  return {
    ...view,
    lastSeenAt: laterOf(view.lastSeenAt, heartbeats.of(view.agentId)),
    ...(runtimes ? { runtimes } : {}),
  };
}

export interface EnrollResponse {
  agentId: string;
  accessToken: string;
  accessTokenExpiresAt: string;
  refreshToken: string;
  refreshTokenExpiresAt: string;
  nats: { url: string; jwt: string };
  subjects: AgentSubjectSet;
}

@Controller()
export class AgentsController {
  constructor(
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(SessionStore) private readonly sessions: SessionStore,
    @Inject(TokenSigner) private readonly signer: TokenSigner,
    @Inject(DataSource) private readonly dataSource: DataSource,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    @Inject(LastHeartbeats) private readonly heartbeats: LastHeartbeats,
  ) {}

  private get natsUrl(): string {
    return this.config.CL_AGENT_NATS_URL ?? this.config.CL_NATS_URL;
  }

  @Post('enrollment-tokens')
  @HttpCode(201)
  @Auth('admin')
  async createEnrollmentToken(
    @Body() raw: unknown,
    @Headers('idempotency-key') key: string | undefined,
    @CurrentPrincipal() principal: Principal,
  ) {
    const body = parseOrThrow(tokenBody(this.config.CL_ENROLLMENT_TOKEN_MAX_TTL_S), raw ?? {});
    const commandId = commandIdOf(key);
    // A retry under the same key gets the same token back (derived, never stored) and appends nothing.
    const token = this.signer.enrollmentToken(actorOf(principal).id, commandId);
    const ttl = body.ttlSeconds ?? this.config.CL_ENROLLMENT_TOKEN_TTL_S;
    const expiresAt = new Date(Date.now() + ttl * 1000).toISOString();
    // The token goes back to the admin only; registration stores its hash.
    const result = await this.commands.execute<IssueEnrollmentTokenResult>(
      registrationCommands.issueEnrollmentToken,
      {
        tokenHash: hashToken(token),
        expiresAt,
        ...(body.note ? { note: body.note } : {}),
        ...(body.approvedAddresses ? { approvedAddresses: body.approvedAddresses } : {}),
      },
      { actor: actorOf(principal), commandId },
    );
    return { token, expiresAt: result.expiresAt };
  }

  @Post('agents/enroll')
  @HttpCode(201)
  async enroll(@Body() raw: unknown, @Req() request: IncomingMessage): Promise<EnrollResponse> {
    const body = parseOrThrow(enrollBody, raw);
    // The agent shows it holds its address by connecting from it; registration compares the two.
    const sourceAddress = clientAddress(
      request.socket.remoteAddress,
      request.headers['x-forwarded-for'],
      this.config.CL_TRUSTED_PROXIES,
    );
    if (sourceAddress === undefined) {
      throw new ValidationError([
        { field: 'X-Forwarded-For', message: 'must list IP addresses (set by a trusted proxy)' },
      ]);
    }
    const result = await this.commands.execute<EnrollResult>(
      registrationCommands.enroll,
      {
        tokenHash: hashToken(body.token),
        ...(body.agentId ? { agentId: body.agentId } : {}),
        publicAddress: body.publicAddress ?? sourceAddress,
        sourceAddress,
        natsPublicKey: body.natsPublicKey,
        labels: body.labels ?? {},
      },
      { actor: { kind: 'system', id: 'api-enrollment' } },
    );
    const refresh = await this.sessions.start(result.agentId);
    const access = this.signer.agentAccessToken(
      result.agentId,
      refresh.familyId,
      this.config.CL_ACCESS_TOKEN_TTL_S,
    );
    return {
      agentId: result.agentId,
      accessToken: access.token,
      accessTokenExpiresAt: access.expiresAt.toISOString(),
      refreshToken: refresh.refreshToken,
      refreshTokenExpiresAt: refresh.expiresAt.toISOString(),
      nats: { url: this.natsUrl, jwt: result.natsJwt },
      subjects: result.subjects,
    };
  }

  @Post('auth/refresh')
  @HttpCode(200)
  async refresh(@Body() raw: unknown) {
    const body = parseOrThrow(refreshBody, raw);
    // A deregistered agent is refused (401) by registration, which also ends its sessions.
    const rotated = await this.sessions.rotate(body.refreshToken, (agentId) =>
      this.commands.execute<AgentCredentialsResult>(
        registrationCommands.agentCredentials,
        { agentId },
        { actor: { kind: 'agent', id: agentId } },
      ),
    );
    const access = this.signer.agentAccessToken(
      rotated.agentId,
      rotated.issued.familyId,
      this.config.CL_ACCESS_TOKEN_TTL_S,
    );
    return {
      agentId: rotated.agentId,
      accessToken: access.token,
      accessTokenExpiresAt: access.expiresAt.toISOString(),
      refreshToken: rotated.issued.refreshToken,
      refreshTokenExpiresAt: rotated.issued.expiresAt.toISOString(),
      nats: { url: this.natsUrl, jwt: rotated.extra.natsJwt },
    };
  }

  @Get('agents')
  @Auth('admin')
  async list(): Promise<{ agents: AgentView[] }> {
    const agents = await queryAgents(this.dataSource);
    return { agents: agents.map((view) => withHeartbeat(view, this.heartbeats)) };
  }

  @Get('agents/:id')
  @Auth('admin', 'agent')
  async get(@Param('id') id: string, @CurrentPrincipal() principal: Principal): Promise<AgentView> {
    const agentId = this.ownAgent(principal, id);
    const view = await queryAgent(this.dataSource, agentId);
    if (!view) throw new DomainError('not_found', `no agent ${agentId}`);
    return withHeartbeat(view, this.heartbeats);
  }

  @Delete('agents/:id')
  @HttpCode(200)
  @Auth('admin', 'agent')
  async deregister(
    @Param('id') id: string,
    @Body() raw: unknown,
    @Headers('idempotency-key') key: string | undefined,
    @CurrentPrincipal() principal: Principal,
  ): Promise<DeregisterResult> {
    const agentId = this.ownAgent(principal, id);
    const body = parseOrThrow(deregisterBody, raw ?? {});
    const result = await this.commands.execute<DeregisterResult>(
      registrationCommands.deregister,
      { agentId, reason: body.reason ?? `deregistered by ${principal.kind}` },
      { actor: actorOf(principal), commandId: commandIdOf(key) },
    );
    await this.sessions.revokeAgent(agentId, 'agent deregistered');
    return result;
  }

  /** Admins act on any agent; an agent only on itself (403 otherwise, whether the other exists or not). */
  private ownAgent(principal: Principal, id: string): string {
    const agentId = agentIdParam(id);
    if (principal.kind === 'agent' && principal.agentId !== agentId) {
      throw new DomainError('forbidden', 'an agent can only act on itself');
    }
    return agentId;
  }
}
