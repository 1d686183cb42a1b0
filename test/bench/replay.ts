import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import {
  aggregateSubject,
  createDomainRegistry,
  type AggregateType,
  type EventEnvelope,
  type RebuildStatus,
} from '#contracts';
import { EventStore, provisionAppendOnlyStream } from '#eventstore';
import { createDataSource } from '#persistence';
import { createLogger } from '#platform';
import { RebuildJob } from '../../apps/projector/src/engine/rebuild-job.js';
import { projections } from '../../apps/projector/src/projections/index.js';
import { startNats } from '../harness/nats.js';
import { createTestDatabase } from '../harness/postgres.js';
import { cpuSecondsOf, progress, round, throttled, type Figures } from './report.js';

const TOTAL = Number(process.env.CL_BENCH_REPLAY_EVENTS ?? 1_000_000);
const AGENTS = 5_000;
const IN_FLIGHT = 256;
const NATS_KEY = 'UCULJGU5NRM4LZF2EC5RBUN7G2PPFR5JDPIFAYNOWBPFY3SYVTYCO5TQ';
const registry = createDomainRegistry();

type Draft = { aggregate: AggregateType; id: string; type: string; data: unknown };

/**
 * A plausible history: agents enrol and flap online/offline; routes are requested (hostname claimed
 * first), applied by two proxy nodes, sometimes updated and re-applied, sometimes removed (hostname
 * released). Every event is valid for its schema, in an order the deciders could have produced.
 */
function* history(total: number): Generator<Draft> {
  const now = () => new Date().toISOString();
  const routes: { routeId: string; agentId: string; hostname: string; revision: number }[] = [];
  let produced = 0;
  for (let index = 0; index < AGENTS; index++) {
    const agentId = `agent-${index}`;
    yield {
      aggregate: 'agent',
      id: agentId,
      type: 'AgentEnrolled',
      data: {
        agentId,
        publicAddress: `10.${(index >> 8) & 255}.${index & 255}.1`,
        labels: { zone: 'bench' },
        natsPublicKey: NATS_KEY,
        enrollmentTokenId: `t${index}`,
      },
    };
    produced++;
  }
  for (let step = 0; produced < total; step++) {
    const agentIndex = step % AGENTS;
    const agentId = `agent-${agentIndex}`;
    const routeId = randomUUID();
    const hostname = `app-${step}.apps.bench.example`;
    const target = {
      host: `10.${(agentIndex >> 8) & 255}.${agentIndex & 255}.1`,
      port: 8000 + (step % 1000),
    };
    yield {
      aggregate: 'hostname',
      id: hostname,
      type: 'HostnameClaimed',
      data: { hostname, routeId, agentId },
    };
    yield {
      aggregate: 'route',
      id: routeId,
      type: 'RouteRequested',
      data: { routeId, agentId, kind: 'http', hostname, target, options: { tlsToTarget: false } },
    };
    yield {
      aggregate: 'route',
      id: routeId,
      type: 'RouteApplied',
      data: { routeId, revision: 1, node: 'front-a', configVersion: 7, propagationMs: 12 },
    };
    produced += 3;
    routes.push({ routeId, agentId, hostname, revision: 1 });
    if (step % 4 === 3) {
      const route = routes[Math.floor(routes.length / 2)]!;
      route.revision++;
      yield {
        aggregate: 'route',
        id: route.routeId,
        type: 'RouteUpdated',
        data: {
          routeId: route.routeId,
          target: { host: target.host, port: 9000 },
          options: { tlsToTarget: false },
        },
      };
      yield {
        aggregate: 'route',
        id: route.routeId,
        type: 'RouteApplied',
        data: {
          routeId: route.routeId,
          revision: route.revision,
          node: 'front-b',
          configVersion: 8,
          propagationMs: 9,
        },
      };
      produced += 2;
    }
    if (step % 3 === 2 && routes.length > 10) {
      const [route] = routes.splice(0, 1);
      yield {
        aggregate: 'route',
        id: route!.routeId,
        type: 'RouteRemoved',
        data: { routeId: route!.routeId, reason: 'bench' },
      };
      yield {
        aggregate: 'hostname',
        id: route!.hostname,
        type: 'HostnameReleased',
        data: { hostname: route!.hostname, routeId: route!.routeId },
      };
      produced += 2;
    }
    if (step % 10 === 0) {
      yield {
        aggregate: 'agent',
        id: agentId,
        type: step % 20 === 0 ? 'AgentWentOffline' : 'AgentCameOnline',
        data: step % 20 === 0 ? { agentId, lastSeenAt: now() } : { agentId, seenAt: now() },
      };
      produced++;
    }
  }
}

export async function fill(js: JetStreamClient, total: number): Promise<number> {
  const encoder = new TextEncoder();
  const drafts = history(total);
  let published = 0;
  const report = throttled(
    (count: number) =>
      progress(`  generated ${count.toLocaleString('en-US')}/${total.toLocaleString('en-US')} events`),
    2_000,
  );
  // Messages from one connection are stored in the order they were sent, so pipelining keeps every
  // aggregate's events in order; the window only bounds memory.
  const pending = new Set<Promise<unknown>>();
  for (const draft of drafts) {
    const { version, data } = registry.validateNew(draft.type, draft.aggregate, draft.data);
    const envelope: EventEnvelope = {
      id: randomUUID(),
      type: draft.type,
      schemaVersion: version,
      aggregate: { type: draft.aggregate, id: draft.id },
      occurredAt: new Date().toISOString(),
      actor: { kind: 'system', id: 'bench' },
      correlationId: 'bench',
      causationId: null,
      data,
    };
    const promise = js.publish(
      aggregateSubject(draft.aggregate, draft.id),
      encoder.encode(JSON.stringify(envelope)),
    );
    pending.add(promise);
    void promise.finally(() => pending.delete(promise));
    published++;
    if (pending.size >= IN_FLIGHT) await Promise.race(pending);
    report(published);
  }
  await Promise.all(pending);
  return published;
}

export async function run(): Promise<Figures> {
  const nats = await startNats();
  const db = await createTestDatabase('bench_replay');
  const nc = await nats.connect();
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await provisionAppendOnlyStream(jsm, {
      name: 'EVENTS',
      subjects: ['events.>'],
      replicas: 1,
      duplicateWindowMs: 60_000,
    });
    const store = new EventStore(nc, jsm, { registry });

    progress(`generating ${TOTAL.toLocaleString('en-US')} events into a fresh stream`);
    await fill(js, TOTAL);
    const events = await store.lastSequence();

    progress('raw read of the same events through an ordered consumer');
    const started = performance.now();
    let read = 0;
    for await (const _entry of store.readRaw({ bufferSize: 4_000 })) read++;
    const rawReadPerSecond = read / ((performance.now() - started) / 1000);

    // The rebuild's floor in this process: reading and decoding every event, with no database at all.
    progress('read and decode of the same events, without Postgres');
    const decodeStarted = performance.now();
    for await (const entry of store.readRaw({ bufferSize: 4_000 })) store.decode(entry);
    const readDecodePerSecond = read / ((performance.now() - decodeStarted) / 1000);

    progress(`rebuilding all projections (${projections.map((projection) => projection.name).join(', ')})`);
    // In a process of its own, as the projector runs it: its peak RSS is the rebuild's, not the generator's.
    const postgresCpuBefore = await cpuSecondsOf('postgres');
    const rebuild = await runRebuildProcess({ natsUrl: nats.url, databaseUrl: db.url });
    const postgresCpu = (await cpuSecondsOf('postgres')) - postgresCpuBefore;
    const rebuildPerSecond = events / rebuild.seconds;
    return {
      events,
      projections: projections.map((projection) => projection.name).join(','),
      rebuild_per_s: Math.round(rebuildPerSecond),
      raw_read_per_s: Math.round(rawReadPerSecond),
      rebuild_ratio: round(rebuildPerSecond / rawReadPerSecond, 2),
      read_decode_per_s: Math.round(readDecodePerSecond),
      // Where the CPU went: 2 cores give at most 2 CPU seconds per second of rebuild.
      rebuild_process_cpu_seconds: round(rebuild.cpuSeconds, 1),
      postgres_cpu_seconds: round(postgresCpu, 1),
      peak_rss_mb: Math.round(rebuild.peakRssKb / 1024),
      rebuild_seconds: round(rebuild.seconds, 1),
      ...Object.fromEntries(
        Object.entries(rebuild.phases).map(([phase, seconds]) => [`${phase}_seconds`, seconds]),
      ),
    };
  } finally {
    await nc.close();
    await db.drop();
    await nats.destroy();
  }
}

interface RebuildOutcome {
  seconds: number;
  /** Seconds spent in each phase of the rebuild job (replaying, indexing, ...). */
  phases: Record<string, number>;
  /** User + system CPU of the rebuild process. */
  cpuSeconds: number;
  /** The rebuild process's own high-water mark (getrusage), in KiB. */
  peakRssKb: number;
}

const REBUILD_CHILD_FLAG = '--rebuild-child';

/** Runs the rebuild in a child process (this file with REBUILD_CHILD_FLAG); its progress goes to stderr. */
function runRebuildProcess(target: { natsUrl: string; databaseUrl: string }): Promise<RebuildOutcome> {
  return new Promise((resolve, reject) => {
    // CL_BENCH_NODE_ARGS passes node options to the rebuild, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`.
    const nodeArgs = process.env.CL_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    const child = spawn(process.execPath, [...nodeArgs, fileURLToPath(import.meta.url), REBUILD_CHILD_FLAG], {
      env: { ...process.env, CL_BENCH_NATS_URL: target.natsUrl, CL_BENCH_DATABASE_URL: target.databaseUrl },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`the rebuild process exited with ${code}`));
      try {
        // The outcome is the last line; options like --trace-gc may print before it.
        resolve(JSON.parse(output.trim().split('\n').at(-1) ?? '') as RebuildOutcome);
        if (nodeArgs.length > 0) process.stderr.write(output);
      } catch {
        reject(new Error(`the rebuild process printed no result: ${output.slice(-500)}`));
      }
    });
  });
}

async function rebuildInThisProcess(): Promise<void> {
  const nc = await connect({ servers: process.env.CL_BENCH_NATS_URL });
  const dataSource = createDataSource({ url: process.env.CL_BENCH_DATABASE_URL!, poolSize: 10 });
  await dataSource.initialize();
  try {
    const store = new EventStore(nc, await jetstreamManager(nc), { registry });
    const started = performance.now();
    const phases: Record<string, number> = {};
    let phase = { name: 'preparing', since: started };
    const report = throttled((state: RebuildStatus) =>
      progress(
        `  ${state.phase} ${state.sequence.toLocaleString('en-US')}/${state.target.toLocaleString('en-US')} (${state.eventsPerSecond.toLocaleString('en-US')}/s, ETA ${state.etaSeconds ?? '--'}s)`,
      ),
    );
    const status = await new RebuildJob({
      dataSource,
      store,
      projections,
      logger: createLogger('bench', { level: 'warn' }),
      mode: 'inspect',
      label: 'bench',
      ...(process.env.CL_BENCH_BATCH ? { batchSize: Number(process.env.CL_BENCH_BATCH) } : {}),
      ...(process.env.CL_BENCH_ROW_BUDGET ? { bulkRowBudget: Number(process.env.CL_BENCH_ROW_BUDGET) } : {}),
      onChange: (state) => {
        if (state.phase !== phase.name) {
          const now = performance.now();
          phases[phase.name] = round((now - phase.since) / 1000, 1);
          phase = { name: state.phase, since: now };
        }
        report(state);
      },
    }).run();
    const seconds = (performance.now() - started) / 1000;
    if (status.phase !== 'done') throw new Error(`rebuild failed: ${status.error}`);
    const usage = process.resourceUsage();
    const outcome: RebuildOutcome = {
      seconds,
      phases,
      cpuSeconds: (usage.userCPUTime + usage.systemCPUTime) / 1e6,
      peakRssKb: usage.maxRSS,
    };
    process.stdout.write(`${JSON.stringify(outcome)}\n`);
  } finally {
    await dataSource.destroy();
    await nc.close();
  }
}

if (process.argv.includes(REBUILD_CHILD_FLAG)) await rebuildInThisProcess();
