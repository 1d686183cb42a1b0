import { generateKeyPairSync } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { AGENTS_STREAM, type ErrorBody } from '#contracts';
import { createCsr, decodeSinglePem, encodePem } from '#pki-client';
import type { AgentsStack, EnrolledAgent } from '../harness/stack.js';
import { databaseName, keyAndCsr, natsRequest, startCertificatesStack } from './helpers.js';

/**
 * Bad certificate requests, through both doors an agent has (HTTP and its own NATS prefix): a CSR for
 * another agent's name, a CSR whose signature does not verify, an RSA key under 2048 bits and garbage PEM
 * are refused with an error that names the problem, and leave the event log, the agents' stream and the
 * certificates projection exactly as they were.
 */
let stack: AgentsStack;
let agent: EnrolledAgent;
let nats: NatsConnection;

beforeAll(async () => {
  stack = await startCertificatesStack();
  agent = await stack.enroll('ref-a');
  await stack.enroll('ref-b');
  nats = await stack.connectAsAgent(agent);
}, 180_000);
afterAll(async () => {
  await nats?.close().catch(() => undefined);
  await stack?.stop();
}, 60_000);

/** Everything a refusal must leave untouched: both streams' last sequences and the projection's rows. */
async function footprint(): Promise<{ events: number; agents: number; certificates: number }> {
  const jsm = await jetstreamManager(stack.service);
  const [{ count }]: { count: string }[] = await stack.db.dataSource.query(
    'SELECT count(*)::text AS count FROM certificates',
  );
  return {
    events: await stack.lastEventSequence(),
    agents: (await jsm.streams.info(AGENTS_STREAM)).state.last_seq,
    certificates: Number(count),
  };
}

/** Sends `csr` over HTTP and over NATS as agent ref-a; both answers must be the same refusal. */
async function refuse(csr: string): Promise<{ status: number; error: ErrorBody }> {
  const before = await footprint();
  const http = await stack.request('POST', 'agents/ref-a/certificates', {
    token: agent.accessToken,
    body: { csr },
  });
  const reply = await natsRequest(nats, 'ref-a', 'request', { csr });
  if (reply.ok) throw new Error(`accepted over NATS: ${JSON.stringify(reply.result)}`);
  expect(reply.error).toEqual(http.body);
  // Nothing was appended anywhere, and the projector (which has caught up with the log) has no new row.
  expect(await footprint()).toEqual(before);
  return { status: http.status, error: http.body as unknown as ErrorBody };
}

test('a CSR for another agent’s name is refused (403), naming that name', async () => {
  const theirs = databaseName('ref-b');
  const { csr } = await keyAndCsr([databaseName('ref-a'), theirs]);
  const refusal = await refuse(csr);
  expect(refusal).toEqual({
    status: 403,
    error: {
      error: 'forbidden',
      message: `the certificate request names "${theirs}", which the requester does not own`,
      field: 'csr',
    },
  });
  // Only the other agent's name: the same.
  const only = await refuse((await keyAndCsr([theirs])).csr);
  expect(only.error.message).toContain(`"${theirs}"`);
});

test('a CSR whose signature does not verify is refused (400)', async () => {
  const { csr } = await keyAndCsr([databaseName('ref-a')]);
  const der = decodeSinglePem(csr, 'CERTIFICATE REQUEST');
  const tampered = Buffer.from(der);
  tampered[tampered.length - 1]! ^= 0x01; // one bit of the signature
  const refusal = await refuse(encodePem('CERTIFICATE REQUEST', tampered));
  expect(refusal).toEqual({
    status: 400,
    error: {
      error: 'invalid',
      message:
        'csr: has a signature that does not verify: it was altered, or not signed by the key it contains',
      field: 'csr',
    },
  });
  // A name changed after signing (the structure stays valid) is the same refusal.
  const at = der.indexOf(Buffer.from('ref-a'));
  const renamed = Buffer.from(der);
  renamed[at + 4] = 'b'.charCodeAt(0);
  expect((await refuse(encodePem('CERTIFICATE REQUEST', renamed))).error.message).toMatch(
    /signature that does not verify/,
  );
});

test('a CSR with an RSA key under 2048 bits is refused (400), saying the size', async () => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const csr = createCsr({ privateKey, names: [databaseName('ref-a')] });
  const refusal = await refuse(csr);
  expect(refusal.status).toBe(400);
  expect(refusal.error).toMatchObject({ error: 'invalid', field: 'csr' });
  expect(refusal.error.message).toMatch(/1024/);
  expect(refusal.error.message).toMatch(/2048/);
});

test('garbage PEM is refused (400) with what was wrong', async () => {
  const cases = [
    'not a certificate request at all',
    '-----BEGIN CERTIFICATE REQUEST-----\n!!!! not base64 ****\n-----END CERTIFICATE REQUEST-----\n',
    encodePem('CERTIFICATE REQUEST', Buffer.from('these bytes are not DER')),
    '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n', // cut off
  ];
  for (const csr of cases) {
    const refusal = await refuse(csr);
    expect({ csr, status: refusal.status, error: refusal.error.error, field: refusal.error.field }).toEqual({
      csr,
      status: 400,
      error: 'invalid',
      field: 'csr',
    });
    expect(refusal.error.message).toMatch(/^csr: /);
    expect(refusal.error.message.length).toBeGreaterThan('csr: '.length + 10);
  }
  // Not a string at all: the field is named too.
  const http = await stack.request('POST', 'agents/ref-a/certificates', {
    token: agent.accessToken,
    body: { csr: 42 },
  });
  expect(http).toMatchObject({ status: 400, body: { error: 'invalid', field: 'csr' } });
});

test('another agent’s id in the path or subject is refused and appends nothing', async () => {
  const before = await footprint();
  const { csr } = await keyAndCsr([databaseName('ref-b')]);
  const http = await stack.request('POST', 'agents/ref-b/certificates', {
    token: agent.accessToken,
    body: { csr },
  });
  expect(http).toMatchObject({ status: 403, body: { error: 'forbidden', field: 'agentId' } });
  // The broker does not even let ref-a publish under ref-b's prefix.
  await expect(natsRequest(nats, 'ref-b', 'request', { csr })).rejects.toThrow(/permission/i);
  expect(await footprint()).toEqual(before);
});

test('a good request still works afterwards (the refusals were not a broken service)', async () => {
  const before = await footprint();
  const { csr } = await keyAndCsr([databaseName('ref-a')]);
  const reply = await natsRequest<{ outcome: string }>(nats, 'ref-a', 'request', { csr });
  expect(reply).toMatchObject({ ok: true, result: { outcome: 'issued' } });
  expect((await footprint()).events).toBe(before.events + 1);
});
