import { expect } from '@jest/globals';
import { DomainError, type AggregateType, type ErrorCode, type NewEvent, type StoredEvent } from '#contracts';

let sequence = 0;

export interface StoredOptions {
  aggregate?: { type: AggregateType; id: string };
  /** When the events occurred (default 2030-01-01T00:00:00Z). */
  at?: Date;
  causationId?: string | null;
}

/** Events as the log would give them back: envelopes with ids and sequences (increasing across a spec). */
export function stored(events: readonly NewEvent[], options: StoredOptions = {}): StoredEvent[] {
  const aggregate = options.aggregate ?? { type: 'agent', id: 'x' };
  const at = options.at ?? new Date('2030-01-01T00:00:00.000Z');
  return events.map((event) => ({
    id: `e${++sequence}`,
    type: event.type,
    schemaVersion: 1,
    aggregate,
    occurredAt: at.toISOString(),
    actor: { kind: 'system', id: 'test' },
    correlationId: 'c',
    causationId: options.causationId ?? null,
    data: event.data,
    sequence,
    subject: `events.${aggregate.type}.${aggregate.id}`,
  }));
}

/** The DomainError `run` throws; fails when it returns, or throws anything else. */
export function refusal(run: () => unknown): DomainError {
  try {
    run();
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

export interface Given<S> {
  /** The state folded from the history. */
  readonly state: S;
  /** The history, stored. */
  readonly events: StoredEvent[];
  /** A decision (or check) on the state: the deciders take the state first, then their command. */
  when<R>(decide: (state: S) => R): When<R>;
}

export interface When<R> {
  /** What the decision gives: the events decided (`[]`: nothing to do), or whatever it returns. */
  then(expected: R): void;
  /** The decision refuses with this code (and names this field, when given); the error, for more. */
  thenRefuses(code: ErrorCode, field?: string): DomainError;
}

/**
 * Given/when/then for a decider: `given(history).when((state) => decide(state, …)).then(events)` or
 * `.thenRefuses(code, field)`. Built from the aggregate's fold; the history may hold events as deciders
 * return them (stored here) or already stored ones (to set their time or order).
 */
export function deciderSpec<S>(
  fold: (events: readonly StoredEvent[]) => S,
  options: StoredOptions = {},
): (...history: (NewEvent | StoredEvent)[][]) => Given<S> {
  return (...history) => {
    const events = history
      .flat()
      .map((event) => ('sequence' in event ? event : stored([event], options)[0]!));
    const state = fold(events);
    return {
      state,
      events,
      when: (decide) => ({
        then: (expected) => expect(decide(state)).toEqual(expected),
        thenRefuses: (code, field) => {
          const error = refusal(() => decide(state));
          expect(field === undefined ? [error.code] : [error.code, error.field]).toEqual(
            field === undefined ? [code] : [code, field],
          );
          return error;
        },
      }),
    };
  };
}
