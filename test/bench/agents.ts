import { jetstream, type ConsumerMessages } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { agentSubjects } from '#contracts';
import { AgentsStack, agentKeys } from '../harness/stack.js';
import { progress, round, type Figures } from './report.js';

const AGENTS = Number(process.env.CL_BENCH_AGENTS ?? 1_000);
const HTTP_CONCURRENCY = 16;
const ROUNDS = 5;

/** Runs `total` operations with `inFlight` workers. */
async function pool(
  total: number,
  inFlight: number,
  operation: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (let index = next++; index < total; index = next++) await operation(index);
    }),
  );
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/**
 * 1,000 agents enroll through the real API (registration deciding and appending, consumer per agent),
 * connect to nats-server with their own user JWTs (decentralized auth) and consume their own durable
 * consumers, all in this process. Then one message per agent is published to `agents.<id>.in.bench`
 * and the time until every agent has received its own is measured (target: ≤ 2 s). Baseline: the same
 * 1,000 publishes acknowledged by JetStream, without waiting for delivery.
 */
export async function run(): Promise<Figures> {
  const stack = await AgentsStack.start();
  const connections: NatsConnection[] = [];
  const consumers: ConsumerMessages[] = [];
  try {
    const admin = stack.adminToken('bench');
    const tokens: string[] = [];
    await pool(AGENTS, HTTP_CONCURRENCY, async () => {
      tokens.push(await stack.enrollmentToken(admin));
    });
    const keys = Array.from({ length: AGENTS }, () => agentKeys());
    const jwts: string[] = new Array(AGENTS);
    progress(`agents: enrolling ${AGENTS} agents`);
    const enrollStarted = performance.now();
    await pool(AGENTS, HTTP_CONCURRENCY, async (index) => {
      const response = await stack.request('POST', 'agents/enroll', {
        from: stack.nextAgentAddress(),
        body: {
          token: tokens[index],
          agentId: `bench-${index}`,
          natsPublicKey: keys[index]!.publicKey,
        },
      });
      if (response.status !== 201)
        throw new Error(`enroll ${index}: ${response.status} ${JSON.stringify(response.body)}`);
      jwts[index] = (response.body.nats as { jwt: string }).jwt;
    });
    const enrollSeconds = (performance.now() - enrollStarted) / 1000;
    progress(`agents: ${round(AGENTS / enrollSeconds)} enrollments/s; connecting`);

    // Each agent: its own connection and credentials, consuming its own durable consumer.
    let round_ = -1;
    let pending = 0;
    let allReceived: () => void = () => undefined;
    const connectStarted = performance.now();
    await pool(AGENTS, 32, async (index) => {
      const connection = await stack.nats.connectWithJwt(jwts[index]!, keys[index]!.seed, {
        inboxPrefix: `_INBOX_bench-${index}`,
        maxReconnectAttempts: -1,
      });
      connections.push(connection);
      // Through the agent account's import of its own consumer, as the real agent does.
      const consumer = await jetstream(connection, { apiPrefix: agentSubjects.jsApiPrefix }).consumers.get(
        'AGENTS',
        `agent-bench-${index}`,
      );
      const messages = await consumer.consume({ max_messages: 4 });
      consumers.push(messages);
      void (async () => {
        for await (const message of messages) {
          message.ack();
          if ((message.json() as { round: number }).round === round_ && --pending === 0) allReceived();
        }
      })();
    });
    const connectSeconds = (performance.now() - connectStarted) / 1000;
    progress(`agents: ${AGENTS} connected in ${round(connectSeconds)} s; fan-out rounds`);

    const js = jetstream(stack.service);
    const fanout: number[] = [];
    const publishOnly: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      round_ = r;
      pending = AGENTS;
      const done = new Promise<void>((resolve) => (allReceived = resolve));
      const started = performance.now();
      await Promise.all(
        Array.from({ length: AGENTS }, (_, index) =>
          js.publish(`agents.bench-${index}.in.bench`, JSON.stringify({ round: r })),
        ),
      );
      publishOnly.push(performance.now() - started);
      await Promise.race([
        done,
        new Promise((_, reject) =>
          setTimeout(
            () => reject(new Error(`round ${r}: ${pending} agents still waiting after 30 s`)),
            30_000,
          ),
        ),
      ]);
      fanout.push(performance.now() - started);
      progress(`agents: round ${r}: all ${AGENTS} received in ${round(fanout[r]!)} ms`);
    }
    return {
      agents: AGENTS,
      enroll_per_s: round(AGENTS / enrollSeconds),
      connect_all_s: round(connectSeconds, 2),
      fanout_1000_ms: round(median(fanout)),
      fanout_max_ms: round(Math.max(...fanout)),
      baseline_publish_acked_ms: round(median(publishOnly)),
      rounds: ROUNDS,
      target_fanout_ms: 2_000,
      meets_target: median(fanout) <= 2_000,
    };
  } finally {
    for (const messages of consumers) messages.stop();
    await Promise.all(connections.map((connection) => connection.close().catch(() => undefined)));
    await stack.stop();
  }
}
