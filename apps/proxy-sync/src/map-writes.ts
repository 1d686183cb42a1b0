/**
 * How the changes of one map reach HAProxy without a reload: which runtime calls make a planned map
 * change (entry by entry, appended in payloads, or the whole map at once), the map file HAProxy loads at
 * its next reload, and the proof that the runtime holds what was written. `chooseMapWrite` is the pure
 * choice; `MapWriter` makes the calls.
 */
import { diffMap, mapPlanSize, renderMapFile, type MapEntry, type MapName, type MapPlan } from '#haproxy';
import type { DataplaneGateway } from './gateway.js';

/** Above this payload dataplaneapi replaces a runtime map atomically (prepare/commit map) instead of appending. */
const ATOMIC_REPLACE_BYTES = 8192;

export interface MapWriteLimits {
  /** Replace a whole runtime map at once above this many changes (when its payload is above 8 KiB). */
  bulkAbove: number;
  /** Append new entries in payloads (not one call each) above this many. */
  appendAbove: number;
  /** Read each changed entry back up to this many changes; re-read the whole map above. */
  verifyEachUpTo: number;
}

/** The runtime calls that make one map's planned change. */
export type MapWrite =
  /** The whole map at once (`PUT /runtime/maps/{name}` with more than 8 KiB: atomic). */
  | { kind: 'replace'; entries: MapEntry[] }
  /** Every entry goes. */
  | { kind: 'clear' }
  /** Deletes first; then adds and sets, the adds appended in payloads when `append`. */
  | { kind: 'entries'; del: string[]; add: MapEntry[]; set: MapEntry[]; append: boolean };

export function chooseMapWrite(
  plan: MapPlan,
  wanted: ReadonlyMap<string, string>,
  limits: Pick<MapWriteLimits, 'bulkAbove' | 'appendAbove'>,
): MapWrite {
  const size = mapPlanSize(plan);
  const entries = [...wanted].map(([key, value]) => ({ key, value }));
  const payload = entries.reduce((bytes, entry) => bytes + entry.key.length + entry.value.length + 2, 0);
  if (size > limits.bulkAbove && payload > ATOMIC_REPLACE_BYTES) return { kind: 'replace', entries };
  if (size > limits.bulkAbove && entries.length === 0) return { kind: 'clear' };
  // More adds than one round of parallel calls: appended in a few payloads instead of one call each.
  return {
    kind: 'entries',
    del: plan.del,
    add: plan.add,
    set: plan.set,
    append: plan.add.length > limits.appendAbove,
  };
}

/** Each changed key read back, or the whole map read again (many changes). */
export function verifyEach(plan: MapPlan, limits: Pick<MapWriteLimits, 'verifyEachUpTo'>): boolean {
  return mapPlanSize(plan) <= limits.verifyEachUpTo;
}

/** Runtime verification did not find what was just written. */
export class NotVerifiedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotVerifiedError';
  }
}

async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (let index = next++; index < items.length; index = next++) await work(items[index]);
    }),
  );
}

export class MapWriter {
  constructor(
    private readonly gateway: DataplaneGateway,
    private readonly limits: MapWriteLimits & {
      /** Parallel runtime calls while applying entry by entry. */
      concurrency: number;
    },
  ) {}

  /** Changes the runtime map as planned. */
  async apply(name: MapName, plan: MapPlan, wanted: ReadonlyMap<string, string>): Promise<void> {
    const write = chooseMapWrite(plan, wanted, this.limits);
    const { concurrency } = this.limits;
    if (write.kind === 'replace') return this.gateway.replaceMap(name, write.entries);
    if (write.kind === 'clear') return this.gateway.clearMap(name);
    await inParallel(write.del, concurrency, (key) => this.gateway.deleteEntry(name, key));
    if (write.append) {
      await Promise.all([
        this.gateway.appendEntries(name, write.add),
        inParallel(write.set, concurrency, (entry) => this.gateway.setEntry(name, entry)),
      ]);
      return;
    }
    const sets = new Set(write.set);
    await inParallel([...write.add, ...write.set], concurrency, (entry) =>
      sets.has(entry) ? this.gateway.setEntry(name, entry) : this.gateway.addEntry(name, entry),
    );
  }

  /** The map file HAProxy loads at its next reload: written when it changed (or differs after a re-read). */
  async persist(name: MapName, wanted: ReadonlyMap<string, string>, changed: boolean): Promise<void> {
    const text = renderMapFile(wanted);
    if (!changed && (await this.gateway.readMapFile(name)) === text) return;
    await this.gateway.storeMapFile(name, text);
  }

  /** Reads what was written back from the runtime: only then is a route applied. */
  async verify(name: MapName, plan: MapPlan, wanted: ReadonlyMap<string, string>): Promise<void> {
    const { concurrency } = this.limits;
    if (verifyEach(plan, this.limits)) {
      const problems: string[] = [];
      await inParallel([...plan.add, ...plan.set], concurrency, async (entry) => {
        if ((await this.gateway.readEntry(name, entry.key)) !== entry.value) problems.push(entry.key);
      });
      await inParallel(
        plan.del.filter((key) => !wanted.has(key)),
        concurrency,
        async (key) => {
          if ((await this.gateway.readEntry(name, key)) !== undefined) problems.push(key);
        },
      );
      if (problems.length > 0)
        throw new NotVerifiedError(`${name}.map does not hold ${problems.length} change(s)`);
      return;
    }
    const left = diffMap(wanted, await this.gateway.readMap(name));
    if (mapPlanSize(left) > 0)
      throw new NotVerifiedError(`${name}.map still differs in ${mapPlanSize(left)} entries`);
  }
}
