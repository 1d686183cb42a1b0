import { Controller, Get, Headers, Inject, Param, Query, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { DataSource } from 'typeorm';
import { z } from 'zod';
import { TokenVerifier } from '#auth';
import { DomainError, parseOrThrow } from '#contracts';
import { CommandBus } from '#messaging';
import { idParam, nameParam, visibleApp, visibleDeployment } from './apps.controller.js';
import { Auth, Authenticator, CurrentPrincipal, type Principal } from './auth.js';
import { DeploymentLogReader, LOG_TAIL_DEFAULT, LOG_TAIL_MAX } from './deployment-logs.js';

const sequence = z.coerce
  .number({ error: 'must be a sequence number' })
  .int('must be an integer')
  .min(0, 'must be at least 0')
  .max(Number.MAX_SAFE_INTEGER, 'is too large');

const logsQuery = z.strictObject({
  tail: z.coerce
    .number({ error: 'must be a number of lines' })
    .int('must be an integer')
    .min(1, `must be 1 to ${LOG_TAIL_MAX}`)
    .max(LOG_TAIL_MAX, `must be 1 to ${LOG_TAIL_MAX}`)
    .optional(),
  follow: z.enum(['true', 'false'], { error: 'must be true or false' }).optional(),
});

/**
 * `GET /api/v1/deployments/{id}/logs`: a deployment's output, for an admin or the agent it belongs to
 * (the same 403 for another agent's deployment and an unknown one). `GET /api/v1/apps/{name}/logs`: the
 * same for the app's running release, i.e. its serving deployment (`DeploymentLogReader.servingDeployment`:
 * the last one that succeeded; for a rollback, the rollback), with the app's 403/404 rules.
 *
 * JSON by default: `?tail=N` (1–5000, default 500) → `{ deploymentId, lines: [{ seq, t, s, x }], last }`,
 * `seq` being the stream sequence of a line's batch and `last` the deployment's last one.
 * With `Accept: text/event-stream` or `?follow=true`: Server-Sent Events, `event: lines` (`id:` = the
 * batch's stream sequence, data `{ lines }`) from the tail — or after `Last-Event-ID` — and then live, a
 * heartbeat comment every 15 s (the token checked again each time), the end at the token's expiry. A
 * finished deployment's stream sends what is stored, then `event: end` — unless it is its app's serving
 * deployment, whose output keeps coming (until another one replaces it). At most CL_LOG_STREAMS_MAX
 * streams at once (else 503).
 */
@Controller()
export class DeploymentLogsController {
  constructor(
    @Inject(DeploymentLogReader) private readonly logs: DeploymentLogReader,
    @Inject(DataSource) private readonly dataSource: DataSource,
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(Authenticator) private readonly authenticator: Authenticator,
    @Inject(TokenVerifier) private readonly verifier: TokenVerifier,
  ) {}

  @Get('deployments/:id/logs')
  @Auth('admin', 'agent')
  async logsOf(
    @Param('id') id: string,
    @Req() request: Request,
    @Res() response: Response,
    @Query() raw: unknown,
    @Headers('last-event-id') lastEventId: string | undefined,
    @CurrentPrincipal() principal: Principal,
  ): Promise<void> {
    const options = logsOptions(raw, lastEventId);
    const deploymentId = idParam(id);
    await visibleDeployment(this.dataSource, this.commands, principal, deploymentId);
    await this.answer(deploymentId, options, request, response, principal);
  }

  @Get('apps/:name/logs')
  @Auth('admin', 'agent')
  async logsOfApp(
    @Param('name') name: string,
    @Req() request: Request,
    @Res() response: Response,
    @Query() raw: unknown,
    @Headers('last-event-id') lastEventId: string | undefined,
    @CurrentPrincipal() principal: Principal,
  ): Promise<void> {
    const options = logsOptions(raw, lastEventId);
    const app = await visibleApp(this.dataSource, this.commands, principal, nameParam(name));
    const deploymentId = await this.logs.servingDeployment(app.appName);
    if (deploymentId === null) {
      throw new DomainError(
        'not_found',
        `app ${app.appName} serves no release yet: a deployment's output is at /deployments/{id}/logs`,
        'appName',
      );
    }
    await this.answer(deploymentId, options, request, response, principal);
  }

  /** The JSON tail, or the event stream when asked for one. */
  private async answer(
    deploymentId: string,
    options: LogsOptions,
    request: Request,
    response: Response,
    principal: Principal,
  ): Promise<void> {
    const wantsEvents = (request.headers.accept ?? '').includes('text/event-stream');
    const follow = options.follow === 'true' || (wantsEvents && options.follow !== 'false');
    if (!follow) {
      response.status(200).json(await this.logs.tail(deploymentId, options.tail));
      return;
    }
    const authorization = request.headers.authorization;
    // The guard verified the token; its expiry ends the stream.
    const claims = this.verifier.verify(authorization!.slice('Bearer '.length));
    await this.logs.follow({
      response,
      deploymentId,
      tail: options.tail,
      after: options.after,
      expiresAt: claims.exp * 1000,
      stillAuthorized: async () => {
        const again = await this.authenticator.authenticate(authorization);
        return principal.kind === 'admin'
          ? again.kind === 'admin'
          : again.kind === 'agent' && again.agentId === principal.agentId;
      },
    });
  }
}

interface LogsOptions {
  tail: number;
  follow?: 'true' | 'false';
  /** From `Last-Event-ID`: the last stream sequence the client saw. */
  after?: number;
}

/** The query and `Last-Event-ID` of a logs request, validated before anything is looked up. */
function logsOptions(raw: unknown, lastEventId: string | undefined): LogsOptions {
  const query = parseOrThrow(logsQuery, raw);
  const after =
    lastEventId !== undefined && lastEventId !== ''
      ? parseOrThrow(z.object({ 'Last-Event-ID': sequence }), { 'Last-Event-ID': lastEventId })[
          'Last-Event-ID'
        ]
      : undefined;
  return { tail: query.tail ?? LOG_TAIL_DEFAULT, follow: query.follow, after };
}
