import { randomUUID } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import type { RebuildStatus } from '#contracts';
import type { EventStore } from '#eventstore';
import { retryTransient } from '../../apps/routing/src/cached-aggregate-store.js';
import type { AgentsStack, EnrolledAgent } from '../harness/stack.js';
import { sleep, waitFor } from '../harness/processes.js';
import {
  differences,
  DOMAIN,
  enrollAll,
  openStore,
  projectorCaughtUp,
  random,
  rebuildFinished,
  reportApplied,
  reportFailed,
  snapshot,
  startRoutesStack,
} from './helpers.js';

/**
 * Guarantee 2 for routes: projections equal a fold of the log. A randomized run of more than 2,000 route
 * commands (agents and an admin, racing for names, updating, removing, retrying, deregistering agents, with
 * proxy nodes reporting), then: a full rebuild swapped in while the API keeps answering; every table equal
 * row by row to the live projector's; time travel as of a sequence and a time equal to what the live
 * projection was then; dead letters listed and retried.
 */
const SEED = Number(process.env.CL_TEST_SEED ?? 5_2025);
const COMMANDS = 2_100;
const WORKERS = 6;

let stack: AgentsStack;
let store: EventStore;
let admin: string;
let agents: Map<string, EnrolledAgent>;

const AGENTS = Array.from({ length: 8 }, (_, index) => ({
  id: `tenant-${index}`,
  address: index === 7 ? '2001:db8::7' : `198.51.100.${index + 1}`,
}));
const addressOf = new Map(AGENTS.map((agent) => [agent.id, agent.address]));

beforeAll(async () => {
  stack = await startRoutesStack({ env: { CL_ROUTING_CLAIM_GRACE_MS: '60000' } });
  store = await openStore(stack);
  admin = stack.adminToken('alice');
  agents = await enrollAll(stack, AGENTS);
}, 120_000);
afterAll(async () => {
  await stack?.stop();
});

/** Every projection table and the position, read in one repeatable-read transaction (a batch boundary). */
async function consistentSnapshot(): Promise<{ sequence: number; tables: Record<string, unknown[]> }> {
  const runner = stack.db.dataSource.createQueryRunner();
  await runner.connect();
  try {
    await runner.query('START TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    const [{ sequence }] = await runner.query(
      `SELECT min(last_sequence)::int AS sequence FROM projection_checkpoints`,
    );
    const tables = await snapshot(runner);
    await runner.query('COMMIT');
    return { sequence, tables };
  } finally {
    await runner.release();
  }
}

async function quiescent(): Promise<number> {
  return projectorCaughtUp(stack, 60_000);
}

/** Routing has removed the routes of every deregistered agent, and the projector has the whole log. */
async function settle(deregistered: string[]): Promise<number> {
  await waitFor(
    "the deregistered agents' routes to be removed",
    async () => {
      const [{ n }] = await stack.db.dataSource.query(
        `SELECT count(*)::int AS n FROM routes WHERE agent_id = ANY($1) AND status <> 'removed'`,
        [deregistered],
      );
      return n === 0 || undefined;
    },
    { timeoutMs: 60_000 },
  );
  return quiescent();
}

interface KnownRoute {
  routeId: string;
  agentId: string;
  kind: 'http' | 'tls-sni';
  revision: number;
}

const HTTP_NAMES = Array.from({ length: 70 }, (_, index) => `app-${index}`);
const ZONES = ['mongodb', 'redis'];
const SERVICES = ['', 'db', 'cache'];

/** The randomized workload: a shared model of what exists, and counters of what happened. */
class Workload {
  readonly routes = new Map<string, KnownRoute>();
  readonly live = new Set(AGENTS.map((agent) => agent.id));
  readonly deregistered: string[] = [];
  readonly statuses = new Map<string, number>();
  readonly unexpected: string[] = [];
  commands = 0;
  reports = 0;
  /** Answers 503 (the broker busy): retried with the same Idempotency-Key, as a client should. */
  retries = 0;
  private lastCreate?: { token: string; body: unknown; key: string; routeId: string };

  constructor(private readonly next: () => number) {}

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  private liveAgent(): string {
    return this.pick([...this.live]);
  }

  private knownRoute(): KnownRoute | undefined {
    const all = [...this.routes.values()];
    return all.length > 0 ? this.pick(all) : undefined;
  }

  /** A request as a careful client sends it: a 503 is retried (same Idempotency-Key) a few times. */
  private async send(method: string, path: string, options: Parameters<AgentsStack['request']>[2]) {
    for (let attempt = 1; ; attempt++) {
      const response = await stack.request(method, path, options);
      if (response.status !== 503 || attempt >= 4) return response;
      this.retries++;
      await sleep(100 * attempt);
    }
  }

  private record(what: string, status: number, allowed: number[], body: unknown): void {
    const key = `${what} ${status}`;
    this.statuses.set(key, (this.statuses.get(key) ?? 0) + 1);
    if (!allowed.includes(status)) this.unexpected.push(`${key}: ${JSON.stringify(body).slice(0, 300)}`);
  }

  async step(): Promise<void> {
    const roll = this.next();
    if (roll < 0.3) return this.createHttp();
    if (roll < 0.4) return this.createSni();
    if (roll < 0.55) return this.update();
    if (roll < 0.66) return this.remove();
    if (roll < 0.71) return this.retryCreate();
    if (roll < 0.86) return this.report();
    if (roll < 0.92) return this.bad();
    return this.read();
  }

  private async create(agentId: string, body: Record<string, unknown>, asAdmin: boolean): Promise<void> {
    const token = asAdmin ? admin : agents.get(agentId)!.accessToken;
    const key = randomUUID();
    const fullBody = asAdmin ? { ...body, agentId } : body;
    this.commands++;
    const response = await this.send('POST', 'routes', {
      token,
      body: fullBody,
      headers: { 'idempotency-key': key },
    });
    // 409: name taken, or the agent was deregistered meanwhile; 401: its token died with it.
    this.record('create', response.status, [202, 409, 401], response.body);
    if (response.status === 202) {
      const routeId = response.body.routeId as string;
      this.routes.set(routeId, { routeId, agentId, kind: body.kind as KnownRoute['kind'], revision: 1 });
      this.lastCreate = { token, body: fullBody, key, routeId };
    }
  }

  private async createHttp(): Promise<void> {
    const agentId = this.liveAgent();
    const asAdmin = this.next() < 0.2;
    const host = asAdmin ? `203.0.113.${1 + Math.floor(this.next() * 200)}` : addressOf.get(agentId)!;
    await this.create(
      agentId,
      {
        kind: 'http',
        ...(this.next() < 0.5
          ? { subdomain: this.pick(HTTP_NAMES) }
          : { hostname: `${this.pick(HTTP_NAMES)}.apps.${DOMAIN}` }),
        target: { host, port: 1024 + Math.floor(this.next() * 60_000) },
        ...(this.next() < 0.3 ? { options: { tlsToTarget: this.next() < 0.5 } } : {}),
      },
      asAdmin,
    );
  }

  private async createSni(): Promise<void> {
    const agentId = this.liveAgent();
    const service = this.pick(SERVICES);
    await this.create(
      agentId,
      {
        kind: 'tls-sni',
        hostname: `${service ? `${service}.` : ''}${agentId}.${this.pick(ZONES)}.${DOMAIN}`,
        target: { host: addressOf.get(agentId)!, port: 27017 + Math.floor(this.next() * 10) },
      },
      this.next() < 0.2,
    );
  }

  private async update(): Promise<void> {
    const route = this.knownRoute();
    if (!route) return;
    const asAdmin = this.next() < 0.3 || !this.live.has(route.agentId);
    const body: Record<string, unknown> = {
      target: { host: addressOf.get(route.agentId)!, port: 1024 + Math.floor(this.next() * 60_000) },
    };
    if (route.kind === 'http' && this.next() < 0.4) body.options = { tlsToTarget: this.next() < 0.5 };
    this.commands++;
    const response = await this.send('PATCH', `routes/${route.routeId}`, {
      token: asAdmin ? admin : agents.get(route.agentId)!.accessToken,
      body,
      headers: { 'idempotency-key': randomUUID() },
    });
    // 410: removed meanwhile (by another worker or a deregistration); 409: its agent was deregistered.
    this.record('update', response.status, [202, 410, 409, 401], response.body);
    if (response.status === 202) route.revision = Math.max(route.revision, response.body.revision as number);
    if (response.status === 410) this.routes.delete(route.routeId);
  }

  private async remove(): Promise<void> {
    const route = this.knownRoute();
    if (!route) return;
    const asAdmin = this.next() < 0.3 || !this.live.has(route.agentId);
    this.commands++;
    const response = await this.send('DELETE', `routes/${route.routeId}`, {
      token: asAdmin ? admin : agents.get(route.agentId)!.accessToken,
    });
    this.record('remove', response.status, [202, 401], response.body);
    if (response.status === 202) this.routes.delete(route.routeId);
  }

  private async retryCreate(): Promise<void> {
    const last = this.lastCreate;
    if (!last) return this.createHttp();
    this.commands++;
    const response = await this.send('POST', 'routes', {
      token: last.token,
      body: last.body,
      headers: { 'idempotency-key': last.key },
    });
    this.record('retry', response.status, [202, 401, 409], response.body);
    if (response.status === 202 && response.body.routeId !== last.routeId) {
      this.unexpected.push(`a retry made another route: ${String(response.body.routeId)} ≠ ${last.routeId}`);
    }
  }

  /** A proxy node reports on a route: applied for the current revision mostly, sometimes old or failed. */
  private async report(): Promise<void> {
    const route = this.knownRoute();
    if (!route) return;
    const node = this.pick(['front-1', 'front-2']);
    const roll = this.next();
    const revision = roll < 0.15 && route.revision > 1 ? route.revision - 1 : route.revision;
    this.reports++;
    const propagationMs = Math.round(this.next() * 500);
    // As proxy-sync does: a report whose append timed out is sent again (the same report is harmless).
    await retryTransient(() =>
      roll < 0.75
        ? reportApplied(store, route.routeId, revision, node, propagationMs)
        : reportFailed(store, route.routeId, revision, node, `config check failed on ${node}`),
    );
  }

  private async bad(): Promise<void> {
    const agentId = this.liveAgent();
    this.commands++;
    const response = await this.send('POST', 'routes', {
      token: agents.get(agentId)!.accessToken,
      body: this.pick([
        { kind: 'http', subdomain: 'bad\nname', target: { host: addressOf.get(agentId), port: 80 } },
        { kind: 'http', subdomain: 'ok-name', target: { host: addressOf.get(agentId), port: 0 } },
        { kind: 'http', subdomain: 'ok-name', target: { host: '10.9.9.9', port: 80 } },
        {
          kind: 'tls-sni',
          hostname: `x.other.mongodb.${DOMAIN}`,
          target: { host: addressOf.get(agentId), port: 1 },
        },
      ]),
    });
    this.record('bad', response.status, [400, 403, 401], response.body);
  }

  private async read(): Promise<void> {
    const route = this.knownRoute();
    const response = route
      ? await stack.request('GET', `routes/${route.routeId}`, { token: admin })
      : await stack.request('GET', 'routes?limit=20', { token: admin });
    this.record('read', response.status, [200], response.body);
  }

  /** Deregisters one agent: the routing service removes its routes. */
  async deregister(): Promise<void> {
    const agentId = [...this.live].sort()[0]!;
    this.live.delete(agentId);
    this.deregistered.push(agentId);
    this.commands++;
    const response = await stack.request('DELETE', `agents/${agentId}`, {
      token: admin,
      body: { reason: 'replay test' },
    });
    this.record('deregister', response.status, [200], response.body);
  }

  /** Runs `WORKERS` concurrent loops until `target` commands were sent. */
  async run(target: number, deregisterAt: number[]): Promise<void> {
    const pending = [...deregisterAt];
    await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        while (this.commands < target) {
          if (pending.length > 0 && this.commands >= pending[0]!) {
            pending.shift();
            await this.deregister();
          }
          await this.step();
        }
      }),
    );
  }
}

let workload: Workload;
let midpoint: { sequence: number; tables: Record<string, unknown[]>; time: string; routes: unknown };
let finalState: { sequence: number; tables: Record<string, unknown[]> };

test(`a randomized run of ${COMMANDS} route commands keeps one owner per host name (seed ${SEED})`, async () => {
  workload = new Workload(random(SEED));
  const started = Date.now();
  await workload.run(COMMANDS / 2, [COMMANDS * 0.3]);

  // The midpoint, for time travel: everything quiet, the live state as it is at sequence N.
  await settle(workload.deregistered);
  midpoint = {
    ...(await consistentSnapshot()),
    time: new Date().toISOString(),
    routes: (await stack.request('GET', 'routes?limit=500', { token: admin })).body,
  };
  expect(midpoint.sequence).toBe(await stack.lastEventSequence());
  await sleep(100);

  await workload.run(COMMANDS, [COMMANDS * 0.7]);
  await settle(workload.deregistered);
  finalState = await consistentSnapshot();
  const seconds = (Date.now() - started) / 1000;
  console.log(
    `replay workload: ${workload.commands} commands (${workload.retries} retried after a 503) and ` +
      `${workload.reports} proxy reports in ${seconds.toFixed(1)} s; ` +
      `log at ${finalState.sequence}; ${JSON.stringify(Object.fromEntries([...workload.statuses].sort()))}`,
  );

  expect(workload.unexpected).toEqual([]);
  expect(workload.commands).toBeGreaterThanOrEqual(2_000);
  // Both outcomes happened often enough for the run to mean something.
  expect(workload.statuses.get('create 202') ?? 0).toBeGreaterThan(200);
  expect(workload.statuses.get('create 409') ?? 0).toBeGreaterThan(50);
  expect(workload.statuses.get('update 202') ?? 0).toBeGreaterThan(100);
  expect(workload.statuses.get('remove 202') ?? 0).toBeGreaterThan(100);

  // One owner per host name: live routes have distinct names, each held by exactly its route.
  const live: { route_id: string; agent_id: string; hostname: string }[] = await stack.db.dataSource.query(
    `SELECT route_id, agent_id, hostname FROM routes WHERE status <> 'removed'`,
  );
  expect(new Set(live.map((route) => route.hostname)).size).toBe(live.length);
  const owners: { hostname: string; route_id: string; agent_id: string }[] = await stack.db.dataSource.query(
    'SELECT hostname, route_id, agent_id FROM hostnames',
  );
  expect(owners.map((owner) => [owner.hostname, owner.route_id, owner.agent_id]).sort()).toEqual(
    live.map((route) => [route.hostname, route.route_id, route.agent_id]).sort(),
  );
  expect(live.some((route) => workload.deregistered.includes(route.agent_id))).toBe(false);
  const statuses = await stack.db.dataSource.query('SELECT DISTINCT status FROM routes ORDER BY status');
  expect(statuses.map((row: { status: string }) => row.status)).toEqual([
    'active',
    'failed',
    'pending',
    'removed',
  ]);
}, 600_000);

test('a full rebuild swaps in exactly the live rows while the API keeps answering', async () => {
  const before = await consistentSnapshot();
  const started = await stack.request('POST', 'admin/projections/all/rebuild', { token: admin, body: {} });
  expect(started).toMatchObject({ status: 202, body: { mode: 'swap' } });
  expect(started.body.schema).toMatch(/^rebuild_/);
  const id = started.body.id as string;

  let done: RebuildStatus | undefined;
  let failure: unknown;
  const phases = new Set<string>();
  void rebuildFinished(stack, admin, id, (status) => phases.add(status.phase)).then(
    (status) => (done = status),
    (error: unknown) => (failure = error),
  );
  const answered: number[] = [];
  const agent = [...workload.live][0]!;
  const token = agents.get(agent)!.accessToken;
  const someRoute = [...workload.routes.values()].find((route) => route.agentId === agent);
  let index = 0;
  while (!done && !failure) {
    const calls = await Promise.all([
      stack.request('GET', 'routes?limit=50', { token: admin }),
      stack.request('GET', 'routes', { token }),
      someRoute
        ? stack.request('GET', `routes/${someRoute.routeId}`, { token })
        : stack.request('GET', 'routes', { token }),
      stack.request('GET', 'events?limit=20', { token: admin }),
      stack.request('POST', 'routes', {
        token,
        body: {
          kind: 'http',
          subdomain: `during-${index++}`,
          target: { host: addressOf.get(agent), port: 8080 },
        },
      }),
    ]);
    for (const call of calls) answered.push(call.status);
  }
  if (failure) throw failure;
  expect(answered.length).toBeGreaterThanOrEqual(5);
  expect(answered.filter((status) => status >= 500)).toEqual([]);
  expect(done!.differences!.length).toBeGreaterThanOrEqual(6);
  expect(done!.differences!.filter((difference) => difference.onlyLive + difference.onlyRebuilt > 0)).toEqual(
    [],
  );
  expect(phases.has('done')).toBe(true);
  expect(done!.sequence).toBeGreaterThanOrEqual(before.sequence);

  // The rows as of before the rebuild, folded again from sequence 1, equal what the live projector had.
  const asOf = await stack.request('POST', 'admin/projections/all/rebuild', {
    token: admin,
    body: { asOf: { sequence: before.sequence }, label: 'before_swap' },
  });
  expect(asOf).toMatchObject({ status: 202, body: { mode: 'inspect', schema: 'asof_before_swap' } });
  await rebuildFinished(stack, admin, asOf.body.id as string);
  expect(differences(before.tables, await snapshot(stack.db.dataSource, 'asof_before_swap'))).toEqual([]);

  // And after the swap (and the writes made during the rebuild), the live tables are still a fold of the log.
  await quiescent();
  const after = await consistentSnapshot();
  const end = await stack.request('POST', 'admin/projections/all/rebuild', {
    token: admin,
    body: { asOf: { sequence: after.sequence }, label: 'after_swap' },
  });
  await rebuildFinished(stack, admin, end.body.id as string);
  expect(differences(after.tables, await snapshot(stack.db.dataSource, 'asof_after_swap'))).toEqual([]);
  expect(after.tables.routes!.length).toBeGreaterThan(finalState.tables.routes!.length);
}, 300_000);

test('time travel: the state as of sequence N, or as of a time, equals the live state when it was at N', async () => {
  const bySequence = await stack.request('POST', 'admin/projections/all/rebuild', {
    token: admin,
    body: { mode: 'inspect', asOf: { sequence: midpoint.sequence }, label: 'mid_seq' },
  });
  expect(bySequence.status).toBe(202);
  const bySequenceDone = await rebuildFinished(stack, admin, bySequence.body.id as string);
  expect(bySequenceDone.sequence).toBe(midpoint.sequence);
  expect(differences(midpoint.tables, await snapshot(stack.db.dataSource, 'asof_mid_seq'))).toEqual([]);

  const byTime = await stack.request('POST', 'admin/projections/routes/rebuild', {
    token: admin,
    body: { asOf: { time: midpoint.time }, label: 'mid_time' },
  });
  const byTimeDone = await rebuildFinished(stack, admin, byTime.body.id as string);
  expect(byTimeDone.sequence).toBe(midpoint.sequence);

  // What the dashboard reads: a time-travel view's routes equal the API's answer at the time.
  const view = await stack.request('GET', 'admin/projections/schemas/asof_mid_seq/routes?limit=500', {
    token: admin,
  });
  expect(view).toMatchObject({
    status: 200,
    body: { schema: 'asof_mid_seq', asOfSequence: midpoint.sequence },
  });
  expect({ routes: view.body.routes, total: view.body.total }).toEqual(midpoint.routes);
  const timeView = await stack.request('GET', 'admin/projections/schemas/asof_mid_time/routes?limit=500', {
    token: admin,
  });
  expect(timeView.body.routes).toEqual((midpoint.routes as { routes: unknown }).routes);
  const agentsView = await stack.request('GET', 'admin/projections/schemas/asof_mid_seq/agents', {
    token: admin,
  });
  expect(
    (agentsView.body.agents as { status: string }[]).filter((agent) => agent.status === 'deregistered'),
  ).toHaveLength(1);
  const hostnamesView = await stack.request(
    'GET',
    'admin/projections/schemas/asof_mid_seq/hostnames?limit=500',
    { token: admin },
  );
  expect(hostnamesView.body.hostnames).toHaveLength((midpoint.tables.hostnames ?? []).length);
  // mid_time rebuilt the routes projection only.
  expect(
    (await stack.request('GET', 'admin/projections/schemas/asof_mid_time/agents', { token: admin })).status,
  ).toBe(404);

  const schemas = await stack.request('GET', 'admin/projections/schemas', { token: admin });
  const names = (schemas.body.schemas as { schema: string; checkpoints: Record<string, number> }[]).map(
    (entry) => entry.schema,
  );
  expect(names).toEqual(
    expect.arrayContaining(['asof_mid_seq', 'asof_mid_time', 'asof_before_swap', 'asof_after_swap']),
  );
  expect(names.filter((name) => name.startsWith('rebuild_'))).toEqual([]);
  const dropped = await stack.request('DELETE', 'admin/projections/schemas/asof_mid_time', { token: admin });
  expect(dropped.status).toBe(200);
  expect(
    (await stack.request('GET', 'admin/projections/schemas/asof_mid_time/routes', { token: admin })).status,
  ).toBe(404);
  expect(
    (await stack.request('DELETE', 'admin/projections/schemas/public', { token: admin })).body,
  ).toMatchObject({ field: 'schema' });
  const state = await stack.request('GET', 'admin/projections/status', { token: admin });
  expect(state).toMatchObject({
    status: 200,
    body: { projections: expect.arrayContaining(['routes', 'hostnames']) },
  });
  expect(state.body.position).toBeGreaterThanOrEqual(midpoint.sequence);

  // The live list's filters and paging agree with the table.
  const [{ removed }] = await stack.db.dataSource.query(
    `SELECT count(*)::int AS removed FROM routes WHERE status = 'removed' AND kind = 'http'`,
  );
  const page = await stack.request('GET', 'routes?status=removed&kind=http&limit=7&offset=3', {
    token: admin,
  });
  expect(page.body.total).toBe(removed);
  expect(page.body.routes).toHaveLength(Math.min(7, Math.max(removed - 3, 0)));
  expect(
    (page.body.routes as { status: string; kind: string }[]).every(
      (r) => r.status === 'removed' && r.kind === 'http',
    ),
  ).toBe(true);
  const first = await stack.request('GET', 'routes?status=removed&kind=http&limit=3', { token: admin });
  const ids = (response: { body: Record<string, unknown> }) =>
    (response.body.routes as { routeId: string }[]).map((r) => r.routeId);
  const both = await stack.request('GET', 'routes?status=removed&kind=http&limit=10', { token: admin });
  expect([...ids(first), ...ids(page)]).toEqual(ids(both));

  const rebuilds = await stack.request('GET', 'admin/projections/rebuilds', { token: admin });
  expect((rebuilds.body.rebuilds as unknown[]).length).toBeGreaterThanOrEqual(5);
  const bad = await stack.request('POST', 'admin/projections/routes/rebuild', {
    token: admin,
    body: { mode: 'swap', asOf: { sequence: 3 } },
  });
  expect(bad).toMatchObject({ status: 400, body: { field: 'asOf' } });
  const again = await stack.request('POST', 'admin/projections/all/rebuild', {
    token: admin,
    body: { asOf: { sequence: 1 }, label: 'mid_seq' },
  });
  expect(again).toMatchObject({ status: 409, body: { field: 'label' } });
  const unknown = await stack.request('POST', 'admin/projections/nope/rebuild', { token: admin, body: {} });
  expect(unknown).toMatchObject({ status: 404, body: { field: 'projections' } });
}, 300_000);

test('dead letters are listed, and retried: by the consumer, or by rebuilding the projection', async () => {
  // A message that is not an event, on an agent subject: the projector and routing's consumer both
  // dead-letter it (the real path), and no retry can fix it.
  const poison = await jetstream(stack.service).publish('events.agent.poison', '{"not": "an event"}');
  await waitFor('both dead letters', async () => {
    const listed = await stack.request('GET', 'admin/dead-letters?status=open&limit=100', { token: admin });
    const letters = listed.body.deadLetters as { consumer: string; sequence: number }[];
    const mine = letters.filter((letter) => letter.sequence === poison.seq).map((letter) => letter.consumer);
    return mine.includes('routing') && mine.includes('projection:agents') ? letters : undefined;
  });
  const routingOnly = await stack.request('GET', 'admin/dead-letters?consumer=routing', { token: admin });
  const routingLetter = (
    routingOnly.body.deadLetters as { id: string; consumer: string; sequence: number }[]
  ).find((letter) => letter.sequence === poison.seq)!;
  expect(routingLetter.consumer).toBe('routing');
  const paged = await stack.request('GET', 'admin/dead-letters?limit=1', { token: admin });
  expect(paged.body.next).toMatchObject({ before: expect.any(String) });

  // Retried by routing's consumer: still undecodable, so it stays open with the new error.
  const again = await stack.request('POST', `admin/dead-letters/${routingLetter.id}/retry`, { token: admin });
  expect(again).toMatchObject({ status: 200, body: { outcome: 'failed', deadLetter: { status: 'open' } } });

  // Retried by a swap rebuild of a projection that reads agent subjects (a rebuild reads only the subjects
  // of its projections): the rebuild dead-letters it again, so it stays open.
  const projectionLetters = await stack.request('GET', 'admin/dead-letters?consumer=projection:agents', {
    token: admin,
  });
  const poisonLetter = (projectionLetters.body.deadLetters as { id: string; sequence: number }[]).find(
    (letter) => letter.sequence === poison.seq,
  )!;
  const rebuilding = await stack.request('POST', `admin/dead-letters/${poisonLetter.id}/retry`, {
    token: admin,
  });
  expect(rebuilding).toMatchObject({
    status: 202,
    body: { outcome: 'rebuilding', deadLetter: { status: 'retrying' } },
  });
  await rebuildFinished(stack, admin, (rebuilding.body.rebuild as { id: string }).id);
  await waitFor('the dead letter to be settled', async () => {
    const letter = await stack.request('GET', `admin/dead-letters/${poisonLetter.id}`, { token: admin });
    return letter.body.status === 'open' || undefined;
  });
  await sleep(1_200);
  expect(
    (await stack.request('GET', `admin/dead-letters/${poisonLetter.id}`, { token: admin })).body.status,
  ).toBe('open');

  // After a fix, an event that now succeeds is resolved. (Here: dead letters recorded for events that are
  // fine, as a failure that has since been fixed would have left them.)
  const deregistration = (await store.readAggregate('agent', workload.deregistered[0]!)).events.at(-1)!;
  const rows: { id: string }[] = await stack.db.dataSource.query(
    `INSERT INTO dead_letters (consumer, stream, sequence, subject, event_type, event_id, deliveries, error, payload)
     VALUES ('routing', 'EVENTS', $1, $2, 'AgentDeregistered', $3, 5, 'projection was behind', '{}'),
            ('projection:routes', 'EVENTS', $1, $2, 'AgentDeregistered', $3, 5, 'bug since fixed', '{}'),
            ('nobody-listens', 'EVENTS', $1, $2, 'AgentDeregistered', $3, 5, 'gone', '{}')
     RETURNING id::text AS id`,
    [deregistration.sequence, deregistration.subject, deregistration.id],
  );
  const [byConsumer, byRebuild, orphan] = rows.map((row) => row.id);
  const resolved = await stack.request('POST', `admin/dead-letters/${byConsumer}/retry`, { token: admin });
  expect(resolved).toMatchObject({
    status: 200,
    body: { outcome: 'resolved', deadLetter: { status: 'resolved' } },
  });
  expect(
    (await stack.request('POST', `admin/dead-letters/${byConsumer}/retry`, { token: admin })).status,
  ).toBe(409);

  const rebuilt = await stack.request('POST', `admin/dead-letters/${byRebuild}/retry`, { token: admin });
  expect(rebuilt).toMatchObject({ status: 202, body: { outcome: 'rebuilding' } });
  await rebuildFinished(stack, admin, (rebuilt.body.rebuild as { id: string }).id);
  await waitFor('the dead letter to be resolved', async () => {
    const letter = await stack.request('GET', `admin/dead-letters/${byRebuild}`, { token: admin });
    return letter.body.status === 'resolved' || undefined;
  });

  const unavailable = await stack.request('POST', `admin/dead-letters/${orphan}/retry`, { token: admin });
  expect(unavailable).toMatchObject({ status: 503, body: { error: 'unavailable' } });
  expect((await stack.request('GET', `admin/dead-letters/${orphan}`, { token: admin })).body.status).toBe(
    'open',
  );
  expect((await stack.request('POST', 'admin/dead-letters/abc/retry', { token: admin })).body).toMatchObject({
    field: 'id',
  });
  expect((await stack.request('GET', 'admin/dead-letters?status=lost', { token: admin })).body).toMatchObject(
    { field: 'status' },
  );
  expect((await stack.request('GET', `events/${poison.seq}`, { token: admin })).body).toMatchObject({
    sequence: poison.seq,
    undecodable: expect.any(String),
  });
}, 300_000);
