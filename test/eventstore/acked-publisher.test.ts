import { JetStreamApiCodes, JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { NoRespondersError, TimeoutError, type NatsConnection } from '@nats-io/transport-node';
import { AckedPublisher, provisionAppendOnlyStream } from '#eventstore';
import { startNats, type TestNats } from '../harness/nats.js';

let nats: TestNats;
let nc: NatsConnection;
const payload = new TextEncoder().encode('{"n":1}');

beforeAll(async () => {
  nats = await startNats();
  nc = await nats.connect();
  await provisionAppendOnlyStream(await jetstreamManager(nc), {
    name: 'PUBLISHED',
    subjects: ['published.>'],
    replicas: 1,
    duplicateWindowMs: 60_000,
  });
});
afterAll(async () => {
  await nc?.close();
  await nats?.destroy();
});

test('acks carry the stream sequence, and a repeated message id is reported as a duplicate of it', async () => {
  const publisher = new AckedPublisher(nc, 2_000);
  const first = await publisher.publish('published.a', payload, { msgId: 'a-1' });
  const again = await publisher.publish('published.a', payload, { msgId: 'a-1' });
  const next = await publisher.publish('published.a', payload, { msgId: 'a-2' });
  expect(first).toEqual({ seq: expect.any(Number), duplicate: false });
  expect(again).toEqual({ seq: first.seq, duplicate: true });
  expect(next.seq).toBe(first.seq + 1);
  publisher.close();
});

test('many publishes in flight each get their own ack', async () => {
  const publisher = new AckedPublisher(nc, 5_000);
  const acks = await Promise.all(
    Array.from({ length: 500 }, (_, index) =>
      publisher.publish(`published.many.${index % 7}`, payload, { msgId: `many-${index}` }),
    ),
  );
  const sequences = acks.map((ack) => ack.seq);
  expect(new Set(sequences).size).toBe(500);
  expect(acks.every((ack) => !ack.duplicate)).toBe(true);
  publisher.close();
});

test('an expected last subject sequence that moved on is refused with the JetStream error code', async () => {
  const publisher = new AckedPublisher(nc, 2_000);
  const first = await publisher.publish('published.occ', payload, {
    msgId: 'occ-1',
    expectedLastSubjectSequence: 0,
  });
  const refused = publisher.publish('published.occ', payload, {
    msgId: 'occ-2',
    expectedLastSubjectSequence: 0,
  });
  await expect(refused).rejects.toBeInstanceOf(JetStreamApiError);
  await expect(refused).rejects.toMatchObject({ code: JetStreamApiCodes.StreamWrongLastSequence });
  const accepted = await publisher.publish('published.occ', payload, {
    msgId: 'occ-3',
    expectedLastSubjectSequence: first.seq,
  });
  expect(accepted.seq).toBeGreaterThan(first.seq);
  publisher.close();
});

test('a subject no stream captures fails at once with no responders', async () => {
  const publisher = new AckedPublisher(nc, 10_000);
  await expect(publisher.publish('nowhere.x', payload, { msgId: 'n-1' })).rejects.toBeInstanceOf(
    NoRespondersError,
  );
  publisher.close();
});

test('an ack that never comes times out, and close abandons what still waits', async () => {
  // A plain subscriber takes the message and never answers: no stream ack and no "no responders".
  const silent = nc.subscribe('silent.>');
  const publisher = new AckedPublisher(nc, 200);
  await expect(publisher.publish('silent.a', payload, { msgId: 's-1' })).rejects.toBeInstanceOf(TimeoutError);

  const patient = new AckedPublisher(nc, 60_000);
  const waiting = patient.publish('silent.b', payload, { msgId: 's-2' });
  await nc.flush();
  patient.close();
  await expect(waiting).rejects.toThrow(/abandoned: the publisher was closed/);
  expect(await patient.publish('published.after-close', payload, { msgId: 's-3' })).toMatchObject({
    duplicate: false,
  });
  patient.close();
  publisher.close();
  silent.unsubscribe();
});

test("replies come back under the connection's own inbox prefix", async () => {
  const scoped = await nats.connect({ inboxPrefix: '_INBOX_scoped' });
  const replySubjects: string[] = [];
  const watcher = nc.subscribe('published.scoped', {
    callback: (_error, message) => {
      replySubjects.push(message.reply ?? '');
    },
  });
  await nc.flush();
  const publisher = new AckedPublisher(scoped, 2_000);
  await publisher.publish('published.scoped', payload, { msgId: 'scoped-1' });
  await nc.flush();
  expect(replySubjects).toHaveLength(1);
  expect(replySubjects[0]).toMatch(/^_INBOX_scoped\./);
  publisher.close();
  watcher.unsubscribe();
  await scoped.close();
});
