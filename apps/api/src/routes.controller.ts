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
  Query,
  Res,
} from '@nestjs/common';
import type { Response } from 'express';
import { DataSource } from 'typeorm';
import { z } from 'zod';
import {
  createRouteBody,
  DomainError,
  idempotencyKey,
  label,
  listRoutesQuery,
  parseOrThrow,
  routingCommands,
  updateRouteBody,
  uuid,
  ValidationError,
  type RouteCommandResult,
  type RouteListResult,
  type RouteView,
} from '#contracts';
import { CommandBus } from '#messaging';
import { queryRoute, queryRoutes } from '#persistence';
import { actorOf, Auth, CurrentPrincipal, type Principal } from './auth.js';
import { RouteWaiter } from './route-waiter.js';

/** `?wait=active&timeout=<ms>`: answer once the route is applied (or failed), within the timeout. */
const waitQuery = z.strictObject({
  wait: z.literal('active', { error: 'the only thing to wait for is "active"' }).optional(),
  timeout: z.coerce
    .number({ error: 'must be a number of milliseconds' })
    .int('must be an integer')
    .min(0, 'must be between 0 and 60000')
    .max(60_000, 'must be between 0 and 60000')
    .optional(),
});
const DEFAULT_WAIT_MS = 10_000;
/**
 * Route commands are idempotent by their command id (it names the route and the events' message ids):
 * one that got no answer in this long is sent again, so a routing replica killed with it in hand, or a
 * broker restart, costs a client seconds rather than a timeout.
 */
const ROUTE_COMMAND_RESEND_MS = 2_000;

const removeBody = z.strictObject({ reason: label(200).optional() });

export function commandIdOf(header: string | undefined): string | undefined {
  return header === undefined ? undefined : parseOrThrow(idempotencyKey, header, 'Idempotency-Key');
}

function routeIdParam(id: string): string {
  return parseOrThrow(z.object({ id: uuid }), { id }).id;
}

/**
 * Routes over HTTP. Commands go to the routing service (which decides, appends and applies the same rules
 * to agents' NATS requests); reads come from the routes projection. An agent acts on its own routes only.
 */
@Controller('routes')
export class RoutesController {
  constructor(
    @Inject(CommandBus) private readonly commands: CommandBus,
    @Inject(DataSource) private readonly dataSource: DataSource,
    @Inject(RouteWaiter) private readonly waiter: RouteWaiter,
  ) {}

  @Post()
  @Auth('admin', 'agent')
  async create(
    @Body() raw: unknown,
    @Query() query: unknown,
    @Headers('idempotency-key') key: string | undefined,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) response: Response,
  ): Promise<unknown> {
    const body = parseOrThrow(createRouteBody, raw ?? {});
    const wait = parseOrThrow(waitQuery, query);
    const commandId = commandIdOf(key);
    let agentId = body.agentId;
    if (principal.kind === 'agent') {
      agentId ??= principal.agentId;
      if (agentId !== principal.agentId) {
        throw new DomainError('forbidden', 'an agent can only request routes for itself', 'agentId');
      }
    } else if (agentId === undefined) {
      throw new ValidationError([
        { field: 'agentId', message: 'an admin must name the agent the route is for' },
      ]);
    }
    const result = await this.commands.execute<RouteCommandResult>(
      routingCommands.request,
      { ...body, agentId },
      { actor: actorOf(principal), commandId, resendAfterMs: ROUTE_COMMAND_RESEND_MS },
    );
    return this.answer(result.route, wait, response);
  }

  @Get()
  @Auth('admin', 'agent')
  async list(@Query() query: unknown, @CurrentPrincipal() principal: Principal): Promise<RouteListResult> {
    const filters = parseOrThrow(listRoutesQuery, query);
    if (principal.kind === 'agent') {
      if (filters.agentId !== undefined && filters.agentId !== principal.agentId) {
        throw new DomainError('forbidden', 'an agent can only list its own routes', 'agentId');
      }
      filters.agentId = principal.agentId;
    }
    return queryRoutes(this.dataSource, filters);
  }

  @Get(':id')
  @Auth('admin', 'agent')
  async get(@Param('id') id: string, @CurrentPrincipal() principal: Principal): Promise<RouteView> {
    const routeId = routeIdParam(id);
    const row = await queryRoute(this.dataSource, routeId);
    if (!row) {
      // Not projected yet (just requested): the routing service reads it from the log.
      return this.commands.execute<RouteView>(
        routingCommands.get,
        { routeId },
        { actor: actorOf(principal) },
      );
    }
    if (principal.kind === 'agent' && row.agentId !== principal.agentId) {
      throw new DomainError('forbidden', 'an agent can only act on its own routes');
    }
    return row;
  }

  @Patch(':id')
  @Auth('admin', 'agent')
  async update(
    @Param('id') id: string,
    @Body() raw: unknown,
    @Query() query: unknown,
    @Headers('idempotency-key') key: string | undefined,
    @CurrentPrincipal() principal: Principal,
    @Res({ passthrough: true }) response: Response,
  ): Promise<unknown> {
    const routeId = routeIdParam(id);
    const body = parseOrThrow(updateRouteBody, raw ?? {});
    const wait = parseOrThrow(waitQuery, query);
    const result = await this.commands.execute<RouteCommandResult>(
      routingCommands.update,
      { routeId, ...body },
      { actor: actorOf(principal), commandId: commandIdOf(key), resendAfterMs: ROUTE_COMMAND_RESEND_MS },
    );
    return this.answer(result.route, wait, response);
  }

  @Delete(':id')
  @HttpCode(202)
  @Auth('admin', 'agent')
  async remove(
    @Param('id') id: string,
    @Body() raw: unknown,
    @Headers('idempotency-key') key: string | undefined,
    @CurrentPrincipal() principal: Principal,
  ): Promise<RouteView> {
    const routeId = routeIdParam(id);
    const body = parseOrThrow(removeBody, raw ?? {});
    const result = await this.commands.execute<RouteCommandResult>(
      routingCommands.remove,
      { routeId, ...body },
      { actor: actorOf(principal), commandId: commandIdOf(key), resendAfterMs: ROUTE_COMMAND_RESEND_MS },
    );
    return result.route;
  }

  /**
   * 202 with the route as accepted. With `?wait=active`: 200 once the projection shows it active for its
   * revision, 502 with the route when a proxy node failed it, 202 with the current status on timeout.
   */
  private async answer(
    route: RouteView,
    wait: z.output<typeof waitQuery>,
    response: Response,
  ): Promise<unknown> {
    if (wait.wait !== 'active' || route.status === 'removed') {
      response.status(202);
      return route;
    }
    const settled =
      (await this.waiter.waitForRevision(route.routeId, route.revision, wait.timeout ?? DEFAULT_WAIT_MS)) ??
      route;
    if (settled.revision === route.revision && settled.status === 'active') {
      response.status(200);
      return settled;
    }
    if (settled.revision === route.revision && settled.status === 'failed') {
      response.status(502);
      return {
        error: 'unavailable',
        message: `no proxy node could apply route ${route.routeId} (revision ${route.revision}): ${settled.statusReason ?? 'no reason given'}`,
        route: settled,
      };
    }
    response.status(202);
    return settled;
  }
}
