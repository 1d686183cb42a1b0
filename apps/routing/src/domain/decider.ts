import {
  addressRefusal,
  canonicalAddress,
  type AddressPolicy,
  DomainError,
  type Actor,
  type DomainEvent,
  type NewEvent,
  type RouteKind,
  type RouteView,
  type StoredEvent,
} from '#contracts';

/**
 * The routing domain as pure functions: a route's, a host name's and an agent's state folded from their
 * events, and the decisions taken on them. The service loads, decides, appends; nothing here does I/O.
 */

export interface RouteTarget {
  host: string;
  port: number;
}

export interface RouteOptions {
  tlsToTarget: boolean;
}

export type RouteState =
  | { status: 'absent' }
  | {
      status: 'live' | 'removed';
      routeId: string;
      agentId: string;
      kind: RouteKind;
      hostname: string;
      target: RouteTarget;
      options: RouteOptions;
      revision: number;
      requestedAt: string;
      updatedAt: string;
      removedAt: string | null;
      removalReason: string | null;
      /** The request that created it, to recognise a retry of the same request. */
      requested: { target: RouteTarget; options: RouteOptions; commandId: string | null };
    };
export type ExistingRoute = Exclude<RouteState, { status: 'absent' }>;

export const initialRouteState: RouteState = { status: 'absent' };

export function evolveRoute(state: RouteState, event: DomainEvent): RouteState {
  switch (event.type) {
    case 'RouteRequested':
      if (state.status !== 'absent') return state;
      return {
        status: 'live',
        routeId: event.data.routeId,
        agentId: event.data.agentId,
        kind: event.data.kind,
        hostname: event.data.hostname,
        target: { ...event.data.target },
        options: { ...event.data.options },
        revision: 1,
        requestedAt: event.occurredAt,
        updatedAt: event.occurredAt,
        removedAt: null,
        removalReason: null,
        requested: {
          target: { ...event.data.target },
          options: { ...event.data.options },
          commandId: event.causationId,
        },
      };
    case 'RouteUpdated':
      if (state.status !== 'live') return state;
      return {
        ...state,
        target: { ...event.data.target },
        options: { ...event.data.options },
        revision: state.revision + 1,
        updatedAt: event.occurredAt,
      };
    case 'RouteRemoved':
      if (state.status !== 'live') return state;
      return {
        ...state,
        status: 'removed',
        removedAt: event.occurredAt,
        removalReason: event.data.reason,
        updatedAt: event.occurredAt,
      };
    default:
      return state;
  }
}

export function foldRoute(events: readonly StoredEvent[]): RouteState {
  return (events as DomainEvent[]).reduce(evolveRoute, initialRouteState);
}

export interface HostnameOwner {
  routeId: string;
  agentId: string;
  claimedAt: string;
}

export interface HostnameState {
  owner: HostnameOwner | null;
}

export const initialHostnameState: HostnameState = { owner: null };

export function evolveHostname(state: HostnameState, event: DomainEvent): HostnameState {
  switch (event.type) {
    case 'HostnameClaimed':
      return {
        owner: { routeId: event.data.routeId, agentId: event.data.agentId, claimedAt: event.occurredAt },
      };
    case 'HostnameReleased':
      return state.owner?.routeId === event.data.routeId ? { owner: null } : state;
    default:
      return state;
  }
}

export function foldHostname(events: readonly StoredEvent[]): HostnameState {
  return (events as DomainEvent[]).reduce(evolveHostname, initialHostnameState);
}

/** What routing needs to know about an agent: whether it can hold routes, and the address it owns. */
export type AgentState =
  { status: 'absent' } | { status: 'active' | 'deregistered'; agentId: string; publicAddress: string };
export type ActiveAgent = { status: 'active'; agentId: string; publicAddress: string };

export function evolveAgent(state: AgentState, event: DomainEvent): AgentState {
  switch (event.type) {
    case 'AgentEnrolled':
      return { status: 'active', agentId: event.data.agentId, publicAddress: event.data.publicAddress };
    case 'AgentDeregistered':
      return state.status === 'absent' ? state : { ...state, status: 'deregistered' };
    default:
      return state;
  }
}

export function foldAgent(events: readonly StoredEvent[]): AgentState {
  return (events as DomainEvent[]).reduce(evolveAgent, { status: 'absent' } as AgentState);
}

// ---------------------------------------------------------------------------------------------------
// Policies

/** An agent acts only for itself; admins (and the system) for any agent. */
export function checkRequester(actor: Actor, agentId: string): void {
  if (actor.kind === 'agent' && actor.id !== agentId) {
    throw new DomainError('forbidden', 'an agent can only request routes for itself', 'agentId');
  }
}

/** The route's agent must exist and not be deregistered. */
export function checkAgentUsable(agent: AgentState, agentId: string): asserts agent is ActiveAgent {
  if (agent.status === 'absent') throw new DomainError('not_found', `no agent ${agentId}`, 'agentId');
  if (agent.status === 'deregistered') {
    throw new DomainError('conflict', `agent ${agentId} is deregistered`, 'agentId');
  }
}

/**
 * The target, in its canonical spelling. Nobody may send traffic to an address the policy refuses (the
 * front itself, loopback, link-local, private ranges not allowed…); agents only to the address they
 * enrolled with; admins to any other host address (they answer for it).
 */
export function checkTarget(
  actor: Actor,
  agent: ActiveAgent,
  target: RouteTarget,
  policy: AddressPolicy,
): RouteTarget {
  const host = canonicalAddress(target.host);
  if (host === undefined) throw new DomainError('invalid', 'must be an IPv4 or IPv6 address', 'target.host');
  const refusal = addressRefusal(host, policy);
  if (refusal) throw new DomainError('invalid', refusal.message, 'target.host');
  if (actor.kind === 'agent' && host !== canonicalAddress(agent.publicAddress)) {
    throw new DomainError(
      'forbidden',
      `an agent may only route to its own address (${agent.publicAddress}), not ${host}`,
      'target.host',
    );
  }
  return { host, port: target.port };
}

/** Options with their defaults; TLS to the target exists only for http routes (tls-sni passes TLS through). */
export function checkOptions(kind: RouteKind, options: Partial<RouteOptions> | undefined): RouteOptions {
  const tlsToTarget = options?.tlsToTarget ?? false;
  if (kind === 'tls-sni' && tlsToTarget) {
    throw new DomainError(
      'invalid',
      'tls-sni routes pass TLS through to the target; tlsToTarget applies to http routes only',
      'options.tlsToTarget',
    );
  }
  return { tlsToTarget };
}

/** Reading, changing or removing a route: it must exist, and an agent may only touch its own. */
export function checkRouteAccess(route: RouteState, actor: Actor, routeId: string): ExistingRoute {
  if (route.status === 'absent') throw new DomainError('not_found', `no route ${routeId}`);
  if (actor.kind === 'agent' && route.agentId !== actor.id) {
    throw new DomainError('forbidden', 'an agent can only act on its own routes');
  }
  return route;
}

// ---------------------------------------------------------------------------------------------------
// Decisions

export interface RouteDefinition {
  routeId: string;
  agentId: string;
  kind: RouteKind;
  hostname: string;
  target: RouteTarget;
  options: RouteOptions;
}

const sameTarget = (a: RouteTarget, b: RouteTarget) => a.host === b.host && a.port === b.port;
const sameOptions = (a: RouteOptions, b: RouteOptions) => a.tlsToTarget === b.tlsToTarget;

/**
 * A new route: RouteRequested on an empty route aggregate. The route id comes from the command id, so a
 * route that already exists is this very request retried (nothing new to append) — unless the key was
 * reused for a different request, which is refused.
 */
export function decideRequestRoute(
  route: RouteState,
  definition: RouteDefinition,
): { events: NewEvent[]; existing: boolean } {
  if (route.status === 'absent') {
    return { events: [{ type: 'RouteRequested', data: { ...definition } }], existing: false };
  }
  const same =
    route.agentId === definition.agentId &&
    route.kind === definition.kind &&
    route.hostname === definition.hostname &&
    sameTarget(route.requested.target, definition.target) &&
    sameOptions(route.requested.options, definition.options);
  if (!same) {
    throw new DomainError(
      'conflict',
      'this Idempotency-Key was already used for a different route request; use a new key',
      'Idempotency-Key',
    );
  }
  return { events: [], existing: true };
}

export interface ClaimRequest {
  hostname: string;
  routeId: string;
  agentId: string;
}

/**
 * Claiming a host name for a route (appended with the host name's last sequence: of two racing claims
 * exactly one is appended). Free → claimed. Already claimed by this route → nothing to do (a retry).
 * Claimed by another route that holds it → 409. A claim whose route is gone, was removed, or has another
 * host name is stale (a request that stopped between its two appends, or a removal that did not release)
 * and is taken over — but a claim whose route does not exist yet is left alone for `graceMs`, because
 * that request may still be on its way.
 */
export function decideClaim(
  state: HostnameState,
  ownerRoute: RouteState,
  claim: ClaimRequest,
  now: Date,
  graceMs: number,
): NewEvent[] {
  const claimed: NewEvent = { type: 'HostnameClaimed', data: { ...claim } };
  const owner = state.owner;
  if (!owner) return [claimed];
  if (owner.routeId === claim.routeId) return [];
  const holds =
    ownerRoute.status === 'live' &&
    ownerRoute.routeId === owner.routeId &&
    ownerRoute.hostname === claim.hostname;
  if (holds) throw new DomainError('conflict', `${claim.hostname} is taken by another route`, 'hostname');
  if (ownerRoute.status === 'absent' && now.getTime() - Date.parse(owner.claimedAt) < graceMs) {
    throw new DomainError(
      'conflict',
      `${claim.hostname} is being claimed by another request; try again later`,
      'hostname',
    );
  }
  return [{ type: 'HostnameReleased', data: { hostname: claim.hostname, routeId: owner.routeId } }, claimed];
}

/** After RouteRequested: whether the claim still belongs to this route (a stale-claim takeover may have won). */
export function claimHeldBy(state: HostnameState, routeId: string): boolean {
  return state.owner?.routeId === routeId;
}

export interface RoutePatch {
  target?: RouteTarget;
  options?: Partial<RouteOptions>;
}

/** A new target and/or options: RouteUpdated with the full new values (revision + 1), or nothing if equal. */
export function decideUpdateRoute(
  route: RouteState,
  agent: AgentState,
  actor: Actor,
  routeId: string,
  patch: RoutePatch,
  policy: AddressPolicy,
): NewEvent[] {
  const existing = checkRouteAccess(route, actor, routeId);
  if (existing.status === 'removed') throw new DomainError('gone', `route ${routeId} was removed`);
  checkAgentUsable(agent, existing.agentId);
  const target = patch.target ? checkTarget(actor, agent, patch.target, policy) : existing.target;
  const options = checkOptions(existing.kind, { ...existing.options, ...patch.options });
  if (sameTarget(target, existing.target) && sameOptions(options, existing.options)) return [];
  return [{ type: 'RouteUpdated', data: { routeId, target, options } }];
}

/** RouteRemoved; removing a removed route decides nothing. */
export function decideRemoveRoute(
  route: RouteState,
  actor: Actor,
  routeId: string,
  reason: string,
): NewEvent[] {
  const existing = checkRouteAccess(route, actor, routeId);
  if (existing.status === 'removed') return [];
  return [{ type: 'RouteRemoved', data: { routeId, reason } }];
}

/** After a removal: release the host name, but only if this route still holds it. */
export function decideRelease(state: HostnameState, hostname: string, routeId: string): NewEvent[] {
  return state.owner?.routeId === routeId ? [{ type: 'HostnameReleased', data: { hostname, routeId } }] : [];
}

/** The route as the command answers it, before any proxy node reported on it. */
export function pendingView(route: ExistingRoute): RouteView {
  return {
    routeId: route.routeId,
    agentId: route.agentId,
    kind: route.kind,
    hostname: route.hostname,
    target: { ...route.target },
    options: { ...route.options },
    revision: route.revision,
    status: route.status === 'removed' ? 'removed' : 'pending',
    statusReason: route.status === 'removed' ? route.removalReason : null,
    applied: {},
    propagationMs: null,
    configVersion: null,
    requestedAt: route.requestedAt,
    updatedAt: route.updatedAt,
    removedAt: route.removedAt,
    nodes: [],
  };
}
