import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { waitFor } from '../harness/processes.js';
import { AgentsStack, type EnrolledAgent } from '../harness/stack.js';

/**
 * The broker enforces who sees what: agent A's own user JWT (signed by registration for A's own key, a
 * user of A's own account) is refused by nats-server on everything of B's, and on the JetStream API
 * beyond its own consumer. What A may publish reaches the services only through its account's imports
 * (test/agents/reply-injection.test.ts shows that no reply subject can lead anywhere else).
 */
const JS_API = { apiPrefix: '$CL.JS.API' };
let stack: AgentsStack;
let a: EnrolledAgent;
let b: EnrolledAgent;
let connection: NatsConnection;
const serverErrors: string[] = [];

beforeAll(async () => {
  stack = await AgentsStack.start();
  a = await stack.enroll('agent-a');
  b = await stack.enroll('agent-b');
  connection = await stack.connectAsAgent(a);
  void (async () => {
    for await (const status of connection.status()) {
      if (status.type === 'error') serverErrors.push(String(status.error?.message));
    }
  })();
});
afterAll(async () => {
  await connection?.close().catch(() => undefined);
  await stack?.stop();
});

/** Waits until the server has answered `-ERR Permissions Violation for <operation> to "<subject>"`. */
async function violation(operation: 'Publish' | 'Subscription', subject: string): Promise<string> {
  const expected = `Permissions Violation for ${operation} to "${subject}"`;
  return waitFor(`the server to refuse ${operation} to ${subject}`, () =>
    serverErrors.find((error) => error.includes(expected)),
  );
}

test('A reads its own consumer: what was published to agents.agent-a.in.* arrives and can be acked', async () => {
  const js = jetstream(stack.service);
  await js.publish('agents.agent-a.in.hello', JSON.stringify({ to: 'a' }));
  await js.publish('agents.agent-b.in.hello', JSON.stringify({ to: 'b' }));
  const consumer = await jetstream(connection, JS_API).consumers.get('AGENTS', 'agent-agent-a');
  const message = await consumer.next({ expires: 5_000 });
  expect(message?.subject).toBe('agents.agent-a.in.hello');
  expect(message?.json()).toEqual({ to: 'a' });
  expect(await message!.ackAck()).toBe(true);
  expect(serverErrors).toEqual([]);
});

test('A cannot subscribe to B subjects, nor to B inbox, nor to the AGENTS stream subjects at all', async () => {
  for (const subject of [
    'agents.agent-b.>',
    'agents.agent-b.in.hello',
    '_INBOX_agent-b.>',
    'agents.>',
    '>',
  ]) {
    connection.subscribe(subject);
    await connection.flush();
    await violation('Subscription', subject);
  }
  // Even its own inbound subject: everything reaches A through its durable consumer only.
  connection.subscribe('agents.agent-a.in.>');
  await violation('Subscription', 'agents.agent-a.in.>');
});

test("A cannot read B's consumer: info, pull and ack are refused by the server", async () => {
  await expect(jetstream(connection, JS_API).consumers.get('AGENTS', 'agent-agent-b')).rejects.toThrow(
    /Permissions Violation for Publish to "\$CL\.JS\.API\.CONSUMER\.INFO\.AGENTS\.agent-agent-b"/,
  );
  await expect(jetstream(connection).consumers.get('AGENTS', 'agent-agent-b')).rejects.toThrow(
    /Permissions Violation for Publish to "\$JS\.API\.CONSUMER\.INFO\.AGENTS\.agent-agent-b"/,
  );
  for (const subject of [
    '$CL.JS.API.CONSUMER.MSG.NEXT.AGENTS.agent-agent-b',
    '$JS.API.CONSUMER.MSG.NEXT.AGENTS.agent-agent-b',
  ]) {
    connection.publish(subject, JSON.stringify({ batch: 1 }), { reply: '_INBOX_agent-a.steal' });
    await violation('Publish', subject);
  }
  connection.publish('$JS.ACK.AGENTS.agent-agent-b.1.2.2.0.0');
  await violation('Publish', '$JS.ACK.AGENTS.agent-agent-b.1.2.2.0.0');
});

test('A cannot create consumers (not even on its own subjects), nor touch streams', async () => {
  for (const subject of [
    '$JS.API.CONSUMER.CREATE.AGENTS',
    '$JS.API.CONSUMER.DURABLE.CREATE.AGENTS.steal',
    '$JS.API.CONSUMER.DELETE.AGENTS.agent-agent-b',
    '$JS.API.STREAM.INFO.AGENTS',
    '$JS.API.STREAM.PURGE.AGENTS',
    '$JS.API.INFO',
    '$CL.JS.API.CONSUMER.CREATE.AGENTS',
    '$CL.JS.API.STREAM.DELETE.EVENTS',
  ]) {
    connection.publish(
      subject,
      JSON.stringify({ stream_name: 'AGENTS', config: { filter_subject: 'agents.agent-b.in.>' } }),
    );
    await violation('Publish', subject);
  }
});

test("A cannot publish under B's prefix, into anyone's inbound subjects, or send commands", async () => {
  for (const subject of [
    'agents.agent-b.out.heartbeat',
    'agents.agent-b.in.hello',
    'agents.agent-a.in.hello',
    'cmd.registration.enroll',
    'events.agent.agent-b',
  ]) {
    connection.publish(subject, '{}');
    await violation('Publish', subject);
  }
  // And its own prefix is allowed: no new error for it.
  const before = serverErrors.length;
  connection.publish('agents.agent-a.out.report', '{}');
  await connection.flush();
  expect(serverErrors.slice(before)).toEqual([]);
});

test("B's stored messages were never delivered to anyone but B", async () => {
  const bConnection = await stack.connectAsAgent(b);
  try {
    const message = await (
      await jetstream(bConnection, JS_API).consumers.get('AGENTS', 'agent-agent-b')
    ).next({ expires: 5_000 });
    expect(message?.subject).toBe('agents.agent-b.in.hello');
    expect(message?.info.deliveryCount).toBe(1);
    message?.ack();
    await bConnection.flush();
  } finally {
    await bConnection.close();
  }
});

test("a JWT for A's key cannot be used with another key (the server checks the nonce signature)", async () => {
  await expect(stack.nats.connectWithJwt(a.natsJwt, b.keys.seed)).rejects.toThrow(/Authorization Violation/);
});
