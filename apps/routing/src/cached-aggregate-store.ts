import { DomainError, type AggregateType, type StoredEvent } from '#contracts';
import type {
  AggregateHistory,
  AggregateStore,
  AppendOptions,
  AppendResult,
  EventStore,
  NewEventInput,
} from '#eventstore';

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
 * The event store with a cache of aggregates' histories by last sequence. The log is append-only (the
 * stream denies delete and purge), so a subject whose last sequence has not moved has exactly the events
 * read before: one direct get of the subject's last message replaces the consumers a full read needs.
 */
export class CachedAggregateStore implements AggregateStore {
  private readonly cache = new Map<string, AggregateHistory>();

  constructor(
    private readonly store: EventStore,
    private readonly capacity = 20_000,
  ) {}

  async readAggregate(type: AggregateType, id: string): Promise<AggregateHistory> {
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

  /**
   * Appends through the store. The history the decision was read from is the cached one whose last
   * sequence the append expected (the same subject at the same sequence holds the same events): what
   * was stored extends it without reading it again.
   */
  async append(
    aggregate: { type: AggregateType; id: string },
    events: readonly NewEventInput[],
    options: AppendOptions,
  ): Promise<AppendResult> {
    const result = await this.store.append(aggregate, events, options);
    const subject = this.store.subjectOf(aggregate.type, aggregate.id);
    const before = options.expectedSequence === 0 ? { events: [], lastSequence: 0 } : this.cache.get(subject);
    if (before !== undefined && before.lastSequence === options.expectedSequence)
      this.appended(aggregate.type, aggregate.id, before, result.events);
    else this.cache.delete(subject);
    return result;
  }

  private appended(
    type: AggregateType,
    id: string,
    before: AggregateHistory,
    events: readonly StoredEvent[],
  ): void {
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
