import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { queryCheckpoints } from '#persistence';

/** Which projections must have applied an event of an aggregate type before a reader sees its effect. */
const PROJECTIONS_OF: Record<string, string[]> = {
  agent: ['agents'],
  route: ['routes'],
  hostname: ['hostnames'],
  admin: ['admin_tokens'],
  certificate: ['certificates'],
  'proxy-node': ['proxy_nodes'],
  // DeploymentAccepted and DeploymentActivated, app events, also change the deployment's row.
  app: ['apps', 'deployments'],
  deployment: ['deployments'],
};
/** Every event shows in the event log and the per-type statistics. */
const ALWAYS = ['event_log', 'event_stats'];

export function projectionsOf(aggregateType: string): string[] {
  return [...ALWAYS, ...(PROJECTIONS_OF[aggregateType] ?? [])];
}

interface Waiter {
  sequence: number;
  projections: string[];
  resolve(projected: boolean): void;
  timer: NodeJS.Timeout;
}

const POLL_MS = 100;

/**
 * Waits until the live projections have applied an event, so that a reader told about it (the
 * dashboard's live stream) finds it in the tables it reads. One query of `projection_checkpoints` per
 * tick for every waiting caller together, and none while nobody waits. A projection with no checkpoint
 * row (not deployed here) is not waited for.
 */
@Injectable()
export class ProjectionPosition implements OnApplicationShutdown {
  private readonly waiting = new Set<Waiter>();
  private checkpoints = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private polling = false;

  constructor(@Inject(DataSource) private readonly dataSource: DataSource) {}

  /** true once every named projection reached `sequence`; false when `deadline` (epoch ms) passed first. */
  async reached(sequence: number, projections: string[], deadline: number): Promise<boolean> {
    if (this.applied(sequence, projections)) return true;
    await this.poll();
    if (this.applied(sequence, projections)) return true;
    const remaining = deadline - Date.now();
    if (remaining <= 0) return false;
    return new Promise((resolve) => {
      const waiter: Waiter = {
        sequence,
        projections,
        resolve: (projected) => {
          clearTimeout(waiter.timer);
          this.waiting.delete(waiter);
          resolve(projected);
        },
        timer: setTimeout(() => waiter.resolve(false), remaining),
      };
      this.waiting.add(waiter);
      this.schedule();
    });
  }

  /** The lowest checkpoint of the live projections (0 before the projector ran). */
  position(): number {
    return this.checkpoints.size === 0 ? 0 : Math.min(...this.checkpoints.values());
  }

  private applied(sequence: number, projections: string[]): boolean {
    if (this.checkpoints.size === 0) return false;
    return projections.every((name) => (this.checkpoints.get(name) ?? Infinity) >= sequence);
  }

  private schedule(): void {
    if (this.timer || this.waiting.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.poll().finally(() => this.schedule());
    }, POLL_MS);
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const checkpoints = await queryCheckpoints(this.dataSource);
      this.checkpoints = new Map(checkpoints.map((row) => [row.projection, row.lastSequence]));
      for (const waiter of [...this.waiting]) {
        if (this.applied(waiter.sequence, waiter.projections)) waiter.resolve(true);
      }
    } catch {
      // The database is away for a moment: the next tick asks again, the deadline bounds the wait.
    } finally {
      this.polling = false;
    }
  }

  onApplicationShutdown(): void {
    for (const waiter of [...this.waiting]) waiter.resolve(false);
    clearTimeout(this.timer);
  }
}
