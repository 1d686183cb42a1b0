/**
 * Wakes the reconciler on route events. An ordered consumer on the event log (filtered to the route
 * subjects, starting where the log ended when proxy-sync started) hands each definition event's sequence to
 * `onEvent`, which asks for a pass that first waits until the routes projection has that event. Reports
 * (RouteApplied, RouteFailed, RouteDropped — this node's own among them) change no desired state and wake
 * nothing. A lost consumer is resumed after the last sequence seen, so no event is skipped; the start
 * pass and the timer cover the time before the first one.
 */
import type { EventStore } from '#eventstore';
import type { Logger } from '#platform';

/** Route events that are reports, not definitions: they never change what HAProxy should route. */
export const REPORT_EVENT_TYPES: ReadonlySet<string> = new Set([
  'RouteApplied',
  'RouteFailed',
  'RouteDropped',
]);

const decoder = new TextDecoder();

/** The envelope's `type`, or undefined for something unreadable (which then wakes a pass, to be safe). */
export function eventTypeOf(data: Uint8Array): string | undefined {
  try {
    const parsed = JSON.parse(decoder.decode(data)) as { type?: unknown };
    return typeof parsed.type === 'string' ? parsed.type : undefined;
  } catch {
    return undefined;
  }
}

export class RouteEventTrigger {
  private abort = new AbortController();
  private next = 1;
  private running: Promise<void> = Promise.resolve();
  /** Definition events seen (for tests). */
  seen = 0;

  constructor(
    private readonly store: EventStore,
    private readonly subject: string,
    private readonly onEvent: (sequence: number) => void,
    private readonly logger: Logger,
    private readonly retryMs = 500,
  ) {}

  /** Follows events after `fromSequence - 1` (the log's end before the first pass read the projection). */
  start(fromSequence: number): void {
    this.next = Math.max(1, fromSequence);
    this.abort = new AbortController();
    this.running = this.follow(this.abort.signal);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  private async follow(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        for await (const entry of this.store.readRaw({
          fromSequence: this.next,
          follow: true,
          filterSubject: this.subject,
          signal,
          bufferSize: 256,
        })) {
          this.next = entry.sequence + 1;
          const type = eventTypeOf(entry.data);
          if (type !== undefined && REPORT_EVENT_TYPES.has(type)) continue;
          this.seen++;
          this.onEvent(entry.sequence);
        }
      } catch (error) {
        if (signal.aborted) return;
        this.logger.warn('route event consumer failed; resuming', {
          from: this.next,
          error: error instanceof Error ? error.message : String(error),
        });
      }
      if (signal.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, this.retryMs));
    }
  }
}
