/**
 * Which route reports a pass makes, once HAProxy was proven to hold its maps: RouteApplied for every
 * rendered route (once per revision, with the time from when this process first saw that revision),
 * RouteFailed for every refused route (once per revision and reason), RouteDropped for every route that
 * left the source and that this node had applied.
 */
import type { DesiredState } from '#haproxy';
import type { Logger } from '#platform';
import {
  messageOf,
  type RouteAppliedReport,
  type RouteDroppedReport,
  type RouteFailedReport,
  type RouteStatusReporter,
} from './reporting.js';
import type { RouteSource, SourcedRoute } from './route-source.js';
import { causeOf } from './route-specs.js';

export interface RouteReportsMade {
  applied: RouteAppliedReport[];
  failed: RouteFailedReport[];
  dropped: RouteDroppedReport[];
}

export class RouteReports {
  /** routeId → the revision this process saw last, and when it first saw that revision. */
  private readonly firstSeen = new Map<string, { revision: number; at: number }>();
  private readonly reportedApplied = new Map<string, number>();
  private readonly reportedFailed = new Map<string, string>();
  /** Drops reported that the source may still list (until its projection shows them). */
  private readonly reportedDropped = new Set<string>();

  constructor(
    private readonly routes: RouteStatusReporter,
    private readonly source: RouteSource,
    private readonly logger: Logger,
  ) {}

  /** Notes when each revision was first seen, and which revisions the source says this node applied. */
  sourced(sourced: readonly SourcedRoute[]): void {
    const seenAt = Date.now();
    let live = 0;
    for (const route of sourced) {
      if (!route || typeof route !== 'object') continue;
      live++;
      const known = this.firstSeen.get(route.routeId);
      if (known === undefined || known.revision !== route.revision) {
        this.firstSeen.set(route.routeId, { revision: route.revision, at: seenAt });
      }
      if (typeof route.appliedRevision === 'number' && !this.reportedApplied.has(route.routeId)) {
        this.reportedApplied.set(route.routeId, route.appliedRevision);
      }
    }
    // Every listed route has an entry now: more entries than routes means some left the source.
    if (this.firstSeen.size > live) {
      const listed = new Set<unknown>();
      for (const route of sourced) if (route && typeof route === 'object') listed.add(route.routeId);
      for (const routeId of this.firstSeen.keys()) if (!listed.has(routeId)) this.firstSeen.delete(routeId);
    }
  }

  /** Reports what HAProxy now routes at `version` (just proven), what was refused, and what was dropped. */
  async report(
    desired: DesiredState,
    sourced: readonly SourcedRoute[],
    version: number,
  ): Promise<RouteReportsMade> {
    const doneAt = Date.now();
    const applied: RouteAppliedReport[] = desired.bindings
      .filter(({ route }) => this.reportedApplied.get(route.routeId) !== route.revision)
      .map(({ route }) => ({
        routeId: route.routeId,
        revision: route.revision,
        configVersion: version,
        propagationMs: doneAt - this.firstSeenAt(route.routeId, route.revision, doneAt),
        ...causeOf(route),
      }));
    const failed: RouteFailedReport[] = desired.rejected
      .filter(({ route }) => route && typeof route === 'object' && typeof route.routeId === 'string')
      .filter(({ route, reason }) => this.reportedFailed.get(route.routeId) !== `${route.revision}:${reason}`)
      .filter(({ route }) => Number.isInteger(route.revision) && route.revision >= 1)
      .map(({ route, reason }) => ({
        routeId: route.routeId,
        revision: route.revision,
        reason,
        ...causeOf(route),
      }));
    if (applied.length > 0) {
      await this.routes.applied(applied);
      for (const report of applied) this.reportedApplied.set(report.routeId, report.revision);
    }
    if (failed.length > 0) {
      await this.routes.failed(failed).catch((error: unknown) => {
        // A refused route whose id is not even a UUID cannot have an aggregate: log it and go on.
        this.logger.warn('could not report refused routes', { error: messageOf(error) });
      });
      for (const report of failed)
        this.reportedFailed.set(report.routeId, `${report.revision}:${report.reason}`);
    }
    const dropped = await this.reportDropped(sourced, version, desired.bindings.length);
    // Every rendered route is in reportedApplied now: more entries than rendered routes means stale ones.
    if (this.reportedApplied.size > desired.bindings.length) {
      const present = new Set(desired.bindings.map(({ route }) => route.routeId));
      for (const routeId of this.reportedApplied.keys())
        if (!present.has(routeId)) this.reportedApplied.delete(routeId);
    }
    return { applied, failed, dropped };
  }

  private firstSeenAt(routeId: string, revision: number, otherwise: number): number {
    const known = this.firstSeen.get(routeId);
    return known !== undefined && known.revision === revision ? known.at : otherwise;
  }

  /**
   * Routes that left the source (removed) and that this node had applied: HAProxy no longer has them
   * (the pass just verified the maps). Known from this process's own reports and, across restarts, from
   * the source (removed routes whose projection row still lists this node).
   */
  private async reportDropped(
    sourced: readonly SourcedRoute[],
    version: number,
    rendered: number,
  ): Promise<RouteDroppedReport[]> {
    const listed = this.source.removedRoutes?.() ?? [];
    // Every rendered route is in reportedApplied: no more entries than that and nothing listed as
    // removed means nothing to report (without building a set of 10,000 live ids on every pass).
    if (listed.length === 0 && this.reportedApplied.size <= rendered) {
      this.reportedDropped.clear();
      return [];
    }
    const live = new Set<string>();
    for (const route of sourced) if (route && typeof route === 'object') live.add(route.routeId);
    const candidates = new Map<string, number>();
    for (const [routeId, revision] of this.reportedApplied)
      if (!live.has(routeId)) candidates.set(routeId, revision);
    for (const { routeId, revision } of listed) {
      if (!live.has(routeId) && !this.reportedDropped.has(routeId) && !candidates.has(routeId))
        candidates.set(routeId, revision);
    }
    const causes = new Map(listed.map((removed) => [removed.routeId, removed.cause]));
    const dropped = [...candidates].map(([routeId, revision]) => {
      const cause = causes.get(routeId);
      return { routeId, revision, configVersion: version, ...(cause ? { cause } : {}) };
    });
    if (dropped.length > 0) await this.routes.dropped(dropped);
    const stillListed = new Set(listed.map(({ routeId }) => routeId));
    for (const routeId of this.reportedDropped)
      if (!stillListed.has(routeId)) this.reportedDropped.delete(routeId);
    for (const { routeId } of dropped) {
      this.reportedApplied.delete(routeId);
      if (stillListed.has(routeId)) this.reportedDropped.add(routeId);
    }
    return dropped;
  }
}
