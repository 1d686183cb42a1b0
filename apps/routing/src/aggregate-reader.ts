import { DomainError, type AggregateType, type StoredEvent } from '#contracts';
import type { AggregateHistory, EventStore } from '#eventstore';

/** Whether a NATS / JetStream failure is about the broker being busy or away (worth retrying), not the request. */
export function isTransientNatsError(error: unknown): boolean {
  const name = (error as { name?: unknown })?.name;
  const message = String((error as { message?: unknown })?.message ?? '');
  return (
    name === 'TimeoutError' ||
    name === 'JetStreamNotEnabled' ||
    name === 'NoRespondersError' ||
    /timeout|timed out|no responders|jetstream is not enabled|connection (closed|draining)|disconnect/i.test(
      message,
    )
  );
}

/** Runs `work`, and once more after a short pause, while it fails for a transient broker reason. */
export async function retryTransient<T>(work: () => Promise<T>, delaysMs = [50, 200, 500]): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (!isTransientNatsError(error) || attempt >= delaysMs.length) throw error;
      await new Promise((resolve) => setTimeout(resolve, delaysMs[attempt]));
    }
  }
}

/** A transient broker failure as the answer a client can act on: 503, retry with the same key. */
export function asUnavailable(error: unknown): unknown {
  return isTransientNatsError(error)
    ? new DomainError(
        'unavailable',
        'the event log is busy or unreachable; retry with the same Idempotency-Key',
      )
    : error;
}

/**
 * Reads aggregates with a cache of their histories by last sequence. The log is append-only (the stream
 * denies delete and purge), so a subject whose last sequence has not moved has exactly the events read
 * before: one direct get of the subject's last message replaces the consumers a full read needs.
 */
export class AggregateReader {
  private readonly cache = new Map<string, AggregateHistory>();

  constructor(
    private readonly store: EventStore,
    private readonly capacity = 20_000,
  ) {}

  async read(type: AggregateType, id: string): Promise<AggregateHistory> {
    const subject = this.store.subjectOf(type, id);
    const last = await retryTransient(() => this.store.lastSequenceOfSubject(subject));
    if (last === 0) return { events: [], lastSequence: 0 };
    const cached = this.cache.get(subject);
    if (cached && cached.lastSequence === last) {
      // Most recently used last.
      this.cache.delete(subject);
      this.cache.set(subject, cached);
      return cached;
    }
    const history = await retryTransient(() => this.store.readAggregate(type, id));
    this.remember(subject, history);
    return history;
  }

  /** What an append just stored extends a cached history without reading it again. */
  appended(type: AggregateType, id: string, before: AggregateHistory, events: readonly StoredEvent[]): void {
    if (events.length === 0) return;
    const subject = this.store.subjectOf(type, id);
    const known = new Set(before.events.map((event) => event.sequence));
    const fresh = events.filter(
      (event) => !known.has(event.sequence) && event.sequence > before.lastSequence,
    );
    // Only a contiguous extension is certain; anything else is read again next time.
    if (fresh.length !== events.length) {
      this.cache.delete(subject);
      return;
    }
    this.remember(subject, {
      events: [...before.events, ...fresh],
      lastSequence: fresh[fresh.length - 1]!.sequence,
    });
  }

  private remember(subject: string, history: AggregateHistory): void {
    this.cache.delete(subject);
    this.cache.set(subject, history);
    if (this.cache.size > this.capacity) this.cache.delete(this.cache.keys().next().value!);
  }
}
