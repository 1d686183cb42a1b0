/**
 * The reload agent: commits ask for a reload, which runs `reload_delay` later; every commit inside one
 * window gets the same Reload-ID. A successful reload copies haproxy.cfg to the last-known-good file; a
 * failed one copies the last-known-good file back (as dataplaneapi does).
 */
import { copyFile } from 'node:fs/promises';
import type { Logger } from '#platform';
import type { HaproxyControl } from './haproxy.js';

export interface ReloadRecord {
  id: string;
  status: 'failed' | 'in_progress' | 'succeeded';
  response?: string;
  reload_timestamp?: number;
}

export class ReloadFailedError extends Error {}

function dateOf(now: Date): string {
  return now.toISOString().slice(0, 10);
}

function order(id: string): [string, number] {
  const match = /^(\d{4}-\d{2}-\d{2})-(\d+)$/.exec(id);
  return match ? [match[1], Number(match[2])] : ['', -1];
}

function olderThan(a: string, b: string): boolean {
  const [dateA, indexA] = order(a);
  const [dateB, indexB] = order(b);
  return dateA < dateB || (dateA === dateB && indexA < indexB);
}

export class ReloadAgent {
  private counter = 0;
  private pending: { record: ReloadRecord; timer: NodeJS.Timeout } | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private readonly inflight = new Set<ReloadRecord>();
  private failures: ReloadRecord[] = [];
  private lastSuccess: ReloadRecord | undefined;
  private stopped = false;
  /** Reloads actually sent to HAProxy, scheduled or forced. */
  performed = 0;

  constructor(
    private readonly haproxy: HaproxyControl,
    private readonly configFile: string,
    private readonly delayMs: number,
    private readonly logger: Logger,
    private readonly retentionMs = 86_400_000,
  ) {}

  get lkgFile(): string {
    return `${this.configFile}.lkg`;
  }

  /** Asks for a reload after the delay; returns the id of the pending reload (shared by a window). */
  reload(): string {
    if (this.pending) return this.pending.record.id;
    const record: ReloadRecord = { id: `${dateOf(new Date())}-${this.counter++}`, status: 'in_progress' };
    const timer = setTimeout(() => {
      if (this.pending?.record === record) this.pending = undefined;
      void this.execute(record);
    }, this.delayMs);
    this.pending = { record, timer };
    return record.id;
  }

  /** Reloads now and waits for the outcome; throws ReloadFailedError ("Reload failed: …"). */
  async forceReload(): Promise<void> {
    const record: ReloadRecord = { id: `${dateOf(new Date())}-${this.counter++}`, status: 'in_progress' };
    await this.execute(record);
    if (record.status === 'failed') throw new ReloadFailedError(`Reload failed: ${record.response ?? ''}`);
  }

  private execute(record: ReloadRecord): Promise<void> {
    this.inflight.add(record);
    const run = this.running.then(async () => {
      if (this.stopped) {
        this.inflight.delete(record);
        return;
      }
      try {
        this.performed++;
        const outcome = await this.haproxy.reload();
        record.response = outcome.response;
        record.reload_timestamp = Math.floor(Date.now() / 1000);
        if (outcome.ok) {
          record.status = 'succeeded';
          this.lastSuccess = record;
          await copyFile(this.configFile, this.lkgFile);
          this.logger.info('haproxy reloaded', { reloadId: record.id, workers: outcome.workers });
        } else {
          throw new Error(outcome.response);
        }
      } catch (error) {
        record.status = 'failed';
        record.response = error instanceof Error ? error.message : String(error);
        record.reload_timestamp = Math.floor(Date.now() / 1000);
        this.failures.push(record);
        this.logger.error('haproxy reload failed; restoring the last known good configuration', {
          reloadId: record.id,
          error,
        });
        await copyFile(this.lkgFile, this.configFile).catch(() => undefined);
      } finally {
        this.inflight.delete(record);
      }
    });
    this.running = run.catch(() => undefined);
    return run;
  }

  /** Failed reloads within the retention, the last success, and the running and pending ones. */
  list(): ReloadRecord[] {
    const cutoff = Math.floor((Date.now() - this.retentionMs) / 1000);
    const out = this.failures.filter((record) => (record.reload_timestamp ?? 0) >= cutoff);
    if (this.lastSuccess) out.push(this.lastSuccess);
    out.push(...this.inflight);
    if (this.pending) out.push(this.pending.record);
    return out.map((record) => ({ ...record }));
  }

  get(id: string): ReloadRecord | undefined {
    const known = [...this.failures, this.lastSuccess, ...this.inflight, this.pending?.record].find(
      (record) => record?.id === id,
    );
    if (known) return { ...known };
    if (this.lastSuccess && olderThan(id, this.lastSuccess.id)) return { id, status: 'succeeded' };
    return undefined;
  }

  /** Waits until nothing is pending or running (tests and shutdown). */
  async idle(): Promise<void> {
    while (this.pending || this.inflight.size > 0) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      await this.running;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pending) clearTimeout(this.pending.timer);
    this.pending = undefined;
    await this.running;
  }
}
