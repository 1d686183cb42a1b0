import type { StoredEvent } from '#contracts';
import type { EventStore, RawLogEntry } from '#eventstore';
import type { Projection } from './projection.js';

/** A slice of the log, decoded; events that cannot be decoded are kept apart to be dead-lettered. */
export interface DecodedBatch {
  lastSequence: number;
  size: number;
  events: StoredEvent[];
  undecodable: { entry: RawLogEntry; error: unknown }[];
}

function emptyBatch(): DecodedBatch {
  return { lastSequence: 0, size: 0, events: [], undecodable: [] };
}

export interface LogBatchOptions {
  batchSize: number;
  /** The last sequence to read (a rebuild's target): its batch ends there. */
  until: number | undefined;
  /** Whether some projection reads the data of events of this type; the others are decoded without it. */
  needsData: (type: string) => boolean;
}

/** Groups the log into decoded batches: full ones while catching up, single events once live. */
export async function* decodedBatches(
  store: EventStore,
  entries: AsyncIterable<RawLogEntry>,
  options: LogBatchOptions,
): AsyncGenerator<DecodedBatch> {
  let batch = emptyBatch();
  for await (const entry of entries) {
    try {
      batch.events.push(store.decode(entry, { data: options.needsData }));
    } catch (error) {
      // Decoded synchronously on the hot path; only a failure asks whether an admin set it aside.
      if (!(await store.isQuarantined(entry.sequence))) batch.undecodable.push({ entry, error });
    }
    batch.lastSequence = entry.sequence;
    batch.size++;
    if (batch.size >= options.batchSize || entry.pending === 0 || entry.sequence === options.until) {
      yield batch;
      batch = emptyBatch();
    }
  }
  if (batch.size > 0) yield batch;
}

/** Whether some of the projections reads the data of events of a type (memoised per type). */
export function dataNeededBy(projections: readonly Projection[]): (type: string) => boolean {
  const needed = new Map<string, boolean>();
  return (type) => {
    let reads = needed.get(type);
    if (reads === undefined) {
      reads = projections.some(
        (projection) =>
          projection.readsData !== false && (!projection.eventTypes || projection.eventTypes.includes(type)),
      );
      needed.set(type, reads);
    }
    return reads;
  };
}

const acceptedTypes = new WeakMap<Projection, ReadonlySet<string>>();

/** The events of a batch after `after` that a projection reads. */
export function relevantEvents(
  projection: Projection,
  events: readonly StoredEvent[],
  after: number,
): StoredEvent[] {
  let accepts = acceptedTypes.get(projection);
  if (accepts === undefined && projection.eventTypes) {
    accepts = new Set(projection.eventTypes);
    acceptedTypes.set(projection, accepts);
  }
  return events.filter((event) => event.sequence > after && (!accepts || accepts.has(event.type)));
}

/** The log entry of a decoded event, for a dead letter (its payload is re-encoded from the event). */
export function entryOf(event: StoredEvent): RawLogEntry {
  return { sequence: event.sequence, subject: event.subject, data: new Uint8Array(), pending: 0 };
}
