/**
 * The routes projection as proxy-sync's RouteSource. It keeps the live routes in memory and reads only the
 * rows changed since its last read: each row carries the log sequence of the last event that changed it
 * (`routes.last_sequence`), and one statement reads the projection's checkpoint together with the rows
 * changed after the previous checkpoint. A batch of the projector commits its rows and its checkpoint in
 * one transaction and sequences only grow, so "changed after the checkpoint I read" is exact: nothing is
 * missed, nothing is read twice. A full read (start, and full passes) replaces the memory.
 *
 * A caller woken by an event passes its sequence as `minSequence`: the read waits until the projection's
 * checkpoint has reached it, woken by the checkpoint table's NOTIFY (`projection_checkpoint`, sent when the
 * projector's batch commits) and polling as a fallback.
 */
import {
  checkpointOf,
  readNodeRouteChanges,
  readNodeRoutes,
  type NodeRouteRow,
  type Queryable,
} from '#persistence';
import type { Logger } from '#platform';
import type { ListRoutesOptions, RemovedRoute, RouteSource, SourcedRoute } from './route-source.js';

/** The part of a `pg.Client` used for LISTEN. */
export interface NotificationClient {
  connect(): Promise<unknown>;
  query(sql: string): Promise<unknown>;
  on(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): unknown;
  on(event: 'error' | 'end', listener: (error?: Error) => void): unknown;
  end(): Promise<void>;
}

export interface PostgresRouteSourceOptions {
  /** This proxy node: `applied->'<node>'` says what it already reported. */
  node: string;
  /** How long a read waits for the projection to reach `minSequence` before going on with what it has. */
  waitTimeoutMs: number;
  /** A new, unconnected client for LISTEN; without it the wait polls. */
  notifications?: () => NotificationClient;
  /** Polling interval while waiting without notifications (default 10 ms). */
  pollMs?: number;
  logger: Logger;
}

export const CHECKPOINT_CHANNEL = 'projection_checkpoint';
const PROJECTION = 'routes';

function causeOf(row: NodeRouteRow): Pick<SourcedRoute, 'cause'> {
  return row.change_event_id && row.change_correlation_id
    ? { cause: { eventId: row.change_event_id, correlationId: row.change_correlation_id } }
    : {};
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function sameRoute(a: SourcedRoute, b: SourcedRoute): boolean {
  return (
    a.revision === b.revision &&
    a.agentId === b.agentId &&
    a.kind === b.kind &&
    a.hostname === b.hostname &&
    a.target.host === b.target.host &&
    a.target.port === b.target.port &&
    a.options.tlsToTarget === b.options.tlsToTarget &&
    a.appliedRevision === b.appliedRevision
  );
}

export class PostgresRouteSource implements RouteSource {
  private readonly routes = new Map<string, SourcedRoute>();
  private readonly removed = new Map<string, RemovedRoute>();
  private list: SourcedRoute[] = [];
  /** The projection's checkpoint as of the last read; undefined until the first (full) read. */
  private position: number | undefined;
  /** The highest checkpoint heard of (reads and notifications). */
  private heard = 0;
  private wakers = new Set<() => void>();
  private listener: NotificationClient | undefined;
  private connecting: Promise<void> | undefined;
  private closed = false;
  /** Reads and waits (for tests and benchmarks). */
  readonly stats = { fullReads: 0, changeReads: 0, rowsRead: 0, waits: 0, waitMs: 0, timeouts: 0 };

  constructor(
    private readonly db: Queryable,
    private readonly options: PostgresRouteSourceOptions,
  ) {}

  async listRoutes(options: ListRoutesOptions = {}): Promise<SourcedRoute[]> {
    this.listen();
    if (options.minSequence !== undefined && options.minSequence > (this.position ?? 0)) {
      await this.reach(options.minSequence);
    }
    const full = options.full === true || this.position === undefined;
    const rows =
      full || this.position === undefined
        ? await readNodeRoutes(this.db, this.options.node)
        : await readNodeRouteChanges(this.db, this.options.node, this.position);
    if (full) this.stats.fullReads++;
    else this.stats.changeReads++;
    const position = Number(rows[0]?.position ?? 0);
    this.heard = Math.max(this.heard, position);
    if (full) this.replace(rows);
    else this.merge(rows);
    this.position = position;
    if (options.minSequence !== undefined && position < options.minSequence) {
      this.options.logger.warn(
        'the routes projection is behind the event log; reconciling with what it has',
        {
          projection: position,
          wanted: options.minSequence,
        },
      );
    }
    return this.list;
  }

  removedRoutes(): readonly RemovedRoute[] {
    return [...this.removed.values()];
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const wake of this.wakers) wake();
    const listener = this.listener;
    this.listener = undefined;
    await this.connecting?.catch(() => undefined);
    await listener?.end().catch(() => undefined);
  }

  /** The checkpoint this source has read up to (undefined before the first read). */
  get checkpoint(): number | undefined {
    return this.position;
  }

  // ------------------------------------------------------------------ reading

  private routeOf(row: NodeRouteRow, previous: SourcedRoute | undefined): SourcedRoute {
    const route: SourcedRoute = {
      routeId: row.route_id as string,
      revision: row.revision,
      agentId: row.agent_id,
      kind: row.kind,
      hostname: row.hostname,
      target: { host: row.target_host, port: row.target_port },
      options: { tlsToTarget: row.options?.tlsToTarget ?? false },
      appliedRevision: row.applied_revision,
      ...causeOf(row),
    };
    // The same object for an unchanged route keeps the reconciler's per-object caches warm.
    return previous && sameRoute(previous, route) ? previous : route;
  }

  private replace(rows: NodeRouteRow[]): void {
    const before = new Map(this.routes);
    this.routes.clear();
    this.removed.clear();
    for (const row of rows) {
      if (row.route_id === null) continue;
      this.apply(row, before.get(row.route_id));
    }
    this.list = [...this.routes.values()];
    this.stats.rowsRead += rows.length;
  }

  private merge(rows: NodeRouteRow[]): void {
    let changed = false;
    for (const row of rows) {
      if (row.route_id === null) continue;
      this.stats.rowsRead++;
      const previous = this.routes.get(row.route_id);
      this.routes.delete(row.route_id);
      this.removed.delete(row.route_id);
      this.apply(row, previous);
      changed ||= this.routes.get(row.route_id) !== previous;
    }
    if (changed) this.list = [...this.routes.values()];
  }

  private apply(row: NodeRouteRow, previous: SourcedRoute | undefined): void {
    const routeId = row.route_id as string;
    if (!row.removed) {
      this.routes.set(routeId, this.routeOf(row, previous));
    } else if (row.applied_revision !== null) {
      this.removed.set(routeId, { routeId, revision: row.applied_revision, ...causeOf(row) });
    }
  }

  // ------------------------------------------------------------------ waiting for the projection

  private async reach(sequence: number): Promise<void> {
    if (this.heard >= sequence) return;
    const started = performance.now();
    this.stats.waits++;
    const deadline = Date.now() + this.options.waitTimeoutMs;
    while (this.heard < sequence && !this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) {
        this.stats.timeouts++;
        break;
      }
      // Notifications wake the wait at once; the poll covers a lost listening connection.
      await this.notified(Math.min(left, this.listener ? 200 : (this.options.pollMs ?? 10)));
      if (this.heard >= sequence) break;
      this.heard = Math.max(this.heard, await checkpointOf(this.db, PROJECTION));
    }
    this.stats.waitMs += performance.now() - started;
  }

  /** Resolves on the next notification or after `ms`. */
  private notified(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  /** Starts listening for checkpoint notifications (again, after the connection was lost). */
  private listen(): void {
    const connect = this.options.notifications;
    if (!connect || this.listener || this.connecting || this.closed) return;
    const client = connect();
    const lost = (error?: Error) => {
      if (this.listener !== client) return;
      this.listener = undefined;
      if (!this.closed) {
        this.options.logger.warn('lost the projection notifications; polling until they are back', {
          error: error?.message ?? 'connection ended',
        });
      }
    };
    this.connecting = (async () => {
      client.on('error', lost);
      client.on('end', lost);
      client.on('notification', (message) => {
        if (message.channel !== CHECKPOINT_CHANNEL || !message.payload) return;
        const [name, value] = message.payload.split(' ');
        if (name !== PROJECTION) return;
        this.heard = Math.max(this.heard, Number(value) || 0);
        for (const wake of [...this.wakers]) wake();
      });
      await client.connect();
      await client.query(`LISTEN ${CHECKPOINT_CHANNEL}`);
      if (this.closed) {
        await client.end().catch(() => undefined);
        return;
      }
      this.listener = client;
    })()
      .catch(async (error: unknown) => {
        this.options.logger.warn('cannot listen for projection notifications; polling', {
          error: error instanceof Error ? error.message : String(error),
        });
        await client.end().catch(() => undefined);
        await sleep(1_000);
      })
      .finally(() => {
        this.connecting = undefined;
      });
  }
}
