import { jetstreamManager } from '@nats-io/jetstream';
import { createDomainRegistry, type EventContext, type NewEvent, type RebuildStatus } from '#contracts';
import { EventStore } from '#eventstore';
import { ownedTables } from '../../apps/projector/src/engine/rebuild.js';
import { projections } from '../../apps/projector/src/projections/index.js';
import { AgentsStack, type EnrolledAgent, type StackOptions } from '../harness/stack.js';
import { sleep, waitFor } from '../harness/processes.js';

export const DOMAIN = 'routes.test';

/** Registration, projector (with its commands), routing and API on a private NATS and database. */
export function startRoutesStack(options: StackOptions = {}): Promise<AgentsStack> {
  return AgentsStack.start({
    routing: true,
    projectorCommands: true,
    ...options,
    env: {
      CL_DOMAIN: DOMAIN,
      CL_ROUTING_SNI_ZONES: 'mongodb,redis',
      CL_ROUTING_CLAIM_GRACE_MS: '1500',
      CL_PROJECTOR_BATCH_SIZE: '500',
      // Rebuilds write and forget their rows many times over, so the tests cover reading them back.
      CL_PROJECTOR_REBUILD_ROW_BUDGET: '40',
      ...options.env,
    },
  });
}

/** Enrolls agents through the API, a few at a time (each enrollment is two commands and a broker step). */
export async function enrollAll(
  stack: AgentsStack,
  agents: { id: string; address?: string }[],
  concurrency = 10,
): Promise<Map<string, EnrolledAgent>> {
  const enrolled = new Map<string, EnrolledAgent>();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, agents.length) }, async () => {
      for (let index = next++; index < agents.length; index = next++) {
        const agent = agents[index]!;
        enrolled.set(agent.id, await stack.enroll(agent.id, {}, agent.address));
      }
    }),
  );
  return enrolled;
}

/** The event store over the stack's NATS (service credentials), as proxy-sync would append its reports. */
export async function openStore(stack: AgentsStack): Promise<EventStore> {
  return new EventStore(stack.service, await jetstreamManager(stack.service), {
    registry: createDomainRegistry(),
  });
}

export function proxyContext(node: string): EventContext {
  return { actor: { kind: 'service', id: `proxy-sync/${node}` }, correlationId: `test-${node}` };
}

/** What proxy-sync reports when a node applied a route revision (appended as proxy-sync does). */
export async function reportApplied(
  store: EventStore,
  routeId: string,
  revision: number,
  node = 'front-1',
  propagationMs = 12,
): Promise<number> {
  const event: NewEvent = {
    type: 'RouteApplied',
    data: { routeId, revision, node, configVersion: revision + 10, propagationMs },
  };
  return (await store.append({ type: 'route', id: routeId }, [event], { context: proxyContext(node) }))
    .lastSequence;
}

export async function reportFailed(
  store: EventStore,
  routeId: string,
  revision: number,
  node = 'front-1',
  reason = 'haproxy refused the configuration',
): Promise<number> {
  const event: NewEvent = { type: 'RouteFailed', data: { routeId, revision, node, reason } };
  return (await store.append({ type: 'route', id: routeId }, [event], { context: proxyContext(node) }))
    .lastSequence;
}

/** The lowest checkpoint of the live projections. */
export async function projectorPosition(stack: AgentsStack): Promise<number> {
  const [row]: { position: string | null }[] = await stack.db.dataSource.query(
    'SELECT min(last_sequence) AS position FROM projection_checkpoints WHERE projection = ANY($1)',
    [projections.map((projection) => projection.name)],
  );
  return Number(row?.position ?? 0);
}

/** Waits until every live projection has applied the whole log (and the log stopped growing). */
export async function projectorCaughtUp(stack: AgentsStack, timeoutMs = 30_000): Promise<number> {
  return waitFor(
    'the projector to catch up with the log',
    async () => {
      const end = await stack.lastEventSequence();
      const position = await projectorPosition(stack);
      if (position < end) return undefined;
      await sleep(150);
      return (await stack.lastEventSequence()) === end ? end : undefined;
    },
    { timeoutMs, intervalMs: 50 },
  );
}

/** Every row of every projection table in `schema`, ordered by the primary key. */
export async function snapshot(
  db: { query(sql: string): Promise<unknown> },
  schema = 'public',
): Promise<Record<string, unknown[]>> {
  const result: Record<string, unknown[]> = {};
  for (const table of ownedTables(projections)) {
    result[table] = (await db.query(`SELECT * FROM "${schema}"."${table}" ORDER BY 1`)) as unknown[];
  }
  return result;
}

/** Row-by-row differences between two snapshots, readable in a failure message ([] when equal). */
export function differences(
  expected: Record<string, unknown[]>,
  actual: Record<string, unknown[]>,
): string[] {
  const problems: string[] = [];
  for (const table of new Set([...Object.keys(expected), ...Object.keys(actual)])) {
    const key = (row: unknown) => String(Object.values(row as Record<string, unknown>)[0]);
    const left = new Map((expected[table] ?? []).map((row) => [key(row), JSON.stringify(row)]));
    const right = new Map((actual[table] ?? []).map((row) => [key(row), JSON.stringify(row)]));
    for (const [id, row] of left) {
      if (!right.has(id)) problems.push(`${table}: row ${id} missing`);
      else if (right.get(id) !== row)
        problems.push(`${table}: row ${id} differs:\n  ${row}\n  ${right.get(id)}`);
    }
    for (const id of right.keys()) if (!left.has(id)) problems.push(`${table}: extra row ${id}`);
  }
  return problems.slice(0, 20);
}

/** Polls the API's rebuild progress until the rebuild is done (throws if it failed). */
export async function rebuildFinished(
  stack: AgentsStack,
  admin: string,
  id: string,
  onPoll?: (status: RebuildStatus) => void,
): Promise<RebuildStatus> {
  const final = await waitFor(
    `rebuild ${id}`,
    async () => {
      const response = await stack.request('GET', `admin/projections/rebuilds/${id}`, { token: admin });
      if (response.status !== 200)
        return { error: `rebuild status: ${response.status} ${JSON.stringify(response.body)}` };
      const status = response.body as unknown as RebuildStatus;
      onPoll?.(status);
      return status.phase === 'done' || status.phase === 'failed' ? { status } : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 100 },
  );
  if ('error' in final) throw new Error(final.error);
  if (final.status.phase === 'failed') throw new Error(`rebuild failed: ${final.status.error}`);
  return final.status;
}

/** A small deterministic PRNG (mulberry32), so a failing randomized run can be replayed by its seed. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
