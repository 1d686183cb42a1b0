/**
 * When a reconcile pass runs: at start, on every trigger (coalesced: triggers during a pass cause exactly
 * one more pass), on a timer (a full pass), and after a failure with exponential backoff (a full pass);
 * at once again when HAProxy reloaded during a pass. What a pass does is pass.ts.
 */
import type { Logger } from '#platform';
import type { DataplaneGateway } from './gateway.js';
import { NodeStatus } from './node-status.js';
import { ReconcilePass, ReloadedDuringPassError, type PassOptions, type ReconcileResult } from './pass.js';
import type { ProxyNodeReporter, RouteStatusReporter } from './reporting.js';
import { RouteReports } from './route-reports.js';
import type { RouteSource } from './route-source.js';

export interface ReconcilerOptions extends PassOptions {
  node: string;
  /** Full reconcile (re-read everything) this often. */
  intervalMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  /** Delete transactions left open (by a killed proxy-sync) when starting. */
  abandonOpenTransactions?: boolean;
}

export type ReconcileOutcome = { ok: true; result: ReconcileResult } | { ok: false; error: unknown };

export class Reconciler {
  private readonly pass: ReconcilePass;
  private readonly status: NodeStatus;

  private running = false;
  private dirty = false;
  private fullWanted = false;
  private requested = 0;
  /** The highest event sequence a trigger asked for: every pass reads a source at least this new. */
  private wantedSequence = 0;
  private waiters: { generation: number; resolve: (outcome: ReconcileOutcome) => void }[] = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private intervalTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private loopDone: Promise<void> = Promise.resolve();
  /** Passes run (for tests and benchmarks). */
  passes = 0;

  constructor(
    private readonly gateway: DataplaneGateway,
    source: RouteSource,
    routes: RouteStatusReporter,
    node: ProxyNodeReporter,
    private readonly options: ReconcilerOptions,
    private readonly logger: Logger,
  ) {
    this.status = new NodeStatus(options.node, node, logger);
    const reports = new RouteReports(routes, source, logger);
    this.pass = new ReconcilePass(gateway, source, reports, this.status, options, logger);
  }

  /**
   * Loads the node's last status, then reconciles at once and every intervalMs. `minSequence`: the event
   * log's end when starting, so the first pass reads a projection that has caught up with it.
   */
  async start(options: { minSequence?: number } = {}): Promise<void> {
    this.stopped = false;
    await this.status.load();
    if (this.options.abandonOpenTransactions ?? true) {
      const abandoned = await this.gateway.abandonOpenTransactions().catch(() => 0);
      if (abandoned > 0) this.logger.warn('deleted transactions left open', { count: abandoned });
    }
    this.intervalTimer = setInterval(() => void this.reconcileSoon({ full: true }), this.options.intervalMs);
    void this.reconcileSoon({ full: true, minSequence: options.minSequence });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.intervalTimer) clearInterval(this.intervalTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.loopDone;
    for (const waiter of this.waiters.splice(0)) waiter.resolve({ ok: false, error: new Error('stopped') });
  }

  /**
   * Asks for a pass. Calls during a pass are coalesced into one more pass; the promise settles when a
   * pass that started after this call has ended (with its outcome). `full` re-reads everything;
   * `minSequence` (an event's sequence) makes the pass wait until the route source has that event.
   */
  reconcileSoon(options: { full?: boolean; minSequence?: number } = {}): Promise<ReconcileOutcome> {
    if (options.full) this.fullWanted = true;
    if (options.minSequence !== undefined && options.minSequence > this.wantedSequence)
      this.wantedSequence = options.minSequence;
    const generation = ++this.requested;
    const settled = new Promise<ReconcileOutcome>((resolve) => this.waiters.push({ generation, resolve }));
    this.kick();
    return settled;
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.dirty = true;
      return;
    }
    if (this.retryTimer) return; // backing off: the retry will pick this up
    this.running = true;
    this.loopDone = this.loop().finally(() => {
      this.running = false;
    });
  }

  private settle(generation: number, outcome: ReconcileOutcome): void {
    const remaining: typeof this.waiters = [];
    for (const waiter of this.waiters) {
      if (waiter.generation <= generation) waiter.resolve(outcome);
      else remaining.push(waiter);
    }
    this.waiters = remaining;
  }

  private async loop(): Promise<void> {
    let reloadRetries = 0;
    do {
      this.dirty = false;
      const generation = this.requested;
      const full = this.fullWanted;
      this.fullWanted = false;
      try {
        this.passes++;
        const result = await this.pass.run(full, this.wantedSequence > 0 ? this.wantedSequence : undefined);
        this.failures = 0;
        reloadRetries = 0;
        this.settle(generation, { ok: true, result });
      } catch (error) {
        this.pass.forget();
        if (error instanceof ReloadedDuringPassError && reloadRetries++ < 3) {
          this.logger.info('HAProxy reloaded during a pass; repairing');
          this.dirty = true;
          continue;
        }
        this.failures++;
        this.settle(generation, { ok: false, error });
        await this.status.failed(error, this.failures, this.pass.verified());
        this.scheduleRetry();
        return;
      }
    } while (this.dirty && !this.stopped);
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    const exponential = this.options.backoffMinMs * 2 ** Math.min(this.failures - 1, 20);
    const delay = Math.min(this.options.backoffMaxMs, exponential) * (0.5 + Math.random() / 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.fullWanted = true;
      this.kick();
    }, delay);
  }
}
