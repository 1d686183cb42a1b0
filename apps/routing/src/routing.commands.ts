import type { DataSource } from 'typeorm';
import {
  DomainError,
  type Actor,
  type AggregateType,
  type CommandEnvelope,
  type DomainEvent,
  type EventContext,
  type RemoveRoutePayload,
  type RequestRoutePayload,
  type RouteCommandResult,
  type RouteListResult,
  type RouteView,
  type StoredEvent,
  type UpdateRoutePayload,
  type AddressPolicy,
} from '#contracts';
import { commandHandler, contextOf, type AggregateHistory, type EventStore } from '#eventstore';
import {
  checkpointOf,
  liveRouteIdsOfAgent,
  liveRoutesOfDeregisteredAgents,
  queryRoute,
  queryRoutes,
  type RouteFilters,
} from '#persistence';
import type { Logger } from '#platform';
import {
  checkAgentUsable,
  checkOptions,
  checkRequester,
  checkRouteAccess,
  checkTarget,
  claimHeldBy,
  decideClaim,
  decideRelease,
  decideRemoveRoute,
  decideRequestRoute,
  decideUpdateRoute,
  evolveHostname,
  evolveRoute,
  foldAgent,
  foldHostname,
  foldRoute,
  initialHostnameState,
  initialRouteState,
  pendingView,
  type ExistingRoute,
  type RouteDefinition,
} from './domain/decider.js';
import { asUnavailable, CachedAggregateStore, retryTransient } from './cached-aggregate-store.js';
import { commandKey, routeIdFor } from './domain/ids.js';
import { checkNameAllowed, resolveHostname, type NamingRules } from './domain/names.js';

export interface RoutingOptions {
  rules: NamingRules;
  /** Which addresses may be targets at all (the one policy enrollment uses too). */
  addresses: AddressPolicy;
  claimGraceMs: number;
  projectionWaitMs: number;
}

/** The actor of what routing does by itself (removing a deregistered agent's routes, compensations). */
export const ROUTING_ACTOR: Actor = { kind: 'system', id: 'routing' };

const routeHandler = commandHandler({ evolve: evolveRoute, initialState: initialRouteState });
const hostnameHandler = commandHandler({ evolve: evolveHostname, initialState: initialHostnameState });

/**
 * The command side of routing. Every decision is a pure function of states folded from the log
 * (`domain/decider.ts`); this class loads them, appends with optimistic concurrency and message ids
 * derived from the command, and decides again when it loses a race.
 */
export class RoutingCommands {
  /** Every read and append goes through the cache (and so do the handlers' reloads after a lost race). */
  private readonly aggregates: CachedAggregateStore;

  constructor(
    private readonly store: EventStore,
    private readonly dataSource: DataSource,
    private readonly options: RoutingOptions,
    private readonly logger: Logger,
  ) {
    this.aggregates = new CachedAggregateStore(store);
  }

  private async load<S>(
    type: AggregateType,
    id: string,
    fold: (events: readonly StoredEvent[]) => S,
  ): Promise<{ state: S; history: AggregateHistory; lastSequence: number }> {
    const history = await this.aggregates.readAggregate(type, id);
    return { state: fold(history.events), history, lastSequence: history.lastSequence };
  }

  /** A broker that is busy or away is a 503 (retry with the same key), not an internal error. */
  private async guard<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw asUnavailable(error);
    }
  }

  /**
   * A new route. Order of appends: the host name is claimed first (HostnameClaimed with the host name's
   * last sequence: of racing requests exactly one wins), then RouteRequested (expected sequence 0 on the
   * route). Message ids come from the route id, which comes from the command id, so a retried request
   * completes a half-done one and appends nothing twice. Then two checks close the races the two appends
   * leave open: the claim must still be this route's (a stale-claim takeover), and the agent must not have
   * been deregistered meanwhile; otherwise the route is removed again and the request refused.
   */
  request(command: CommandEnvelope<RequestRoutePayload>): Promise<RouteCommandResult> {
    return this.guard(() => this.requestRoute(command));
  }

  private async requestRoute(command: CommandEnvelope<RequestRoutePayload>): Promise<RouteCommandResult> {
    const { payload, actor } = command;
    checkRequester(actor, payload.agentId);
    const resolved = resolveHostname(payload, this.options.rules);
    const agent = await this.load('agent', payload.agentId, foldAgent);
    checkAgentUsable(agent.state, payload.agentId);
    const foreignNamespace =
      resolved.namespace !== undefined && resolved.namespace !== payload.agentId && actor.kind !== 'agent';
    const namespaceAgentExists = foreignNamespace
      ? (await this.load('agent', resolved.namespace!, foldAgent)).state.status !== 'absent'
      : false;
    checkNameAllowed(resolved, actor, payload.agentId, namespaceAgentExists);
    const definition: RouteDefinition = {
      routeId: routeIdFor(actor, payload.agentId, command.commandId),
      agentId: payload.agentId,
      kind: payload.kind,
      hostname: resolved.hostname,
      target: checkTarget(actor, agent.state, payload.target, this.options.addresses),
      options: checkOptions(payload.kind, payload.options),
    };
    const context = contextOf(command);

    const before = await this.load('route', definition.routeId, foldRoute);
    const decided = decideRequestRoute(before.state, definition);
    if (decided.existing) {
      const route = before.state as ExistingRoute;
      if (route.status === 'live') await this.confirm(definition, context, agent.lastSequence, undefined);
      return { outcome: 'existing', route: await this.view(route) };
    }
    const claimSequence = await this.claim(definition, context);
    // A lost race here is the same request, retried concurrently, that appended it first: decided
    // again, it is this route existing, and nothing is appended.
    const { newState: route } = await routeHandler.handle(
      this.aggregates,
      { type: 'route', id: definition.routeId },
      (state) => decideRequestRoute(state, definition).events,
      { context, commandId: `route-requested:${definition.routeId}`, history: before.history },
    );
    await this.confirm(definition, context, agent.lastSequence, claimSequence);
    this.logger.info('route requested', {
      routeId: definition.routeId,
      agentId: definition.agentId,
      hostname: definition.hostname,
      by: actor,
    });
    return { outcome: 'created', route: await this.view(route as ExistingRoute) };
  }

  /** Claims the route's host name; returns the host name's last sequence once the claim is this route's. */
  private async claim(definition: RouteDefinition, context: EventContext): Promise<number> {
    const claim = { hostname: definition.hostname, routeId: definition.routeId, agentId: definition.agentId };
    const { state, events, lastSequence } = await hostnameHandler.handle(
      this.aggregates,
      { type: 'hostname', id: claim.hostname },
      async (state) => {
        const owner = state.owner;
        const ownerRoute =
          owner && owner.routeId !== claim.routeId
            ? (await this.load('route', owner.routeId, foldRoute)).state
            : initialRouteState;
        return decideClaim(state, ownerRoute, claim, new Date(), this.options.claimGraceMs);
      },
      {
        context,
        commandId: `hostname-claimed:${claim.routeId}`,
        // Racers for one name that keep losing: the client's answer is a 409 to retry, not a 500.
        whenContended: () =>
          new DomainError('conflict', `${claim.hostname} is contended; try again`, 'hostname'),
      },
    );
    if (events.length > 1) {
      this.logger.warn('took over a stale host name claim', {
        hostname: claim.hostname,
        staleRouteId: state.owner?.routeId,
        routeId: claim.routeId,
      });
    }
    return lastSequence;
  }

  /** The checks after RouteRequested (see `request`); undoes the route when one fails. */
  private async confirm(
    definition: RouteDefinition,
    context: EventContext,
    agentSequence: number,
    claimSequence: number | undefined,
  ): Promise<void> {
    const hostnameSubject = this.store.subjectOf('hostname', definition.hostname);
    if (
      claimSequence === undefined ||
      (await this.store.lastSequenceOfSubject(hostnameSubject)) !== claimSequence
    ) {
      const hostname = await this.load('hostname', definition.hostname, foldHostname);
      if (!claimHeldBy(hostname.state, definition.routeId)) {
        await this.removeRoute(
          definition.routeId,
          ROUTING_ACTOR,
          'the host name was claimed by another route',
          {
            ...context,
            actor: ROUTING_ACTOR,
          },
        );
        throw new DomainError('conflict', `${definition.hostname} is taken by another route`, 'hostname');
      }
    }
    const agentSubject = this.store.subjectOf('agent', definition.agentId);
    if ((await retryTransient(() => this.store.lastSequenceOfSubject(agentSubject))) !== agentSequence) {
      const agent = await this.load('agent', definition.agentId, foldAgent);
      if (agent.state.status === 'deregistered') {
        await this.removeRoute(definition.routeId, ROUTING_ACTOR, 'agent deregistered', {
          ...context,
          actor: ROUTING_ACTOR,
        });
        throw new DomainError('conflict', `agent ${definition.agentId} is deregistered`, 'agentId');
      }
    }
  }

  /** A new target and/or options (revision + 1); the same values again change nothing. */
  update(command: CommandEnvelope<UpdateRoutePayload>): Promise<RouteCommandResult> {
    return this.guard(() => this.updateRoute(command));
  }

  private async updateRoute(command: CommandEnvelope<UpdateRoutePayload>): Promise<RouteCommandResult> {
    const { actor, payload } = command;
    const { events, newState } = await routeHandler.handle(
      this.aggregates,
      { type: 'route', id: payload.routeId },
      async (state) => {
        const route = checkRouteAccess(state, actor, payload.routeId);
        const agent = await this.load('agent', route.agentId, foldAgent);
        return decideUpdateRoute(
          state,
          agent.state,
          actor,
          payload.routeId,
          { target: payload.target, options: payload.options },
          this.options.addresses,
        );
      },
      {
        context: contextOf(command),
        commandId: `route-updated:${payload.routeId}:${commandKey(actor, command.commandId)}`,
      },
    );
    // The decision passed checkRouteAccess: the route exists.
    return {
      outcome: events.length === 0 ? 'unchanged' : 'updated',
      route: await this.view(newState as ExistingRoute),
    };
  }

  remove(command: CommandEnvelope<RemoveRoutePayload>): Promise<RouteCommandResult> {
    const reason = command.payload.reason ?? `removed by ${command.actor.kind} ${command.actor.id}`;
    return this.guard(() =>
      this.removeRoute(command.payload.routeId, command.actor, reason, contextOf(command)),
    );
  }

  /**
   * RouteRemoved, then HostnameReleased if the route still holds its host name. Removing a removed route
   * appends nothing but still releases a claim a crash left behind.
   */
  async removeRoute(
    routeId: string,
    actor: Actor,
    reason: string,
    context: EventContext,
  ): Promise<RouteCommandResult> {
    const { events, newState } = await routeHandler.handle(
      this.aggregates,
      { type: 'route', id: routeId },
      (state) => decideRemoveRoute(state, actor, routeId, reason),
      { context, commandId: `route-removed:${routeId}` },
    );
    // The decision passed checkRouteAccess: the route exists.
    const route = newState as ExistingRoute;
    const outcome: RouteCommandResult['outcome'] = events.length > 0 ? 'removed' : 'already-removed';
    await this.release(route.hostname, routeId, context);
    if (outcome === 'removed')
      this.logger.info('route removed', { routeId, hostname: route.hostname, reason });
    return { outcome, route: await this.view(route) };
  }

  private async release(hostname: string, routeId: string, context: EventContext): Promise<void> {
    await hostnameHandler.handle(
      this.aggregates,
      { type: 'hostname', id: hostname },
      (state) => decideRelease(state, hostname, routeId),
      { context, commandId: `hostname-released:${routeId}` },
    );
  }

  /** One route, read from the log (so a route just requested is found) with its status from the projection. */
  get(actor: Actor, routeId: string): Promise<RouteView> {
    return this.guard(async () => {
      const history = await this.load('route', routeId, foldRoute);
      return this.view(checkRouteAccess(history.state, actor, routeId));
    });
  }

  /** An agent's routes (or any agent's, for an admin) from the routes projection. */
  async list(actor: Actor, filters: RouteFilters): Promise<RouteListResult> {
    if (actor.kind === 'agent') {
      if (filters.agentId !== undefined && filters.agentId !== actor.id) {
        throw new DomainError('forbidden', 'an agent can only list its own routes', 'agentId');
      }
      filters = { ...filters, agentId: actor.id };
    }
    return queryRoutes(this.dataSource, filters);
  }

  /** The projection's row when it has caught up with this state of the route, else the state itself. */
  private async view(route: ExistingRoute): Promise<RouteView> {
    const row = await queryRoute(this.dataSource, route.routeId);
    const current =
      row !== undefined &&
      row.revision === route.revision &&
      (row.status === 'removed') === (route.status === 'removed');
    return current ? row : pendingView(route);
  }

  /**
   * AgentDeregistered: every route of the agent is removed (and its host name released). The routes are
   * found in the projection once it has caught up with the deregistration, so none appended before it is
   * missed; a route appended after it is removed by its own request's check (`confirm`). Idempotent.
   */
  async removeRoutesOfAgent(event: StoredEvent): Promise<number> {
    const { agentId } = (event as Extract<DomainEvent, { type: 'AgentDeregistered' }>).data;
    const agent = await this.load('agent', agentId, foldAgent);
    if (agent.state.status !== 'deregistered') return 0;
    await this.waitForProjection('routes', event.sequence);
    const routeIds = await liveRouteIdsOfAgent(this.dataSource, agentId);
    const context: EventContext = {
      actor: ROUTING_ACTOR,
      correlationId: event.correlationId,
      causationId: event.id,
    };
    for (const routeId of routeIds) {
      await this.removeRoute(routeId, ROUTING_ACTOR, 'agent deregistered', context);
    }
    if (routeIds.length > 0)
      this.logger.info("deregistered agent's routes removed", { agentId, routes: routeIds.length });
    return routeIds.length;
  }

  /**
   * Repair, level-triggered: removes live routes of agents the projections show as deregistered. Catches
   * what the event handler cannot see — a route whose request appended it after the deregistration and
   * stopped before its own check. Each agent is confirmed deregistered in the log first.
   */
  async sweepDeregistered(limit = 500): Promise<number> {
    const rows = await liveRoutesOfDeregisteredAgents(this.dataSource, limit);
    let removed = 0;
    for (const row of rows) {
      const agent = await this.load('agent', row.agentId, foldAgent);
      if (agent.state.status !== 'deregistered') continue;
      // The cause is the agent's deregistration (the sweep found what its handler missed).
      const deregistration = agent.history.events.findLast((event) => event.type === 'AgentDeregistered');
      const context: EventContext = {
        actor: ROUTING_ACTOR,
        correlationId: deregistration?.correlationId ?? `sweep-${row.agentId}`,
        causationId: deregistration?.id ?? `sweep-${row.agentId}`,
      };
      const result = await this.removeRoute(row.routeId, ROUTING_ACTOR, 'agent deregistered', context);
      if (result.outcome === 'removed') removed++;
    }
    if (removed > 0) this.logger.warn('swept routes of deregistered agents', { removed });
    return removed;
  }

  private async waitForProjection(projection: string, sequence: number): Promise<void> {
    const deadline = Date.now() + this.options.projectionWaitMs;
    for (;;) {
      if ((await checkpointOf(this.dataSource, projection)) >= sequence) return;
      if (Date.now() > deadline) {
        throw new Error(
          `the ${projection} projection has not reached sequence ${sequence}; is the projector running?`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
