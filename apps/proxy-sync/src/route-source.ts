import type { RouteSpec } from '#haproxy';

/** A desired route, with what the projection knows about this node's reports of it. */
export interface SourcedRoute extends RouteSpec {
  /**
   * The revision this node last reported as applied (from the routes projection), so a restarted
   * proxy-sync does not append RouteApplied again for routes it already confirmed.
   */
  appliedRevision?: number | null;
  /** The event that made this revision: a report of it names that event as its cause. */
  cause?: RouteCause;
}

export interface RouteCause {
  eventId: string;
  correlationId: string;
}

/** A removed route that, as far as the source knows, this node still routes (it has not reported the drop). */
export interface RemovedRoute {
  routeId: string;
  /** The revision the node last applied. */
  revision: number;
  /** The removal: a drop report names it as its cause. */
  cause?: RouteCause;
}

export interface ListRoutesOptions {
  /** Wait until the source reflects the event log at least up to this sequence (an event's trigger). */
  minSequence?: number;
  /** Read everything again instead of what changed since the last read. */
  full?: boolean;
}

/**
 * Where the desired routes come from: every route that is not removed. The Postgres implementation reads
 * the routes projection; `minSequence` lets a caller triggered by an event wait until the projection has
 * caught up with that event (sources without a log position ignore it).
 */
export interface RouteSource {
  listRoutes(options?: ListRoutesOptions): Promise<SourcedRoute[]>;
  /**
   * Removed routes the source still shows this node routing, as of the last listRoutes(): a node that was
   * down or restarted when they were removed reports their drop once HAProxy no longer has them.
   */
  removedRoutes?(): readonly RemovedRoute[];
  close?(): Promise<void>;
}

/** Routes held in memory: for tests and benchmarks, where the caller changes them and calls reconcileSoon(). */
export class StaticRouteSource implements RouteSource {
  private routes: SourcedRoute[];

  constructor(routes: SourcedRoute[] = []) {
    this.routes = [...routes];
  }

  set(routes: SourcedRoute[]): void {
    this.routes = [...routes];
  }

  upsert(...routes: SourcedRoute[]): void {
    const byId = new Map(this.routes.map((route) => [route.routeId, route]));
    for (const route of routes) byId.set(route.routeId, route);
    this.routes = [...byId.values()];
  }

  remove(...routeIds: string[]): void {
    const gone = new Set(routeIds);
    this.routes = this.routes.filter((route) => !gone.has(route.routeId));
  }

  get size(): number {
    return this.routes.length;
  }

  async listRoutes(): Promise<SourcedRoute[]> {
    return [...this.routes];
  }
}
