import type { KV } from '@nats-io/kv';
import { hasControlCharacter, type EventContext, type PROXY_NODE_STATUSES } from '#contracts';
import type { EventStore } from '#eventstore';
import type { Logger } from '#platform';
import type { RouteCause } from './route-source.js';

export interface RouteAppliedReport {
  routeId: string;
  revision: number;
  /** The event that made the revision, when the source knows it. */
  cause?: RouteCause;
  configVersion: number;
  /** From when proxy-sync first saw this revision to when HAProxy was seen routing it. */
  propagationMs: number;
}

export interface RouteFailedReport {
  routeId: string;
  revision: number;
  cause?: RouteCause;
  reason: string;
}

/** A removed route this node no longer routes (its map entry is gone, verified). */
export interface RouteDroppedReport {
  routeId: string;
  /** The revision the node had applied. */
  revision: number;
  configVersion: number;
  cause?: RouteCause;
}

/** Where applied / failed / dropped results of routes go (the event log in production). */
export interface RouteStatusReporter {
  applied(reports: readonly RouteAppliedReport[]): Promise<void>;
  failed(reports: readonly RouteFailedReport[]): Promise<void>;
  dropped(reports: readonly RouteDroppedReport[]): Promise<void>;
}

export type ProxyNodeStatus = (typeof PROXY_NODE_STATUSES)[number];

/** Liveness of a proxy node: overwritten after every reconcile, never history. */
export interface ProxyNodeRecord {
  node: string;
  status: ProxyNodeStatus;
  /** Last reconcile attempt and last success (ISO-8601). */
  lastSyncAt: string;
  lastSuccessAt: string | null;
  /** The configuration version HAProxy runs, as last verified. */
  configVersion: number | null;
  haproxyPid: number | null;
  routes: number;
  failedRoutes: number;
  detail: string | null;
}

/** The node's liveness record and its status transitions. */
export interface ProxyNodeReporter {
  /** The record as last stored (to know the status before this process started). */
  load(): Promise<ProxyNodeRecord | undefined>;
  record(record: ProxyNodeRecord): Promise<void>;
  /** Called on a transition only. */
  statusChanged(record: ProxyNodeRecord, previous: ProxyNodeStatus | undefined): Promise<void>;
  /** The node's last status in the log: another service may have recorded it (stale, while it was away). */
  loggedStatus?(): Promise<ProxyNodeStatus | undefined>;
}

/** An error's message, for logs and records. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A label for an event or a record: bounded and without control characters. */
export function safeDetail(text: string, max = 500): string {
  let out = '';
  for (const char of text) out += hasControlCharacter(char) ? ' ' : char;
  out = out.replace(/\s+/g, ' ').trim();
  return (out.length > max ? out.slice(0, max - 1) + '…' : out) || 'unknown';
}

const context = (node: string, correlationId: string, causationId?: string): EventContext => ({
  actor: { kind: 'service', id: `proxy-sync/${node}` },
  correlationId,
  ...(causationId ? { causationId } : {}),
});

/** A report about a route continues the trail of the change it reports on. */
const routeContext = (node: string, report: { routeId: string; cause?: RouteCause }): EventContext =>
  context(node, report.cause?.correlationId ?? `route-${report.routeId}`, report.cause?.eventId);

async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>) {
  let next = 0;
  const errors: unknown[] = [];
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (let index = next++; index < items.length; index = next++) {
        await work(items[index]).catch((error: unknown) => errors.push(error));
      }
    }),
  );
  if (errors.length > 0) throw errors[0];
}

/**
 * RouteApplied / RouteFailed / RouteDropped on each route's aggregate, and ProxyNodeStatusChanged on the
 * node's. The command id (Nats-Msg-Id) names node, route and revision, so a retried report appends
 * nothing new.
 */
export class EventStoreReporter implements RouteStatusReporter {
  constructor(
    private readonly store: EventStore,
    private readonly node: string,
    private readonly logger: Logger,
    private readonly concurrency = 16,
  ) {}

  async applied(reports: readonly RouteAppliedReport[]): Promise<void> {
    await inParallel(reports, this.concurrency, async (report) => {
      await this.store.append(
        { type: 'route', id: report.routeId },
        [
          {
            type: 'RouteApplied',
            data: {
              routeId: report.routeId,
              revision: report.revision,
              node: this.node,
              configVersion: report.configVersion,
              propagationMs: Math.max(0, Math.round(report.propagationMs)),
            },
          },
        ],
        {
          context: routeContext(this.node, report),
          commandId: `route-applied-${this.node}-${report.routeId}-${report.revision}`,
        },
      );
    });
  }

  async failed(reports: readonly RouteFailedReport[]): Promise<void> {
    await inParallel(reports, this.concurrency, async (report) => {
      const reason = safeDetail(report.reason);
      await this.store.append(
        { type: 'route', id: report.routeId },
        [
          {
            type: 'RouteFailed',
            data: { routeId: report.routeId, revision: report.revision, node: this.node, reason },
          },
        ],
        {
          context: routeContext(this.node, report),
          commandId: `route-failed-${this.node}-${report.routeId}-${report.revision}`,
        },
      );
    });
    if (reports.length > 0) this.logger.warn('routes refused', { count: reports.length });
  }

  async dropped(reports: readonly RouteDroppedReport[]): Promise<void> {
    await inParallel(reports, this.concurrency, async (report) => {
      await this.store.append(
        { type: 'route', id: report.routeId },
        [
          {
            type: 'RouteDropped',
            data: {
              routeId: report.routeId,
              revision: report.revision,
              node: this.node,
              configVersion: report.configVersion,
            },
          },
        ],
        {
          context: routeContext(this.node, report),
          commandId: `route-dropped-${this.node}-${report.routeId}`,
        },
      );
    });
  }
}

/** The liveness record in a NATS KV bucket (key = node id) and transitions as events. */
export class KvNodeReporter implements ProxyNodeReporter {
  constructor(
    private readonly kv: KV,
    private readonly store: EventStore | undefined,
    private readonly node: string,
  ) {}

  async load(): Promise<ProxyNodeRecord | undefined> {
    const entry = await this.kv.get(this.node);
    if (!entry || entry.length === 0) return undefined;
    try {
      return entry.json<ProxyNodeRecord>();
    } catch {
      return undefined;
    }
  }

  async record(record: ProxyNodeRecord): Promise<void> {
    await this.kv.put(this.node, JSON.stringify(record));
  }

  async loggedStatus(): Promise<ProxyNodeStatus | undefined> {
    if (!this.store) return undefined;
    const { events } = await this.store.readAggregate('proxy-node', this.node);
    const last = events.findLast((event) => event.type === 'ProxyNodeStatusChanged');
    return (last?.data as { status?: ProxyNodeStatus } | undefined)?.status;
  }

  async statusChanged(record: ProxyNodeRecord): Promise<void> {
    if (!this.store) return;
    await this.store.append(
      { type: 'proxy-node', id: this.node },
      [
        {
          type: 'ProxyNodeStatusChanged',
          data: {
            node: this.node,
            status: record.status,
            configVersion: record.configVersion,
            detail: record.detail === null ? null : safeDetail(record.detail),
          },
        },
      ],
      // Caused by the pass (or the failure) this node's record describes.
      {
        context: context(
          this.node,
          `proxy-node-${this.node}`,
          `proxy-pass-${this.node}-${record.configVersion}`,
        ),
      },
    );
  }
}

/** Reports kept in memory: for tests and benchmarks that run without NATS. */
export class MemoryReporter implements RouteStatusReporter, ProxyNodeReporter {
  readonly appliedReports: RouteAppliedReport[] = [];
  readonly failedReports: RouteFailedReport[] = [];
  readonly droppedReports: RouteDroppedReport[] = [];
  readonly transitions: ProxyNodeStatus[] = [];
  last: ProxyNodeRecord | undefined;

  async applied(reports: readonly RouteAppliedReport[]): Promise<void> {
    this.appliedReports.push(...reports);
  }
  async failed(reports: readonly RouteFailedReport[]): Promise<void> {
    this.failedReports.push(...reports);
  }
  async dropped(reports: readonly RouteDroppedReport[]): Promise<void> {
    this.droppedReports.push(...reports);
  }
  async load(): Promise<ProxyNodeRecord | undefined> {
    return this.last;
  }
  async record(record: ProxyNodeRecord): Promise<void> {
    this.last = record;
  }
  async statusChanged(record: ProxyNodeRecord): Promise<void> {
    this.transitions.push(record.status);
  }
}
