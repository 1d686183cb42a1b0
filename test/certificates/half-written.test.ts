import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createDomainRegistry } from '#contracts';
import type { EventStore } from '#eventstore';
import { generateCaEncryptionKey } from '#pki';
import { createLogger } from '#platform';
import { Authority } from '../../apps/certificates/src/authority.js';
import { CertificateCommands } from '../../apps/certificates/src/certificates.commands.js';
import { openTestStore } from '../eventstore/fixtures.js';
import { startNats, type TestNats } from '../harness/nats.js';
import { makeTempDir } from '../harness/processes.js';

/**
 * Issue 14: a decision of several events is appended one message at a time. The front certificate's
 * record (issued, installed) once stopped between the two under load, and nothing ever completed it.
 * Here the writer's broker connection dies right after the first append — what a killed process leaves
 * — and a new writer (the service started again) completes the record, once.
 */
let nats: TestNats;
let temp: { path: string; remove(): Promise<void> };
const logger = createLogger('test', { level: 'error', write: () => undefined });

beforeAll(async () => {
  nats = await startNats();
  temp = await makeTempDir('half-written');
  await writeFile(join(temp.path, 'ca.key'), generateCaEncryptionKey(), { mode: 0o600 });
});
afterAll(async () => {
  await nats?.destroy();
  await temp?.remove();
});

/** The certificates service's command side for the front only: it needs the log and the CA. */
async function writer(store: EventStore, frontFile: string) {
  const keyFile = join(temp.path, 'ca.key');
  const authority = await Authority.open(
    {
      dir: join(temp.path, 'ca'),
      keyFile,
      domain: 'half.test',
      caValidityDays: 30,
      nameConstraints: true,
      certValiditySeconds: 7 * 86_400,
      renewBeforeSeconds: 86_400,
      crlValiditySeconds: 86_400,
    },
    logger,
  );
  // ensureFront reads and appends the `_front` holder only; the other parts serve agents' requests.
  const unused = undefined as never;
  return new CertificateCommands(
    store,
    unused,
    authority,
    unused,
    unused,
    unused,
    { frontCertificateFile: frontFile },
    logger,
  );
}

test('a writer killed between the front certificate’s appends: the next one completes the record', async () => {
  const frontFile = join(temp.path, 'front.pem');
  const doomed = await nats.connect();
  const { store } = await openTestStore(doomed, createDomainRegistry());
  // The connection dies as soon as the first event of the decision is acknowledged.
  const publisher = (store as unknown as { publisher: { publish: (...args: unknown[]) => Promise<unknown> } })
    .publisher;
  const publish = publisher.publish.bind(publisher);
  let appended = 0;
  publisher.publish = async (...args: unknown[]) => {
    const ack = await publish(...args);
    if (++appended === 1) await doomed.close();
    return ack;
  };
  await expect((await writer(store, frontFile)).ensureFront()).rejects.toThrow();

  const connection = await nats.connect();
  const { store: fresh } = await openTestStore(connection, createDomainRegistry());
  const left = await fresh.readAggregate('certificate', '_front');
  expect(left.events.map((event) => event.type)).toEqual(['CertificateIssued']);

  // The service starts again: the same certificate (its file is kept), the record completed once.
  await (await writer(fresh, frontFile)).ensureFront();
  const completed = await fresh.readAggregate('certificate', '_front');
  expect(completed.events.map((event) => event.type)).toEqual(['CertificateIssued', 'CertificateInstalled']);
  expect(completed.events[1]!.data).toMatchObject({
    serial: (left.events[0]!.data as { serial: string }).serial,
  });
  await (await writer(fresh, frontFile)).ensureFront();
  expect((await fresh.readAggregate('certificate', '_front')).events).toHaveLength(2);
  await connection.close();
});
