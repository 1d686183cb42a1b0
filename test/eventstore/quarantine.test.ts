import { jetstream } from '@nats-io/jetstream';
import type { AgentsStack, EnrolledAgent } from '../harness/stack.js';
import { waitFor } from '../harness/processes.js';
import { DOMAIN, openStore, startRoutesStack } from '../routes/helpers.js';

/**
 * Defence in depth for the log: a message on an aggregate's subject that cannot be decoded (damage, or
 * a write that got past the broker) must not brick that record forever. Its readers say which sequence
 * and subject, an admin quarantines it (audited, through the API or the CLI), and from then on every
 * reader skips it: the host name can be claimed again, the dead letters it caused are settled.
 */
let stack: AgentsStack;
let agent: EnrolledAgent;
let admin: string;
const hostname = `damaged.apps.${DOMAIN}`;
const subject = `events.hostname.${hostname.replace(/\./g, '_')}`;
let damagedSequence: number;

beforeAll(async () => {
  stack = await startRoutesStack();
  admin = stack.adminToken('quarantine-admin');
  agent = await stack.enroll('quarantine-agent');
  // What the broker now prevents, written the way damage would be: bytes that are not an event.
  const ack = await jetstream(stack.service).publish(subject, '{"not":"an event"}');
  damagedSequence = ack.seq;
});

afterAll(async () => {
  await stack?.stop();
});

const claim = () =>
  stack.request('POST', 'routes', {
    token: agent.accessToken,
    body: { kind: 'http', subdomain: 'damaged', target: { host: agent.address, port: 8080 } },
  });

test('a claim of the damaged host name fails with an error naming the sequence and the subject', async () => {
  const before = await stack.lastEventSequence();
  const refused = await claim();
  expect(refused.status).toBe(500);
  expect(refused.body.message).toContain(`sequence ${damagedSequence} on ${subject}`);
  expect(refused.body.message).toContain(`cloudlunacy events quarantine ${damagedSequence}`);
  expect(await stack.lastEventSequence()).toBe(before);
  const shown = await stack.request('GET', `events/${damagedSequence}`, { token: admin });
  expect(shown.body).toMatchObject({ sequence: damagedSequence, quarantined: false });
});

test('quarantine is for admins, needs a reason, and refuses a message that decodes or is not there', async () => {
  const before = await stack.lastEventSequence();
  expect(
    (
      await stack.request('POST', `events/${damagedSequence}/quarantine`, {
        token: agent.accessToken,
        body: { reason: 'mine now' },
      })
    ).status,
  ).toBe(403);
  const noReason = await stack.request('POST', `events/${damagedSequence}/quarantine`, {
    token: admin,
    body: {},
  });
  expect(noReason).toMatchObject({ status: 400, body: { field: 'reason' } });
  const good = await stack.request('POST', 'events/1/quarantine', {
    token: admin,
    body: { reason: 'hide a good event' },
  });
  expect(good).toMatchObject({ status: 409, body: { field: 'sequence' } });
  const missing = await stack.request('POST', `events/${before + 1000}/quarantine`, {
    token: admin,
    body: { reason: 'nothing there' },
  });
  expect(missing.status).toBe(404);
  expect(await stack.lastEventSequence()).toBe(before);
});

test('quarantined by an admin, it is skipped: the host name is claimed, the record reads again', async () => {
  const quarantined = await stack.request('POST', `events/${damagedSequence}/quarantine`, {
    token: admin,
    body: { reason: 'injected before agents had accounts of their own' },
  });
  expect(quarantined).toMatchObject({
    status: 200,
    body: { sequence: damagedSequence, subject, changed: true },
  });
  // Audited: the event names the admin, the digest of the bytes and the reason.
  const store = await openStore(stack);
  const [record] = (await store.readAggregate('quarantine', String(damagedSequence))).events;
  expect(record).toMatchObject({
    type: 'EventQuarantined',
    actor: { kind: 'admin', id: 'quarantine-admin' },
    data: {
      sequence: damagedSequence,
      subject,
      reason: 'injected before agents had accounts of their own',
      payloadSha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    },
  });
  const again = await stack.request('POST', `events/${damagedSequence}/quarantine`, {
    token: admin,
    body: { reason: 'twice' },
  });
  expect(again).toMatchObject({ status: 200, body: { changed: false } });
  expect((await store.readAggregate('quarantine', String(damagedSequence))).events).toHaveLength(1);

  const claimed = await claim();
  expect(claimed).toMatchObject({ status: 202, body: { hostname, status: 'pending' } });
  const history = await store.readAggregate('hostname', hostname);
  expect(history.events.map((event) => event.type)).toEqual(['HostnameClaimed']);
  expect(history.lastSequence).toBeGreaterThan(damagedSequence);
  const shown = await stack.request('GET', `events/${damagedSequence}`, { token: admin });
  expect(shown.body).toMatchObject({ sequence: damagedSequence, quarantined: true });
});

test('a fake quarantine record on the quarantine subject proves nothing', async () => {
  const ack = await jetstream(stack.service).publish('events.agent.quarantine-agent', 'garbage');
  await jetstream(stack.service).publish(`events.quarantine.${ack.seq}`, 'more garbage');
  const store = await openStore(stack);
  expect(await store.isQuarantined(ack.seq)).toBe(false);
  await expect(store.readAggregate('agent', 'quarantine-agent')).rejects.toThrow(
    `the event at sequence ${ack.seq} on events.agent.quarantine-agent cannot be decoded`,
  );
});

test('the dead letters the damaged message caused are settled by the quarantine', async () => {
  const ack = await jetstream(stack.service).publish(
    'events.route.00000000-0000-4000-8000-00000000dead',
    '[]',
  );
  await waitFor('a dead letter of the projector for it', async () => {
    const rows: { status: string }[] = await stack.db.dataSource.query(
      'SELECT status FROM dead_letters WHERE sequence = $1',
      [ack.seq],
    );
    return rows.length > 0 && rows.every((row) => row.status === 'open') ? true : undefined;
  });
  const quarantined = await stack.request('POST', `events/${ack.seq}/quarantine`, {
    token: admin,
    body: { reason: 'not an event' },
  });
  expect(quarantined.body.deadLettersResolved).toBeGreaterThanOrEqual(1);
  const rows: { status: string }[] = await stack.db.dataSource.query(
    'SELECT status FROM dead_letters WHERE sequence = $1',
    [ack.seq],
  );
  expect(rows.map((row) => row.status)).toEqual(rows.map(() => 'resolved'));
});
