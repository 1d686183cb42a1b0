import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  allAgentRouteRequests,
  createRouteBody,
  getRoutePayload,
  IDEMPOTENCY_HEADER,
  idempotencyKey,
  listRoutesQuery,
  parseOrThrow,
  removeRoutePayload,
  updateRoutePayload,
  type CommandEnvelope,
} from '#contracts';
import { AgentRequestServer, type AgentRequest } from '#messaging';
import type { Logger } from '#platform';
import type { RoutingCommands } from './routing.commands.js';

/** Requests of one agent handled at once; more are refused (`unavailable`) instead of queued. */
export const MAX_IN_FLIGHT_PER_AGENT = 16;

/** The command an agent request carries: its Idempotency-Key header is the command id, as over HTTP. */
function envelopeOf<T>(request: AgentRequest, payload: T): CommandEnvelope<T> {
  const header = request.headers?.get(IDEMPOTENCY_HEADER) || undefined;
  return {
    commandId: header === undefined ? randomUUID() : parseOrThrow(idempotencyKey, header, IDEMPOTENCY_HEADER),
    actor: request.actor,
    correlationId: request.correlationId,
    payload,
  };
}

/**
 * Route requests agents publish on their own prefix, `agents.<id>.out.req.routes.<command>`, with the same
 * rules as over HTTP.
 */
export function agentRouteRequests(
  connection: NatsConnection,
  commands: RoutingCommands,
  logger: Logger,
): AgentRequestServer {
  return new AgentRequestServer(
    connection,
    {
      subject: allAgentRouteRequests,
      queue: 'routing',
      topic: 'route',
      maxBodyBytes: 64 * 1024,
      maxInFlightPerAgent: MAX_IN_FLIGHT_PER_AGENT,
      commands: {
        request: async (request) => {
          const parsed = parseOrThrow(createRouteBody, request.body);
          return commands.request(
            envelopeOf(request, { ...parsed, agentId: parsed.agentId ?? request.agentId }),
          );
        },
        update: async (request) =>
          commands.update(envelopeOf(request, parseOrThrow(updateRoutePayload, request.body))),
        remove: async (request) =>
          commands.remove(envelopeOf(request, parseOrThrow(removeRoutePayload, request.body))),
        get: async (request) =>
          commands.get(request.actor, parseOrThrow(getRoutePayload, request.body).routeId),
        list: async (request) => commands.list(request.actor, parseOrThrow(listRoutesQuery, request.body)),
      },
    },
    logger,
  );
}
