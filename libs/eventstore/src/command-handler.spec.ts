import { DomainError, type DomainEvent, type NewEvent, type StoredEvent } from '#contracts';
import { commandHandler, contextOf, MAX_DECIDE_ATTEMPTS, type AggregateStore } from './command-handler.js';
import { ConcurrencyError } from './errors.js';
import type { AggregateHistory, AppendOptions } from './event-store.js';

/** Counts RouteRemoved events: enough state to see what a decision was taken on. */
const removals = commandHandler<number>({
  evolve: (count: number, event: DomainEvent) => (event.type === 'RouteRemoved' ? count + 1 : count),
  initialState: 0,
});
const removal: NewEvent = { type: 'RouteRemoved', data: { routeId: 'r', reason: 'x' } };
const ref = { type: 'route' as const, id: 'r' };
const context = { actor: { kind: 'system' as const, id: 'test' }, correlationId: 'c' };

/**
 * One aggregate in memory. `racers` appends by other writers happen between a read and the next append,
 * so that many appends lose their race.
 */
class FakeStore implements AggregateStore {
  events: StoredEvent[] = [];
  reads = 0;
  appends: AppendOptions[] = [];

  constructor(private racers = 0) {}

  async readAggregate(): Promise<AggregateHistory> {
    this.reads++;
    return { events: [...this.events], lastSequence: this.events.length };
  }

  async append(_ref: unknown, events: readonly { type: string; data: unknown }[], options: AppendOptions) {
    this.appends.push(options);
    if (this.racers > 0) {
      this.racers--;
      this.store(events);
      throw new ConcurrencyError('events.route.r', options.expectedSequence ?? 0, this.events.length);
    }
    if (options.expectedSequence !== undefined && options.expectedSequence !== this.events.length)
      throw new ConcurrencyError('events.route.r', options.expectedSequence, this.events.length);
    const stored = this.store(events);
    return { outcome: 'appended' as const, events: stored, lastSequence: this.events.length };
  }

  private store(events: readonly { type: string; data: unknown }[]): StoredEvent[] {
    const stored = events.map((event) => ({
      id: `e${this.events.length + 1}`,
      type: event.type,
      schemaVersion: 1,
      aggregate: ref,
      occurredAt: '2030-01-01T00:00:00.000Z',
      actor: context.actor,
      correlationId: 'c',
      causationId: null,
      data: event.data,
      sequence: this.events.length + 1,
      subject: 'events.route.r',
    }));
    this.events.push(...stored);
    return stored;
  }
}

test('a decision is appended with the last sequence it was taken on, and the new state is folded', async () => {
  const store = new FakeStore();
  const result = await removals.handle(store, ref, () => [removal], { context, commandId: 'cmd-1' });
  expect(result).toMatchObject({ state: 0, newState: 1, events: [removal], lastSequence: 1 });
  expect(result.stored.map((event) => event.sequence)).toEqual([1]);
  expect(store.appends).toEqual([{ context, expectedSequence: 0, commandId: 'cmd-1' }]);
});

test('nothing decided: nothing appended', async () => {
  const store = new FakeStore();
  const result = await removals.handle(store, ref, () => [], { context });
  expect(result).toMatchObject({ state: 0, newState: 0, events: [], stored: [], lastSequence: 0 });
  expect(store.appends).toEqual([]);
});

test('a lost race is decided again on the history read anew, with the same command id', async () => {
  const store = new FakeStore(2);
  const seen: number[] = [];
  const result = await removals.handle(
    store,
    ref,
    (state) => {
      seen.push(state);
      return [removal];
    },
    { context, commandId: 'cmd-1' },
  );
  expect(seen).toEqual([0, 1, 2]);
  expect(store.appends.map((options) => [options.expectedSequence, options.commandId])).toEqual([
    [0, 'cmd-1'],
    [1, 'cmd-1'],
    [2, 'cmd-1'],
  ]);
  expect(result).toMatchObject({ state: 2, newState: 3, lastSequence: 3 });
});

test('after MAX_DECIDE_ATTEMPTS lost races the conflict is thrown, or what the caller makes of it', async () => {
  const store = new FakeStore(Infinity);
  await expect(removals.handle(store, ref, () => [removal], { context })).rejects.toBeInstanceOf(
    ConcurrencyError,
  );
  expect(store.appends).toHaveLength(MAX_DECIDE_ATTEMPTS);
  const contended = new DomainError('conflict', 'contended; try again', 'hostname');
  await expect(
    removals.handle(new FakeStore(Infinity), ref, () => [removal], {
      context,
      whenContended: () => contended,
    }),
  ).rejects.toBe(contended);
});

test('a refusal or another error ends it at once', async () => {
  const store = new FakeStore(1);
  let decisions = 0;
  const refusal = new DomainError('gone', 'removed');
  await expect(
    removals.handle(
      store,
      ref,
      () => {
        if (++decisions > 1) throw refusal;
        return [removal];
      },
      { context },
    ),
  ).rejects.toBe(refusal);
  expect(decisions).toBe(2);
  const away = new FakeStore();
  away.append = async () => {
    throw new Error('broker away');
  };
  await expect(removals.handle(away, ref, () => [removal], { context })).rejects.toThrow('broker away');
  expect(away.reads).toBe(1);
});

test('the history given is decided on first (no read); unguarded appends expect no sequence', async () => {
  const store = new FakeStore(1);
  const given = { events: [], lastSequence: 0 };
  const decidedOn: AggregateHistory[] = [];
  await removals.handle(
    store,
    ref,
    (_state, history) => {
      decidedOn.push(history);
      return [removal];
    },
    { context, history: given },
  );
  expect(decidedOn[0]).toBe(given);
  expect(decidedOn[1]).toMatchObject({ lastSequence: 1 });
  expect(store.reads).toBe(1); // only the read after the lost race
  const unguarded = new FakeStore();
  await removals.handle(unguarded, ref, () => [removal], { context, guarded: false });
  expect(unguarded.appends[0]).not.toHaveProperty('expectedSequence');
});

test('the context of a command: its actor and correlation, caused by the command', () => {
  expect(contextOf({ actor: context.actor, correlationId: 'c', commandId: 'k' })).toEqual({
    actor: context.actor,
    correlationId: 'c',
    causationId: 'k',
  });
});
