import type { OnApplicationShutdown } from '@nestjs/common';

interface Waiter<T> {
  settled(view: T): boolean;
  resolve(view: T | undefined): void;
  timer: NodeJS.Timeout;
  last?: T;
}

/** How often the projection is read while someone waits. */
const POLL_MS = 100;

/**
 * `?wait=…` on a projection: waits until the row of an id is settled (by the caller's rule) or the time is
 * up. The projector publishes no progress notifications, and a row's status is whatever the projection
 * says, so this reads it: one query per tick for every waiting request together, none when nobody waits.
 */
export class ProjectionWaiter<T> implements OnApplicationShutdown {
  private readonly waiting = new Map<string, Set<Waiter<T>>>();
  private timer?: NodeJS.Timeout;
  private polling = false;

  constructor(
    /** The rows of these ids that exist. */
    private readonly read: (ids: string[]) => Promise<T[]>,
    private readonly idOf: (view: T) => string,
  ) {}

  /** The view once settled; on timeout the last one seen (undefined if the projection has none yet). */
  wait(id: string, settled: (view: T) => boolean, timeoutMs: number): Promise<T | undefined> {
    return new Promise((resolve) => {
      const waiter: Waiter<T> = {
        settled,
        resolve: (view) => {
          clearTimeout(waiter.timer);
          this.waiting.get(id)?.delete(waiter);
          if (this.waiting.get(id)?.size === 0) this.waiting.delete(id);
          resolve(view);
        },
        timer: setTimeout(() => waiter.resolve(waiter.last), timeoutMs),
      };
      const set = this.waiting.get(id) ?? new Set<Waiter<T>>();
      set.add(waiter);
      this.waiting.set(id, set);
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
      for (const view of await this.read([...this.waiting.keys()])) {
        for (const waiter of [...(this.waiting.get(this.idOf(view)) ?? [])]) {
          waiter.last = view;
          if (waiter.settled(view)) waiter.resolve(view);
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
