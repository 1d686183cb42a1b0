import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Inject,
  Param,
  Patch,
  Post,
  Put,
  Query,
  Req,
  Res,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import { DataSource } from 'typeorm';
import { z } from 'zod';
import {
  appName,
  deploymentCommands,
  DEPLOYMENT_STATUSES,
  DomainError,
  dnsLabel,
  envName,
  isTerminalDeploymentStatus,
  label,
  parseOrThrow,
  secretValueInput,
  uuid,
  type AppView,
  type DeploymentView,
} from '#contracts';
import { CommandBus } from '#messaging';
import { appByName, deploymentById, deploymentsOfApp, queryApps } from '#persistence';
import { actorOf, Auth, CurrentPrincipal, type Principal } from './auth.js';
import { DeploymentUploads, isTarballRequest } from './deployment-uploads.js';
import { ProjectionWaiter } from './projection-waiter.js';
import { commandIdOf } from './routes.controller.js';

/** `?wait=succeeded&timeout=<ms>`: answer with the real end result, within the timeout (below Node's 300 s). */
const waitQuery = z.strictObject({
  wait: z.literal('succeeded', { error: 'the only thing to wait for is "succeeded"' }).optional(),
  timeout: z.coerce
    .number({ error: 'must be a number of milliseconds' })
    .int('must be an integer')
    .min(0, 'must be between 0 and 240000')
    .max(240_000, 'must be between 0 and 240000')
    .optional(),
});
const DEFAULT_WAIT_MS = 60_000;

const listQuery = z.strictObject({
  agentId: dnsLabel.optional(),
  status: z
    .enum(DEPLOYMENT_STATUSES, { error: `must be one of ${DEPLOYMENT_STATUSES.join(', ')}` })
    .optional(),
  limit: z.coerce
    .number({ error: 'must be a number' })
    .int()
    .min(1, 'must be 1 to 500')
    .max(500, 'must be 1 to 500')
    .optional(),
  offset: z.coerce.number({ error: 'must be a number' }).int().min(0, 'must be at least 0').optional(),
});
const secretBody = z.strictObject({ value: secretValueInput });
const cancelBody = z.strictObject({ reason: label(200).optional() });

export const nameParam = (name: string) => parseOrThrow(z.object({ name: appName }), { name }).name;
const secretParam = (secret: string) => parseOrThrow(z.object({ secret: envName }), { secret }).secret;
export const idParam = (id: string) => parseOrThrow(z.object({ id: uuid }), { id }).id;

/**
 * The deployment if the principal may see it: from the projection, or the log when it is not projected
 * yet (404 for an admin when it does not exist). An agent gets the same 403 for another agent's deployment
 * and for one that does not exist.
 */
export async function visibleDeployment(
  dataSource: DataSource,
  commands: CommandBus,
  principal: Principal,
  deploymentId: string,
): Promise<DeploymentView> {
  const row = await deploymentById(dataSource, deploymentId);
  if (!row) {
    return commands.execute<DeploymentView>(
      deploymentCommands.getDeployment,
      { deploymentId },
      { actor: actorOf(principal) },
    );
  }
  if (principal.kind === 'agent' && row.agentId !== principal.agentId) {
    throw new DomainError(
      'forbidden',
      `agent ${principal.agentId} has no deployment ${deploymentId}`,
      'deploymentId',
    );
  }
  return row;
}

/**
 * The app if the principal may see it: from the projection, or the log when it is not projected yet
 * (404 for an admin when it does not exist). An agent gets the same 403 for another agent's app and for
 * one that does not exist.
 */
export async function visibleApp(
  dataSource: DataSource,
  commands: CommandBus,
  principal: Principal,
  appName: string,
): Promise<AppView> {
  const row = await appByName(dataSource, appName);
  if (!row) {
    return commands.execute<AppView>(deploymentCommands.getApp, { appName }, { actor: actorOf(principal) });
  }
  if (principal.kind === 'agent' && row.agentId !== principal.agentId) {
    throw new DomainError('forbidden', `agent ${principal.agentId} has no app ${appName}`, 'appName');
  }
  return row;
}

/** The waiter of `?wait=succeeded`: one read per tick for every request waiting. */
export class DeploymentWaiter extends ProjectionWaiter<DeploymentView> {
  constructor(dataSource: DataSource) {
    super(
      async (ids) =>
        (await Promise.all(ids.map((id) => deploymentById(dataSource, id)))).filter(
          (view): view is DeploymentView => view !== undefined,
        ),
      (view) => view.deploymentId,
    );
  }
}

/**
 * Apps and their deployments over HTTP. Commands go to the deployments service (which validates the
 * bodies with the installation's policy, decides and appends); reads come from the projections. An agent
 * acts on its own apps only, and gets the same 403 whether another agent's app exists or not.
 */
@Controller()
export class AppsController {
  constructor(
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(DataSource) private readonly dataSource: DataSource,
    @Inject(DeploymentWaiter) private readonly waiter: DeploymentWaiter,
    @Inject(DeploymentUploads) private readonly uploads: DeploymentUploads,
  ) {}

  private execute<R>(subject: string, payload: unknown, principal: Principal, key?: string): Promise<R> {
    return this.commands.execute<R>(subject, payload, {
      actor: actorOf(principal),
      commandId: commandIdOf(key),
    });
  }

  @Post('apps')
  @HttpCode(201)
  @Auth('admin', 'agent')
  create(
    @Body() raw: unknown,
    @Headers('idempotency-key') key: string | undefined,
    @CurrentPrincipal() principal: Principal,
  ): Promise<AppView> {
    return this.execute<AppView>(deploymentCommands.createApp, raw ?? {}, principal, key);
  }

  @Get('apps')
  @Auth('admin', 'agent')
  async list(@Query() query: unknown, @CurrentPrincipal() principal: Principal) {
    const filters = parseOrThrow(listQuery.omit({ status: true }), query);
    if (principal.kind === 'agent') {
      if (filters.agentId !== undefined && filters.agentId !== principal.agentId) {
        throw new DomainError('forbidden', 'an agent can only list its own apps', 'agentId');
      }
      filters.agentId = principal.agentId;
    }
    return queryApps(this.dataSource, filters);
  }

  @Get('apps/:name')
  @Auth('admin', 'agent')
  async get(@Param('name') name: string, @CurrentPrincipal() principal: Principal): Promise<AppView> {
    return this.ownApp(nameParam(name), principal);
  }

  /** The app if the principal may see it (`visibleApp`). */
  private ownApp(appName: string, principal: Principal): Promise<AppView> {
    return visibleApp(this.dataSource, this.commands, principal, appName);
  }

  @Patch('apps/:name')
  @Auth('admin', 'agent')
  configure(
    @Param('name') name: string,
    @Body() raw: unknown,
    @Headers('idempotency-key') key: string | undefined,
    @CurrentPrincipal() principal: Principal,
  ): Promise<AppView> {
    return this.execute(
      deploymentCommands.configureApp,
      { appName: nameParam(name), patch: raw ?? {} },
      principal,
      key,
    );
  }

  @Put('apps/:name/secrets/:secret')
  @Auth('admin', 'agent')
  setSecret(
    @Param('name') name: string,
    @Param('secret') secret: string,
    @Body() raw: unknown,
    @Headers('idempotency-key') key: string | undefined,
    @CurrentPrincipal() principal: Principal,
  ) {
    const body = parseOrThrow(secretBody, raw ?? {});
    return this.execute(
      deploymentCommands.setSecret,
      { appName: nameParam(name), name: secretParam(secret), value: body.value },
      principal,
      key,
    );
  }

  @Delete('apps/:name/secrets/:secret')
  @Auth('admin', 'agent')
  removeSecret(
    @Param('name') name: string,
    @Param('secret') secret: string,
    @Headers('idempotency-key') key: string | undefined,
    @CurrentPrincipal() principal: Principal,
  ) {
    return this.execute(
      deploymentCommands.removeSecret,
      { appName: nameParam(name), name: secretParam(secret) },
      principal,
      key,
    );
  }

  /** JSON `{ ref? }` for a git app; the .tar.gz itself as the body (application/gzip) for an upload app. */
  @Post('apps/:name/deployments')
  @Auth('admin', 'agent')
  deploy(
    @Param('name') name: string,
    @Body() raw: unknown,
    @Query() query: unknown,
    @Headers('idempotency-key') key: string | undefined,
    @CurrentPrincipal() principal: Principal,
    @Req() request: Request,
    @Res({ passthrough: true }) response: Response,
  ): Promise<unknown> {
    if (isTarballRequest(request)) return this.deployUpload(name, query, key, principal, request, response);
    return this.startDeployment(deploymentCommands.request, name, raw, query, key, principal, response);
  }

  /**
   * Stores the tarball (hashed and counted as it comes), then asks for a deployment of it. Every check
   * that can be made first is: a refusal before the body is read stores nothing; the service checks the
   * stored upload again before it appends.
   */
  private async deployUpload(
    name: string,
    query: unknown,
    key: string | undefined,
    principal: Principal,
    request: Request,
    response: Response,
  ): Promise<unknown> {
    try {
      // First: a body too large, or of no declared size, is answered without reading it.
      this.uploads.declaredSize(request);
      const wait = parseOrThrow(waitQuery, query);
      const commandId = commandIdOf(key);
      const app = await this.ownApp(nameParam(name), principal);
      if (app.config.source.type !== 'upload') {
        throw new DomainError(
          'invalid',
          `${app.appName} deploys from git: give a ref (JSON), not a tarball`,
          'Content-Type',
        );
      }
      const upload = await this.uploads.receive(request);
      const deployment = await this.commands.execute<DeploymentView>(
        deploymentCommands.request,
        { appName: app.appName, request: {}, upload },
        { actor: actorOf(principal), commandId },
      );
      return await this.answer(deployment, wait, response);
    } catch (error) {
      const unread = !request.readableEnded;
      if (unread && error instanceof DomainError && ['too_large', 'length_required'].includes(error.code)) {
        // Not read at all: the connection closes after the answer rather than take what may never end.
        response.setHeader('Connection', 'close');
      } else if (unread) {
        // At most the declared size (within the limit) is left: read and dropped, so the client gets the answer.
        request.resume();
      }
      throw error;
    }
  }

  @Post('apps/:name/rollback')
  @Auth('admin', 'agent')
  rollback(
    @Param('name') name: string,
    @Body() raw: unknown,
    @Query() query: unknown,
    @Headers('idempotency-key') key: string | undefined,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) response: Response,
  ): Promise<unknown> {
    return this.startDeployment(deploymentCommands.rollback, name, raw, query, key, principal, response);
  }

  /** A deploy or a rollback: the service validates the request, then the answer waits if asked to. */
  private async startDeployment(
    subject: string,
    name: string,
    raw: unknown,
    query: unknown,
    key: string | undefined,
    principal: Principal,
    response: Response,
  ): Promise<unknown> {
    const wait = parseOrThrow(waitQuery, query);
    const deployment = await this.execute<DeploymentView>(
      subject,
      { appName: nameParam(name), request: raw ?? {} },
      principal,
      key,
    );
    return this.answer(deployment, wait, response);
  }

  @Get('apps/:name/deployments')
  @Auth('admin', 'agent')
  async deployments(
    @Param('name') name: string,
    @Query() query: unknown,
    @CurrentPrincipal() principal: Principal,
  ) {
    const app = await this.ownApp(nameParam(name), principal);
    const filters = parseOrThrow(listQuery.omit({ agentId: true }), query);
    return deploymentsOfApp(this.dataSource, app.appName, filters);
  }

  @Get('deployments/:id')
  @Auth('admin', 'agent')
  deployment(@Param('id') id: string, @CurrentPrincipal() principal: Principal): Promise<DeploymentView> {
    return visibleDeployment(this.dataSource, this.commands, principal, idParam(id));
  }

  @Post('deployments/:id/cancel')
  @HttpCode(202)
  @Auth('admin', 'agent')
  cancel(
    @Param('id') id: string,
    @Body() raw: unknown,
    @Headers('idempotency-key') key: string | undefined,
    @CurrentPrincipal() principal: Principal,
  ): Promise<DeploymentView> {
    const body = parseOrThrow(cancelBody, raw ?? {});
    return this.execute(deploymentCommands.cancel, { deploymentId: idParam(id), ...body }, principal, key);
  }

  /**
   * 202 with the deployment as accepted. With `?wait=succeeded`: 200 once it succeeded, 502 with the
   * deployment when it failed, was cancelled or abandoned (the message says where and why), 202 with where
   * it stands on timeout.
   */
  private async answer(
    deployment: DeploymentView,
    wait: z.output<typeof waitQuery>,
    response: Response,
  ): Promise<unknown> {
    response.setHeader('Location', `/api/v1/deployments/${deployment.deploymentId}`);
    if (wait.wait !== 'succeeded') {
      response.status(202);
      return deployment;
    }
    const settled =
      (await this.waiter.wait(
        deployment.deploymentId,
        (view) => isTerminalDeploymentStatus(view.status),
        wait.timeout ?? DEFAULT_WAIT_MS,
      )) ?? deployment;
    if (settled.status === 'succeeded') {
      response.status(200);
      return settled;
    }
    if (isTerminalDeploymentStatus(settled.status)) {
      response.status(502);
      const where = settled.failure ? `at ${settled.failure.phase}: ${settled.failure.reason}` : '';
      return {
        error: 'unavailable',
        message: `deployment ${settled.status} ${where}`.trim(),
        deployment: settled,
      };
    }
    response.status(202);
    return settled;
  }
}
