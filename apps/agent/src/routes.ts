import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import {
  agentRouteSubject,
  IDEMPOTENCY_HEADER,
  isErrorBody,
  type AgentRouteCommand,
  type CommandReply,
  type CreateRouteBody,
  type ErrorBody,
  type ListRoutesQuery,
  type RouteCommandResult,
  type RouteListResult,
  type RouteView,
  type UpdateRouteBody,
} from '#contracts';

/** The routing service refused a request; `body.field` names what to fix. */
export class RouteRequestError extends Error {
  constructor(readonly body: ErrorBody) {
    super(`${body.error}: ${body.message}${body.field ? ` (${body.field})` : ''}`);
    this.name = 'RouteRequestError';
  }
}

export interface RouteRequestOptions {
  /** Retrying with the same key never makes a second route (NATS header `Idempotency-Key`). */
  idempotencyKey?: string;
  timeoutMs?: number;
}

/**
 * Route requests from the agent, over its own NATS connection: published on
 * `agents.<id>.out.req.routes.<command>` (the only prefix the broker lets it publish on), answered on its
 * own inbox. The connection must use the agent's inbox prefix (`_INBOX_<id>`).
 */
export class RouteRequests {
  constructor(
    private readonly connection: NatsConnection,
    private readonly agentId: string,
  ) {}

  private async send<T>(
    command: AgentRouteCommand,
    body: unknown,
    options: RouteRequestOptions = {},
  ): Promise<T> {
    const headers = natsHeaders();
    if (options.idempotencyKey !== undefined) headers.set(IDEMPOTENCY_HEADER, options.idempotencyKey);
    const message = await this.connection.request(
      agentRouteSubject(this.agentId, command),
      JSON.stringify(body),
      {
        timeout: options.timeoutMs ?? 10_000,
        headers,
      },
    );
    const reply = message.json<CommandReply<T>>();
    if (reply.ok) return reply.result;
    throw new RouteRequestError(
      isErrorBody(reply.error) ? reply.error : { error: 'internal', message: 'malformed reply' },
    );
  }

  /** A new route for this agent: `{ kind, subdomain | hostname, target, options? }`. */
  request(
    body: Omit<CreateRouteBody, 'agentId'>,
    options?: RouteRequestOptions,
  ): Promise<RouteCommandResult> {
    return this.send('request', body, options);
  }

  update(
    routeId: string,
    change: UpdateRouteBody,
    options?: RouteRequestOptions,
  ): Promise<RouteCommandResult> {
    return this.send('update', { routeId, ...change }, options);
  }

  remove(routeId: string, reason?: string, options?: RouteRequestOptions): Promise<RouteCommandResult> {
    return this.send('remove', reason === undefined ? { routeId } : { routeId, reason }, options);
  }

  get(routeId: string, options?: RouteRequestOptions): Promise<RouteView> {
    return this.send('get', { routeId }, options);
  }

  list(
    filters: Omit<ListRoutesQuery, 'agentId'> = {},
    options?: RouteRequestOptions,
  ): Promise<RouteListResult> {
    return this.send('list', filters, options);
  }
}

/** One route request with the agent's connection: `requestRoute(nc, id, { kind: 'http', subdomain, target })`. */
export function requestRoute(
  connection: NatsConnection,
  agentId: string,
  body: Omit<CreateRouteBody, 'agentId'>,
  options?: RouteRequestOptions,
): Promise<RouteCommandResult> {
  return new RouteRequests(connection, agentId).request(body, options);
}
