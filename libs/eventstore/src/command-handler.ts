import type {
  AggregateType,
  CommandEnvelope,
  DomainEvent,
  EventContext,
  NewEvent,
  StoredEvent,
} from '#contracts';
import { ConcurrencyError } from './errors.js';
import type { AggregateHistory, AppendOptions, AppendResult, NewEventInput } from './event-store.js';

/**
 * How often a decision is taken again after its append lost a race: each lost race means another writer
 * got in, so a handful of losses in a row is a burst on one aggregate (racing enrollments, claims of one
 * host name). Past that the caller gets the conflict and may retry the whole command.
 */
export const MAX_DECIDE_ATTEMPTS = 8;

/**
 * The pause before deciding again: random, so racers that lost together do not collide again in step,
 * and a little longer after each loss. At most 20 ms × attempt.
 */
export function pauseBeforeRetry(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
}

export interface AggregateRef {
  type: AggregateType;
  id: string;
}

/** What the handler needs of a store: the EventStore, or a reader that caches histories in front of it. */
export interface AggregateStore {
  readAggregate(type: AggregateType, id: string): Promise<AggregateHistory>;
  append(
    aggregate: AggregateRef,
    events: readonly NewEventInput[],
    options: AppendOptions,
  ): Promise<AppendResult>;
}

/** A decision on the state folded from the aggregate's history (it may read other aggregates first). */
export type Decide<S> = (state: S, history: AggregateHistory) => NewEvent[] | Promise<NewEvent[]>;

export interface HandleOptions {
  context: EventContext;
  /**
   * Becomes each event's Nats-Msg-Id (scoped by subject, `#index` per event), so the same command
   * retried appends nothing twice. Leave it out for decisions that complete what an earlier writer left
   * half-way (their events after a prefix would reuse the prefix's ids and be dropped as duplicates).
   */
  commandId?: string;
  /**
   * false: append without the concurrency check, whatever came in between — for a decision that
   * protects no invariant (an address the admin approved for sharing). Default true.
   */
  guarded?: boolean;
  /** The history already read for this decision, if any: the first attempt decides on it (one read less). */
  history?: AggregateHistory;
  /** What to throw when the last attempt lost its race too; by default the ConcurrencyError itself. */
  whenContended?: (error: ConcurrencyError) => unknown;
}

export interface HandleResult<S> {
  /** The state the (last) decision was taken on. */
  state: S;
  /** The state after the stored events (`state` when nothing was decided). */
  newState: S;
  /** What was decided: none when there was nothing to do. */
  events: NewEvent[];
  /** What the store holds for them (an earlier attempt's events for duplicates). */
  stored: StoredEvent[];
  /** The aggregate's last sequence after the append (or the one decided on, when nothing was). */
  lastSequence: number;
}

export interface CommandHandler<S> {
  /**
   * Load → fold → decide → append with the history's last sequence; when another append got in between,
   * pause and do it all again, MAX_DECIDE_ATTEMPTS times at most. Refusals (thrown by `decide`) and any
   * other error end it at once.
   */
  handle(
    store: AggregateStore,
    aggregate: AggregateRef,
    decide: Decide<S>,
    options: HandleOptions,
  ): Promise<HandleResult<S>>;
}

/** The command handler of one aggregate type, built once from its fold (in the spirit of emmett's). */
export function commandHandler<S>(aggregate: {
  evolve: (state: S, event: DomainEvent) => S;
  initialState: S;
}): CommandHandler<S> {
  const { evolve, initialState } = aggregate;
  const fold = (events: readonly StoredEvent[]) => (events as DomainEvent[]).reduce(evolve, initialState);
  return {
    async handle(store, ref, decide, options) {
      for (let attempt = 1; ; attempt++) {
        const history =
          attempt === 1 && options.history ? options.history : await store.readAggregate(ref.type, ref.id);
        const state = fold(history.events);
        const events = await decide(state, history);
        if (events.length === 0)
          return { state, newState: state, events, stored: [], lastSequence: history.lastSequence };
        try {
          const result = await store.append(ref, events, {
            context: options.context,
            ...(options.guarded === false ? {} : { expectedSequence: history.lastSequence }),
            commandId: options.commandId,
          });
          const newState = (result.events as DomainEvent[]).reduce(evolve, state);
          return { state, newState, events, stored: result.events, lastSequence: result.lastSequence };
        } catch (error) {
          if (!(error instanceof ConcurrencyError)) throw error;
          if (attempt >= MAX_DECIDE_ATTEMPTS)
            throw options.whenContended ? options.whenContended(error) : error;
          await pauseBeforeRetry(attempt);
        }
      }
    },
  };
}

/** The context of the events a command appends: its actor and correlation, caused by the command. */
export function contextOf(
  command: Pick<CommandEnvelope, 'actor' | 'correlationId' | 'commandId'>,
): EventContext {
  return { actor: command.actor, correlationId: command.correlationId, causationId: command.commandId };
}
