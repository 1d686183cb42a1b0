import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { RouteView } from '#contracts';
import { queryRoutesByIds } from '#persistence';

interface Waiter {
  revision: number;
  resolve(route: RouteView | undefined): void;
  timer: NodeJS.Timeout;
  last?: RouteView;
}

/** How often the routes projection is read while someone waits. */
const POLL_MS = 100;

/**
 * `?wait=active`: waits until the routes projection shows a route settled for a revision — active on
 * every proxy node that is not stale, or failed (or removed, or a newer revision) — or the time is up. The projector publishes no progress
 * notifications, and a route's status is whatever the projection says, so this reads the projection:
 * one query per tick for every waiting request together, and no query at all when nobody waits.
 */
@Injectable()
export class RouteWaiter implements OnApplicationShutdown {
  private readonly waiting = new Map<string, Set<Waiter>>();
  private timer?: NodeJS.Timeout;
  private polling = false;

  constructor(@Inject(DataSource) private readonly dataSource: DataSource) {}

  /** The route once settled; on timeout the last row seen (undefined if the projection has none yet). */
  wait(routeId: string, revision: number, timeoutMs: number): Promise<RouteView | undefined> {
    return new Promise((resolve) => {
      const waiter: Waiter = {
        revision,
        resolve: (route) => {
          clearTimeout(waiter.timer);
          this.waiting.get(routeId)?.delete(waiter);
          if (this.waiting.get(routeId)?.size === 0) this.waiting.delete(routeId);
          resolve(route);
        },
        timer: setTimeout(() => waiter.resolve(waiter.last), timeoutMs),
      };
      const set = this.waiting.get(routeId) ?? new Set<Waiter>();
      set.add(waiter);
      this.waiting.set(routeId, set);
      this.schedule(0);
    });
  }

  private schedule(delay = POLL_MS): void {
    if (this.timer || this.waiting.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.poll().finally(() => this.schedule());
    }, delay);
  }

  private async poll(): Promise<void> {
    if (this.polling || this.waiting.size === 0) return;
    this.polling = true;
    try {
      for (const route of await queryRoutesByIds(this.dataSource, [...this.waiting.keys()])) {
        for (const waiter of [...(this.waiting.get(route.routeId) ?? [])]) {
          waiter.last = route;
          if (settled(route, waiter.revision)) waiter.resolve(route);
        }
      }
    } catch {
      // The database is away for a moment: the next tick tries again, the timeout bounds the wait.
    } finally {
      this.polling = false;
    }
  }

  onApplicationShutdown(): void {
    for (const set of [...this.waiting.values()]) for (const waiter of [...set]) waiter.resolve(waiter.last);
    clearTimeout(this.timer);
  }
}

export function settled(route: RouteView, revision: number): boolean {
  if (route.revision > revision || route.status === 'removed') return true;
  return route.revision === revision && (route.status === 'active' || route.status === 'failed');
}
