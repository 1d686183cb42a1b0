import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { SERVICE_USERS, servicePermissions, STREAM_ADMIN_SUBJECTS, type ServiceUser } from '#auth';
import { AGENTS_STREAM, EVENTS_STREAM } from '#contracts';
import { waitFor } from '../harness/processes.js';
import { AgentsStack } from '../harness/stack.js';

/**
 * Issue 13.4: least privilege on the broker. Each process of the front has a user of its own; the real
 * nats-server refuses each one everything outside its list, refuses every one of them any change to a
 * stream, and only the installation-admin user (which nothing runs with) may edit or delete streams. That
 * the lists are enough is shown by every other test: the stacks run each service as its own user.
 */
let stack: AgentsStack;
const connections = new Map<ServiceUser, NatsConnection>();
const errors = new Map<ServiceUser, string[]>();

beforeAll(async () => {
  stack = await AgentsStack.start();
  for (const user of SERVICE_USERS) {
    const connection = await stack.nats.connectWithCreds(stack.installation.layout.credsOf(user));
    const seen: string[] = [];
    void (async () => {
      for await (const status of connection.status()) {
        if (status.type === 'error') seen.push(String(status.error?.message));
      }
    })();
    connections.set(user, connection);
    errors.set(user, seen);
  }
});
afterAll(async () => {
  for (const connection of connections.values()) await connection.close().catch(() => undefined);
  await stack?.stop();
});

/** NATS subject matching: `*` is one token, `>` the rest. */
function matches(pattern: string, subject: string): boolean {
  const want = pattern.split('.');
  const have = subject.split('.');
  for (let index = 0; index < want.length; index++) {
    if (want[index] === '>') return have.length > index;
    if (index >= have.length || (want[index] !== '*' && want[index] !== have[index])) return false;
  }
  return want.length === have.length;
}

const allowedToPublish = (user: ServiceUser, subject: string) =>
  (servicePermissions(user).pub?.allow ?? []).some((pattern) => matches(pattern, subject)) &&
  !(servicePermissions(user).pub?.deny ?? []).some((pattern) => matches(pattern, subject));

/** Subjects the processes of the front use between them, and some nobody should. */
const PUBLISHED = [
  'events.agent.a',
  'events.route.r',
  'events.hostname.h',
  'events.certificate.c',
  'events.ca.front',
  'events.proxy-node.n',
  'events.admin.t',
  'events.enrollment-token.t',
  'events.quarantine.q',
  'events.address.127_0_0_2',
  'cmd.registration.enroll',
  'cmd.routing.request',
  'cmd.certificates.issue',
  'cmd.projector.rebuild',
  'cmd.projector.drop-schema',
  'cmd.dead-letters.retry.routing',
  'agents.a.in.ping',
  'agents.a.in.certificates.renew',
  'agents.a.out.heartbeat',
  '$KV.proxy-nodes.front-1',
  '$JS.API.STREAM.CREATE.AGENTS',
  '$JS.API.STREAM.CREATE.SCRATCH',
  '$JS.API.CONSUMER.CREATE.AGENTS.agent-a.agents.a.in.>',
  '$JS.API.CONSUMER.DELETE.AGENTS.agent-a',
  '$JS.ACK.EVENTS.routing.1.1.1.1.1.1',
  '$JS.ACK.AGENTS.agent-a.1.1.1.1.1.1',
  '$SYS.REQ.CLAIMS.UPDATE',
  'anything.else',
];
const SUBSCRIBED = [
  'cmd.registration.*',
  'cmd.routing.*',
  'cmd.certificates.*',
  'cmd.projector.*',
  'agents.*.out.heartbeat',
  'agents.*.out.req.routes.*',
  'agents.*.out.req.certificates.*',
  'agents.a.in.>',
  'events.>',
  '_INBOX_agent-a.>',
  '>',
];

async function refusal(user: ServiceUser, operation: 'Publish' | 'Subscription', subject: string) {
  const expected = `Permissions Violation for ${operation} to "${subject}"`;
  return waitFor(`the server to refuse ${user} ${operation} to ${subject}`, () =>
    errors.get(user)!.find((error) => error.includes(expected)),
  );
}

test.each([...SERVICE_USERS])('%s is refused every publish outside its list', async (user) => {
  const connection = connections.get(user)!;
  const refused = PUBLISHED.filter((subject) => !allowedToPublish(user, subject));
  // The lists are narrow: each process may publish only a few of these.
  expect(refused.length).toBeGreaterThan(PUBLISHED.length / 2);
  for (const subject of refused) {
    connection.publish(subject, '{}');
    await refusal(user, 'Publish', subject);
  }
});

test.each([...SERVICE_USERS])('%s is refused every subscription outside its list', async (user) => {
  const connection = connections.get(user)!;
  const allowed = servicePermissions(user).sub?.allow ?? [];
  for (const subject of SUBSCRIBED.filter((candidate) => !allowed.includes(candidate))) {
    connection.subscribe(subject);
    await refusal(user, 'Subscription', subject);
  }
});

test.each([...SERVICE_USERS])('%s may not edit, purge or delete a stream', async (user) => {
  const connection = connections.get(user)!;
  for (const stream of [EVENTS_STREAM, AGENTS_STREAM]) {
    for (const pattern of STREAM_ADMIN_SUBJECTS.filter((subject) => subject.startsWith('$JS.API.STREAM.'))) {
      const subject = pattern.replace('>', stream);
      connection.publish(subject, '{}');
      await refusal(user, 'Publish', subject);
    }
  }
});

test('the processes that read the log may read it (the control of the refusals above)', async () => {
  for (const user of SERVICE_USERS) {
    const jsm = await jetstreamManager(connections.get(user)!);
    expect((await jsm.streams.info(EVENTS_STREAM)).config.name).toBe(EVENTS_STREAM);
  }
});

test('the streams are whole, and only the installation admin may delete a stream', async () => {
  const admin = await jetstreamManager(stack.service);
  expect((await admin.streams.info(EVENTS_STREAM)).config.name).toBe(EVENTS_STREAM);
  expect((await admin.streams.info(AGENTS_STREAM)).config.name).toBe(AGENTS_STREAM);
  await admin.streams.add({ name: 'SCRATCH', subjects: ['scratch.>'] });
  expect(await admin.streams.delete('SCRATCH')).toBe(true);
});
