import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { createDomainRegistry, type EventContext, type NewEvent } from '#contracts';
import { EventStore, provisionAppendOnlyStream } from '#eventstore';
import { createLogger } from '#platform';
import { ProjectionRunner } from '../../apps/projector/src/engine/runner.js';
import { projections } from '../../apps/projector/src/projections/index.js';
import { startNats } from '../harness/nats.js';
import { createTestDatabase } from '../harness/postgres.js';
import { progress, round, throttled, type Figures } from './report.js';

const CONCURRENCY = 64;
const APPENDS = 20_000;
const PROJECTED_EVENTS = 100_000;
const context: EventContext = { actor: { kind: 'system', id: 'bench' }, correlationId: 'bench' };
const NATS_KEY = 'UCULJGU5NRM4LZF2EC5RBUN7G2PPFR5JDPIFAYNOWBPFY3SYVTYCO5TQ';

function enrolled(agentId: string): NewEvent {
  return {
    type: 'AgentEnrolled',
    data: {
      agentId,
      publicAddress: '10.0.0.1',
      labels: { zone: 'bench' },
      natsPublicKey: NATS_KEY,
      enrollmentTokenId: 'bench',
    },
  };
}
const offline = (agentId: string, index: number): NewEvent =>
  ({
    type: index % 2 === 0 ? 'AgentWentOffline' : 'AgentCameOnline',
    data:
      index % 2 === 0
        ? { agentId, lastSeenAt: new Date().toISOString() }
        : { agentId, seenAt: new Date().toISOString() },
  }) as NewEvent;

/** Runs `total` operations with `inFlight` workers; returns operations per second. */
async function rate(
  total: number,
  inFlight: number,
  operation: (index: number, worker: number) => Promise<unknown>,
): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async (_, worker) => {
      for (let index = next++; index < total; index = next++) await operation(index, worker);
    }),
  );
  return total / ((performance.now() - started) / 1000);
}

async function rawPublishRate(
  js: JetStreamClient,
  payload: Uint8Array,
  inFlight: number,
  total: number,
): Promise<number> {
  return rate(total, inFlight, (index) => js.publish(`raw.agent.a${index % 1000}`, payload));
}

export async function run(): Promise<Figures> {
  const nats = await startNats();
  const db = await createTestDatabase('bench_eventstore');
  const nc = await nats.connect();
  // A second baseline without the async stack traces nats.js captures per request by default: the
  // appender does not pay for them, so the fair comparison is reported too.
  const untraced = await nats.connect({ noAsyncTraces: true });
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await provisionAppendOnlyStream(jsm, {
      name: 'EVENTS',
      subjects: ['events.>'],
      replicas: 1,
      duplicateWindowMs: 120_000,
    });
    await provisionAppendOnlyStream(jsm, {
      name: 'RAW',
      subjects: ['raw.>'],
      replicas: 1,
      duplicateWindowMs: 120_000,
    });
    const store = new EventStore(nc, jsm, { registry: createDomainRegistry() });

    // The raw baseline publishes bytes of the same size as a stored envelope.
    const sample = await store.append({ type: 'agent', id: 'sample' }, [enrolled('sample')], {
      context,
      expectedSequence: 0,
    });
    const payload = new TextEncoder().encode(
      JSON.stringify({ ...sample.events[0], sequence: undefined, subject: undefined }),
    );

    progress(`append: ${APPENDS} one at a time and with ${CONCURRENCY} in flight, against raw js.publish`);
    const rawSequential = await rawPublishRate(js, payload, 1, APPENDS / 4);
    const lastOf = new Map<string, number>();
    const appendOcc = (index: number, worker: number, prefix: string) => {
      // Each worker owns aggregates, so every append states the sequence it expects and never conflicts.
      const agentId = `${prefix}-${worker}-${index % 50}`;
      const expected = lastOf.get(agentId) ?? 0;
      const event = expected === 0 ? enrolled(agentId) : offline(agentId, index);
      return store
        .append({ type: 'agent', id: agentId }, [event], {
          context,
          expectedSequence: expected,
          commandId: `${prefix}-${index}`,
        })
        .then((result) => lastOf.set(agentId, result.lastSequence));
    };
    const occSequential = await rate(APPENDS / 4, 1, (index, worker) => appendOcc(index, worker, 'seq'));
    const rawConcurrent = await rawPublishRate(js, payload, CONCURRENCY, APPENDS);
    const rawUntraced = await rawPublishRate(jetstream(untraced), payload, CONCURRENCY, APPENDS);
    const occConcurrent = await rate(APPENDS, CONCURRENCY, (index, worker) =>
      appendOcc(index, worker, 'par'),
    );

    progress(`projection: filling the log to ${PROJECTED_EVENTS} events`);
    let filled = await store.lastSequence();
    await rate(PROJECTED_EVENTS - filled, CONCURRENCY, (index) =>
      store.append({ type: 'agent', id: `fill-${index}` }, [enrolled(`fill-${index}`)], { context }),
    );
    filled = await store.lastSequence();

    progress('raw ordered-consumer read of the whole log');
    let readStarted = performance.now();
    let read = 0;
    for await (const _entry of store.readRaw({ bufferSize: 2_000 })) read++;
    const rawRead = read / ((performance.now() - readStarted) / 1000);

    progress(
      `projecting ${filled} events into Postgres (${projections.map((projection) => projection.name).join(', ')})`,
    );
    readStarted = performance.now();
    await new ProjectionRunner({
      dataSource: db.dataSource,
      store,
      projections,
      logger: createLogger('bench', { level: 'warn' }),
      batchSize: 2_000,
      untilSequence: filled,
      onProgress: throttled((state) =>
        progress(`  projected ${state.sequence}/${state.target} (${state.eventsPerSecond}/s)`),
      ),
    }).run();
    const projected = filled / ((performance.now() - readStarted) / 1000);

    return {
      concurrency: CONCURRENCY,
      events_projected: filled,
      append_occ_per_s: Math.round(occConcurrent),
      raw_publish_per_s: Math.round(rawConcurrent),
      append_ratio: round(occConcurrent / rawConcurrent, 2),
      raw_publish_untraced_per_s: Math.round(rawUntraced),
      append_ratio_untraced: round(occConcurrent / rawUntraced, 2),
      append_occ_sequential_per_s: Math.round(occSequential),
      raw_publish_sequential_per_s: Math.round(rawSequential),
      append_sequential_ratio: round(occSequential / rawSequential, 2),
      project_per_s: Math.round(projected),
      raw_read_per_s: Math.round(rawRead),
      project_ratio: round(projected / rawRead, 2),
    };
  } finally {
    await untraced.close();
    await nc.close();
    await db.drop();
    await nats.destroy();
  }
}
