import { z } from 'zod';
import { commandSubject } from './commands.js';
import { dnsLabel, hasControlCharacter, hostname, ipAddress, label, port, uuid } from './fields.js';
import { ROUTE_KINDS, type RouteKind } from './events/route.js';
import { agentSubjects } from './subjects.js';

/**
 * The routing service's commands (NATS request/reply from the API), the requests agents publish on their
 * own prefix, and the shapes of routes as clients see them. The service validates every payload again.
 */
export const ROUTING_SERVICE = 'routing';
export const routingCommands = {
  request: commandSubject(ROUTING_SERVICE, 'request-route'),
  update: commandSubject(ROUTING_SERVICE, 'update-route'),
  remove: commandSubject(ROUTING_SERVICE, 'remove-route'),
  get: commandSubject(ROUTING_SERVICE, 'get-route'),
} as const;

/** What an agent may ask on `agents.<id>.out.req.routes.<command>`. */
export const AGENT_ROUTE_COMMANDS = ['request', 'update', 'remove', 'get', 'list'] as const;
export type AgentRouteCommand = (typeof AGENT_ROUTE_COMMANDS)[number];

export function agentRouteSubject(agentId: string, command: AgentRouteCommand): string {
  return agentSubjects.request(agentId, `routes.${command}`);
}

/** What the routing service subscribes to: every agent's route requests (queue group `routing`). */
export const allAgentRouteRequests = agentSubjects.allOutbound('req.routes.*');

/** The NATS header an agent sets instead of HTTP's Idempotency-Key. */
export const IDEMPOTENCY_HEADER = 'Idempotency-Key';

/** An Idempotency-Key: 1 to 128 visible characters (it becomes part of message ids and route ids). */
export const idempotencyKey = z
  .string()
  .min(1, 'must be 1 to 128 visible characters')
  .max(128, 'must be 1 to 128 visible characters')
  .refine((value) => !hasControlCharacter(value) && !/\s/.test(value), {
    message: 'must be 1 to 128 visible characters',
  });

/** A target as clients send it: an IP literal (at most 45 characters, IPv6 with an IPv4 tail) and a port. */
export const routeTargetInput = z.strictObject({
  host: z.string({ error: 'must be a string' }).max(45, 'must be at most 45 characters').pipe(ipAddress),
  port,
});

export const routeOptionsInput = z.strictObject({
  tlsToTarget: z.boolean({ error: 'must be true or false' }).optional(),
});

const kind = z.enum(ROUTE_KINDS, { error: `must be one of ${ROUTE_KINDS.join(', ')}` });

const routeRequestFields = {
  kind,
  /** http: `<sub>.apps.<domain>`; tls-sni: `<name>.<zone>.<domain>`. */
  hostname: hostname.optional(),
  /** http only: the `<sub>` of `<sub>.apps.<domain>`. */
  subdomain: dnsLabel.optional(),
  target: routeTargetInput,
  options: routeOptionsInput.optional(),
};

type HostChoice = { kind: RouteKind; hostname?: string; subdomain?: string };

/** Exactly one of hostname and subdomain; subdomain only for http. */
function checkHostChoice(value: HostChoice, context: z.RefinementCtx): void {
  if (value.hostname !== undefined && value.subdomain !== undefined) {
    context.addIssue({
      code: 'custom',
      path: ['subdomain'],
      message: 'give hostname or subdomain, not both',
    });
  } else if (value.kind === 'tls-sni' && value.subdomain !== undefined) {
    context.addIssue({
      code: 'custom',
      path: ['subdomain'],
      message: 'tls-sni routes take a hostname <name>.<zone>.<domain>, not a subdomain',
    });
  } else if (value.hostname === undefined && value.subdomain === undefined) {
    context.addIssue({
      code: 'custom',
      path: [value.kind === 'http' ? 'subdomain' : 'hostname'],
      message:
        value.kind === 'http'
          ? 'give a subdomain (or a hostname <sub>.apps.<domain>)'
          : 'give a hostname <name>.<zone>.<domain>',
    });
  }
}

/** `POST /api/v1/routes` and the agents' `routes.request`: an admin names the agent, an agent may omit it. */
export const createRouteBody = z
  .strictObject({ agentId: dnsLabel.optional(), ...routeRequestFields })
  .superRefine(checkHostChoice);
export type CreateRouteBody = z.output<typeof createRouteBody>;

/** The command the routing service decides on: the agent is always named. */
export const requestRoutePayload = z
  .strictObject({ agentId: dnsLabel, ...routeRequestFields })
  .superRefine(checkHostChoice);
export type RequestRoutePayload = z.output<typeof requestRoutePayload>;

const patchFields = { target: routeTargetInput.optional(), options: routeOptionsInput.optional() };
const somethingToChange = (value: { target?: unknown; options?: unknown }) =>
  value.target !== undefined || value.options !== undefined;
const NOTHING_TO_CHANGE = { message: 'give target or options to change', path: ['target'] };

/** `PATCH /api/v1/routes/{id}`: a new target and/or options; the host name never changes. */
export const updateRouteBody = z.strictObject(patchFields).refine(somethingToChange, NOTHING_TO_CHANGE);
export type UpdateRouteBody = z.output<typeof updateRouteBody>;

export const updateRoutePayload = z
  .strictObject({ routeId: uuid, ...patchFields })
  .refine(somethingToChange, NOTHING_TO_CHANGE);
export type UpdateRoutePayload = z.output<typeof updateRoutePayload>;

export const removeRoutePayload = z.strictObject({ routeId: uuid, reason: label(200).optional() });
export type RemoveRoutePayload = z.output<typeof removeRoutePayload>;

export const getRoutePayload = z.strictObject({ routeId: uuid });

export const ROUTE_STATUSES = ['pending', 'active', 'failed', 'removed'] as const;
export type RouteStatus = (typeof ROUTE_STATUSES)[number];

/** Filters of `GET /api/v1/routes` and the agents' `routes.list`. */
export const listRoutesQuery = z.strictObject({
  agentId: dnsLabel.optional(),
  status: z.enum(ROUTE_STATUSES, { error: `must be one of ${ROUTE_STATUSES.join(', ')}` }).optional(),
  kind: kind.optional(),
  hostname: hostname.optional(),
  limit: z.coerce
    .number({ error: 'must be a number' })
    .int('must be an integer')
    .min(1, 'must be between 1 and 500')
    .max(500, 'must be between 1 and 500')
    .optional(),
  offset: z.coerce
    .number({ error: 'must be a number' })
    .int('must be an integer')
    .min(0, 'must be at least 0')
    .max(1_000_000, 'must be at most 1000000')
    .optional(),
});
export type ListRoutesQuery = z.output<typeof listRoutesQuery>;

/** What one proxy node reported for a route. */
export interface AppliedOnNode {
  revision: number;
  configVersion: number;
  propagationMs: number;
  at: string;
}

/** A route as the API and agents see it. */
export interface RouteView {
  routeId: string;
  agentId: string;
  kind: RouteKind;
  hostname: string;
  target: { host: string; port: number };
  options: { tlsToTarget: boolean };
  /** Definition events so far (requested = 1, each update + 1). */
  revision: number;
  status: RouteStatus;
  statusReason: string | null;
  applied: Record<string, AppliedOnNode>;
  propagationMs: number | null;
  configVersion: number | null;
  requestedAt: string;
  updatedAt: string;
  removedAt: string | null;
  /** Each known proxy node and whether it routes the current revision (stale nodes do not count). */
  nodes: RouteOnNode[];
}

export interface RouteOnNode {
  node: string;
  /** `applied`: routes this revision; `pending`: not yet; `stale`: the node stopped reporting. */
  state: 'applied' | 'pending' | 'stale';
  /** The revision the node last reported applied, if any. */
  appliedRevision: number | null;
}

/**
 * A route's status across the proxy nodes: `active` only when every node that is not stale routes the
 * current revision (one node having it is not enough for `?wait=active`); a node whose proxy-sync stopped
 * reporting is `stale` and waited for by no one. The nodes are those that report their status (the
 * proxy_nodes projection); without any, the projection's status stands.
 */
export function routeAcrossNodes(
  route: { status: RouteStatus; revision: number; applied: Record<string, AppliedOnNode> },
  nodeStatuses: Readonly<Record<string, string>>,
): { status: RouteStatus; nodes: RouteOnNode[] } {
  const names = [...new Set([...Object.keys(nodeStatuses), ...Object.keys(route.applied)])].sort();
  const nodes = names.map((node): RouteOnNode => {
    const appliedRevision = route.applied[node]?.revision ?? null;
    const state =
      nodeStatuses[node] === 'stale' ? 'stale' : appliedRevision === route.revision ? 'applied' : 'pending';
    return { node, state, appliedRevision };
  });
  // Only nodes that report their status count: a name seen only in old reports is listed, not waited for.
  const waitingFor = nodes.some((node) => node.state === 'pending' && node.node in nodeStatuses);
  return { status: route.status === 'active' && waitingFor ? 'pending' : route.status, nodes };
}

/** What a routing command did, and the route after it. */
export interface RouteCommandResult {
  outcome: 'created' | 'existing' | 'updated' | 'unchanged' | 'removed' | 'already-removed';
  route: RouteView;
}

export interface RouteListResult {
  routes: RouteView[];
  total: number;
}
