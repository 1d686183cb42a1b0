/**
 * The node's status and liveness record after every pass: `in-sync` after a success; after a failure
 * `unreachable` (the Data Plane API or HAProxy cannot be talked to) or `degraded` (they answer, but the
 * pass failed). A transition appends an event; the record is written after every pass (at most once a
 * second when nothing changed).
 */
import { DataplaneError, DataplaneUnreachableError, HaproxyUnreachableError } from '#dataplane';
import type { Logger } from '#platform';
import { NoHaproxyWorkerError } from './gateway.js';
import {
  messageOf,
  safeDetail,
  type ProxyNodeRecord,
  type ProxyNodeReporter,
  type ProxyNodeStatus,
} from './reporting.js';

/** How often the node's status in the log is read back (see record()). */
const LOGGED_STATUS_CHECK_MS = 5_000;

/** Unreachable: the API or HAProxy cannot be talked to (or refuses our credentials). Degraded: the rest. */
export function statusOfError(error: unknown): ProxyNodeStatus {
  if (
    error instanceof DataplaneUnreachableError ||
    error instanceof HaproxyUnreachableError ||
    error instanceof NoHaproxyWorkerError ||
    (error instanceof DataplaneError && error.isUnauthorized)
  )
    return 'unreachable';
  return 'degraded';
}

/** What HAProxy was last verified to run: the record of a failed pass names it. */
export interface VerifiedState {
  configVersion: number | null;
  pid: number | null;
  routes: number;
}

export class NodeStatus {
  private status: ProxyNodeStatus | undefined;
  private lastSuccessAt: string | null = null;
  private lastRecordAt = 0;
  private loggedStatusCheckedAt = 0;
  private lastRecordKey = '';

  constructor(
    private readonly node: string,
    private readonly reporter: ProxyNodeReporter,
    private readonly logger: Logger,
  ) {}

  /** The status as last stored, to know the one before this process started. */
  async load(): Promise<void> {
    this.status = (await this.reporter.load().catch(() => undefined))?.status;
  }

  async succeeded(
    result: { configVersion: number; pid: number; routes: number },
    failedRoutes: number,
  ): Promise<void> {
    this.lastSuccessAt = new Date().toISOString();
    await this.record({
      node: this.node,
      status: 'in-sync',
      lastSyncAt: this.lastSuccessAt,
      lastSuccessAt: this.lastSuccessAt,
      configVersion: result.configVersion,
      haproxyPid: result.pid,
      routes: result.routes,
      failedRoutes,
      detail: null,
    });
  }

  async failed(error: unknown, failures: number, verified: VerifiedState): Promise<void> {
    const status = statusOfError(error);
    this.logger.warn('reconcile failed; retrying with backoff', {
      status,
      failures,
      error: messageOf(error),
    });
    await this.record({
      node: this.node,
      status,
      lastSyncAt: new Date().toISOString(),
      lastSuccessAt: this.lastSuccessAt,
      configVersion: verified.configVersion,
      haproxyPid: verified.pid,
      routes: verified.routes,
      failedRoutes: 0,
      detail: safeDetail(messageOf(error)),
    });
  }

  /** The KV record after every pass (at most once a second when nothing changed); an event on a transition. */
  private async record(record: ProxyNodeRecord): Promise<void> {
    // Routing records a node stale while it is away; what the log says is the status to move on from.
    if (this.reporter.loggedStatus && Date.now() - this.loggedStatusCheckedAt >= LOGGED_STATUS_CHECK_MS) {
      this.loggedStatusCheckedAt = Date.now();
      const logged = await this.reporter.loggedStatus().catch(() => undefined);
      if (logged !== undefined) this.status = logged;
    }
    const previous = this.status;
    if (record.status !== previous) {
      try {
        await this.reporter.statusChanged(record, previous);
        this.status = record.status;
        this.logger.info('proxy node status', { from: previous ?? null, to: record.status });
      } catch (error) {
        this.logger.warn('could not report the node status', { error: messageOf(error) });
      }
    }
    const key = `${record.status}|${record.configVersion}|${record.haproxyPid}|${record.routes}`;
    if (key === this.lastRecordKey && Date.now() - this.lastRecordAt < 1000) return;
    try {
      await this.reporter.record(record);
      this.lastRecordKey = key;
      this.lastRecordAt = Date.now();
    } catch (error) {
      this.logger.warn('could not write the liveness record', { error: messageOf(error) });
    }
  }
}
