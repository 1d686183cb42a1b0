import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { RouteView } from '#contracts';
import { queryRoutesByIds } from '#persistence';
import { ProjectionWaiter } from './projection-waiter.js';

/**
 * `?wait=active`: until the routes projection shows a route settled for a revision — active on every proxy
 * node that is not stale, or failed (or removed, or a newer revision) — or the time is up.
 */
@Injectable()
export class RouteWaiter extends ProjectionWaiter<RouteView> {
  constructor(@Inject(DataSource) dataSource: DataSource) {
    super(
      (ids) => queryRoutesByIds(dataSource, ids),
      (route) => route.routeId,
    );
  }

  /** The route once settled; on timeout the last row seen (undefined if the projection has none yet). */
  waitForRevision(routeId: string, revision: number, timeoutMs: number): Promise<RouteView | undefined> {
    return this.wait(routeId, (route) => settled(route, revision), timeoutMs);
  }
}

export function settled(route: RouteView, revision: number): boolean {
  if (route.revision > revision || route.status === 'removed') return true;
  return route.revision === revision && (route.status === 'active' || route.status === 'failed');
}
