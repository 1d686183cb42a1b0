import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { agentSubjects } from '#contracts';
import { sleep, waitFor } from '../harness/processes.js';
import { AgentsStack } from '../harness/stack.js';

/**
 * nats-server checks the subject of a publish against the user's permissions, not its reply subject,
 * and whoever answers a request answers with its own rights. So every subject an agent may publish is
 * tried here with reply subjects aimed at everything it must never reach — another agent's inboxes, the
 * default inbox, the EVENTS and AGENTS streams' subjects, the services' commands and the JetStream API —
 * and nothing may arrive anywhere but in the sender's own account: no message on those subjects in the
 * services' account, nothing in the other agent's inbox, and neither stream moves or goes away.
 */
const JS_API = { apiPrefix: agentSubjects.jsApiPrefix };
const DOMAIN = 'cloudlunacy.localhost';

let stack: AgentsStack;
let attacker: NatsConnection;
let victim: NatsConnection;
/** Everything published in the services' account, by subject. */
const seenByServices: Msg[] = [];
const seenByVictim: string[] = [];

beforeAll(async () => {
  stack = await AgentsStack.start({ routing: true, certificates: true });
  const a = await stack.enroll('agent-a');
  const b = await stack.enroll('agent-b');
  attacker = await stack.connectAsAgent(a);
  victim = await stack.connectAsAgent(b);
  victim.subscribe(`${agentSubjects.inboxPrefix('agent-b')}.>`, {
    callback: (_error, message) => void seenByVictim.push(message.subject),
  });
  stack.service.subscribe('>', { callback: (_error, message) => void seenByServices.push(message) });
  await Promise.all([victim.flush(), stack.service.flush()]);
});

afterAll(async () => {
  await attacker?.close().catch(() => undefined);
  await victim?.close().catch(() => undefined);
  await stack?.stop();
});

/** Reply targets an agent must never be able to reach. */
const TARGETS = [
  '_INBOX_agent-b.stolen',
  '_INBOX.stolen',
  `events.hostname.victim_apps_${DOMAIN.replace(/\./g, '_')}`,
  'events.agent.agent-b',
  'events.route.00000000-0000-4000-8000-000000000000',
  'cmd.routing.request',
  'agents.agent-b.in.ping',
  '$JS.API.STREAM.DELETE.EVENTS',
  '$JS.API.STREAM.PURGE.AGENTS',
] as const;

/** What the attacker may publish (its own subjects), each with a body that makes someone answer. */
const SOURCES: { name: string; subject: string; body: string }[] = [
  { name: 'a route request', subject: 'agents.agent-a.out.req.routes.list', body: '{}' },
  { name: 'an unknown route command', subject: 'agents.agent-a.out.req.routes.nope', body: '{}' },
  { name: 'a certificate request', subject: 'agents.agent-a.out.req.certificates.names', body: '{}' },
  {
    name: 'its consumer info',
    subject: `${agentSubjects.jsApiPrefix}.CONSUMER.INFO.AGENTS.agent-agent-a`,
    body: '',
  },
  {
    name: 'a pull that finds nothing (404 status)',
    subject: `${agentSubjects.jsApiPrefix}.CONSUMER.MSG.NEXT.AGENTS.agent-agent-a`,
    body: JSON.stringify({ batch: 1, no_wait: true }),
  },
];

async function streamSequences() {
  const jsm = await jetstreamManager(stack.service);
  return {
    events: (await jsm.streams.info('EVENTS')).state.last_seq,
    agents: (await jsm.streams.info('AGENTS')).state.last_seq,
  };
}

const onTargets = () =>
  seenByServices.filter((message) => (TARGETS as readonly string[]).includes(message.subject));

test('control: an answer to a reply subject in the sender’s own inbox arrives there', async () => {
  const answer = await attacker.request('agents.agent-a.out.req.routes.list', '{}', { timeout: 5_000 });
  expect(answer.json<{ ok: boolean }>().ok).toBe(true);
});

test.each(SOURCES.flatMap((source) => TARGETS.map((target) => [source.name, target, source] as const)))(
  '%s answered to %s reaches nothing outside the sender',
  async (_name, target, source) => {
    const before = await streamSequences();
    const probe = `${agentSubjects.inboxPrefix('agent-a')}.probe.${Math.random().toString(36).slice(2)}`;
    // The same publish with a reply in the sender's own inbox shows the answer is made and delivered.
    const control = attacker.subscribe(probe, { max: 1 });
    attacker.publish(source.subject, source.body, { reply: probe });
    attacker.publish(source.subject, source.body, { reply: target });
    await attacker.flush();
    for await (const answered of control) {
      expect(answered.data.length + (answered.headers ? 1 : 0)).toBeGreaterThan(0);
    }
    // Give the aimed answer the same time and more to go astray.
    await sleep(150);
    expect(onTargets().map((message) => message.subject)).toEqual([]);
    expect(seenByVictim).toEqual([]);
    expect(await streamSequences()).toEqual(before);
  },
);

test('a pulled message and its acknowledgement aimed elsewhere stay in the sender’s account', async () => {
  const jsm = await jetstreamManager(stack.service);
  // An ack with a reply (ackAck) aimed at the targets: JetStream's answer goes back the same way.
  await jetstream(stack.service).publish('agents.agent-a.in.bait', '{"bait":1}');
  const consumer = await jetstream(attacker, JS_API).consumers.get('AGENTS', 'agent-agent-a');
  const message = await consumer.next({ expires: 10_000 });
  expect(message?.subject).toBe('agents.agent-a.in.bait');
  // The delivery's own ack subject (`$JS.ACK.AGENTS.agent-agent-a.…`), as the client acks it.
  const ackSubject = (message as unknown as { reply: string }).reply;
  expect(ackSubject).toMatch(/^\$JS\.ACK\.AGENTS\.agent-agent-a\./);
  const afterFirst = await streamSequences();
  for (const target of TARGETS) attacker.publish(ackSubject, '+ACK', { reply: target });
  await attacker.flush();
  await waitFor('the acknowledgement to be counted', async () =>
    (await jsm.consumers.info('AGENTS', 'agent-agent-a')).num_ack_pending === 0 ? true : undefined,
  );
  // A pulled message itself aimed at the targets: it is delivered inside the attacker's account, once.
  await jetstream(stack.service).publish('agents.agent-a.in.bait', '{"bait":2}');
  for (const target of TARGETS) {
    attacker.publish(
      `${agentSubjects.jsApiPrefix}.CONSUMER.MSG.NEXT.AGENTS.agent-agent-a`,
      JSON.stringify({ batch: 1, no_wait: true }),
      { reply: target },
    );
  }
  // A flush is answered after the server handled everything sent before it on this connection.
  await attacker.flush();
  await waitFor('the second bait to be delivered', async () =>
    (await jsm.consumers.info('AGENTS', 'agent-agent-a')).delivered.stream_seq > afterFirst.agents
      ? true
      : undefined,
  );
  await sleep(300);
  expect(onTargets().map((seen) => seen.subject)).toEqual([]);
  expect(seenByVictim).toEqual([]);
  expect(await streamSequences()).toEqual({ ...afterFirst, agents: afterFirst.agents + 1 });
});

test('both streams are still there, whole', async () => {
  const jsm = await jetstreamManager(stack.service);
  const names: string[] = [];
  for await (const name of jsm.streams.names()) names.push(name);
  expect(names).toEqual(expect.arrayContaining(['EVENTS', 'AGENTS']));
});
