import { Body, Controller, Get, Headers, HttpCode, Inject, Param, Post, Query, Res } from '@nestjs/common';
import type { Response } from 'express';
import { DataSource } from 'typeorm';
import { z } from 'zod';
import {
  certificateCommands,
  certificateSerial,
  DomainError,
  dnsLabel,
  listCertificatesQuery,
  parseOrThrow,
  requestCertificateBody,
  revokeCertificateBody,
  type CaResult,
  type CertificateListResult,
  type CertificateView,
  type CrlResult,
  type IssueCertificateResult,
} from '#contracts';
import { CommandBus } from '#messaging';
import { queryCertificate, queryCertificates } from '#persistence';
import { commandIdOf } from './routes.controller.js';
import { actorOf, Auth, CurrentPrincipal, type Principal } from './auth.js';

const PEM_TYPE = 'application/x-pem-file';

function agentIdParam(id: string): string {
  return parseOrThrow(z.object({ agentId: dnsLabel }), { agentId: id }).agentId;
}

function serialParam(serial: string): string {
  return parseOrThrow(z.object({ serial: certificateSerial }), { serial }).serial;
}

/** An agent acts on itself only: another agent's id is 403 whether it exists or not. */
function checkSelf(principal: Principal, agentId: string): void {
  if (principal.kind === 'agent' && principal.agentId !== agentId) {
    throw new DomainError('forbidden', 'an agent can only act on its own certificates', 'agentId');
  }
}

/**
 * Certificates over HTTP. Signing and revoking go to the certificates service (which holds the CA and
 * applies the same rules to agents' NATS requests); lists and reads come from the certificates projection.
 * `ca.pem` and `crl.pem` are public: relying parties need them without credentials.
 */
@Controller()
export class CertificatesController {
  constructor(
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(DataSource) private readonly dataSource: DataSource,
  ) {}

  @Get('ca.pem')
  async caPem(@Res({ passthrough: true }) response: Response): Promise<string> {
    const ca = await this.commands.execute<CaResult>(
      certificateCommands.ca,
      {},
      {
        actor: { kind: 'system', id: 'api-public' },
      },
    );
    response.type(PEM_TYPE);
    response.setHeader('cache-control', 'public, max-age=300');
    response.setHeader('x-ca-fingerprint', ca.fingerprint);
    return ca.certificatePem;
  }

  @Get('crl.pem')
  async crlPem(@Res({ passthrough: true }) response: Response): Promise<string> {
    const crl = await this.commands.execute<CrlResult>(
      certificateCommands.crl,
      {},
      {
        actor: { kind: 'system', id: 'api-public' },
      },
    );
    response.type(PEM_TYPE);
    response.setHeader('cache-control', 'no-cache');
    response.setHeader('x-crl-number', crl.crlNumber);
    return crl.pem;
  }

  /** A CSR for the agent (`{ csr, replaces? }`): 201 with the new certificate, 200 for one issued before. */
  @Post('agents/:id/certificates')
  @Auth('admin', 'agent')
  async request(
    @Param('id') id: string,
    @Body() raw: unknown,
    @Headers('idempotency-key') key: string | undefined,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) response: Response,
  ): Promise<IssueCertificateResult> {
    const agentId = agentIdParam(id);
    checkSelf(principal, agentId);
    const body = parseOrThrow(requestCertificateBody, raw ?? {});
    const result = await this.commands.execute<IssueCertificateResult>(
      certificateCommands.issue,
      { agentId, ...body },
      { actor: actorOf(principal), commandId: commandIdOf(key) },
    );
    response.status(result.outcome === 'existing' ? 200 : 201);
    return result;
  }

  @Get('agents/:id/certificates')
  @Auth('admin', 'agent')
  async listOfAgent(
    @Param('id') id: string,
    @Query() query: unknown,
    @CurrentPrincipal() principal: Principal,
  ): Promise<CertificateListResult> {
    const agentId = agentIdParam(id);
    checkSelf(principal, agentId);
    const filters = parseOrThrow(listCertificatesQuery, query);
    if (filters.agentId !== undefined && filters.agentId !== agentId) {
      throw new DomainError('invalid', 'the path names the agent already', 'agentId');
    }
    return queryCertificates(this.dataSource, { ...filters, agentId });
  }

  /** Admin: every certificate (filters agentId, holder, status, name, limit, offset); agent: its own. */
  @Get('certificates')
  @Auth('admin', 'agent')
  async list(
    @Query() query: unknown,
    @CurrentPrincipal() principal: Principal,
  ): Promise<CertificateListResult> {
    const filters = parseOrThrow(listCertificatesQuery, query);
    if (principal.kind === 'agent') {
      if (filters.agentId !== undefined) checkSelf(principal, filters.agentId);
      if (filters.holder !== undefined && filters.holder !== principal.agentId) {
        throw new DomainError('forbidden', 'an agent can only list its own certificates', 'holder');
      }
      filters.agentId = principal.agentId;
    }
    return queryCertificates(this.dataSource, filters);
  }

  @Get('certificates/:serial')
  @Auth('admin', 'agent')
  async get(
    @Param('serial') raw: string,
    @CurrentPrincipal() principal: Principal,
  ): Promise<CertificateView> {
    const serial = serialParam(raw);
    const certificate = await queryCertificate(this.dataSource, serial);
    if (principal.kind === 'agent' && certificate?.agentId !== principal.agentId) {
      throw new DomainError('forbidden', 'an agent can only read its own certificates');
    }
    if (!certificate) throw new DomainError('not_found', `no certificate ${serial}`, 'serial');
    return certificate;
  }

  /** Admin: revoke one certificate (`{ reason?, detail? }`); it is in the next CRL. Again: 200, unchanged. */
  @Post('certificates/:serial/revoke')
  @HttpCode(200)
  @Auth('admin')
  async revoke(
    @Param('serial') raw: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key: string | undefined,
    @CurrentPrincipal() principal: Principal,
  ): Promise<unknown> {
    const serial = serialParam(raw);
    const parsed = parseOrThrow(revokeCertificateBody, body ?? {});
    return this.commands.execute(
      certificateCommands.revoke,
      { serial, ...parsed },
      { actor: actorOf(principal), commandId: commandIdOf(key) },
    );
  }
}
