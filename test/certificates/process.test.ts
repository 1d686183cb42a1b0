import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { IssueCertificateResult } from '#contracts';
import { decodePem, encodePem } from '#pki-client';
import { AgentsStack, type EnrolledAgent } from '../harness/stack.js';
import { makeTempDir, waitFor } from '../harness/processes.js';
import { openssl, put } from '../pki/helpers.js';
import { databaseName, DOMAIN, eventsOfType, fetchText, keyAndCsr, readWholeLog } from './helpers.js';

/**
 * The certificates service as production runs it: its own process (`node dist/apps/certificates/src/main.js`)
 * beside registration, projector, routing and API, configured only by CL_* variables. Killed with SIGKILL
 * and started again, it comes back with the same CA (same certificate, same fingerprint, one
 * CertificateAuthorityCreated in the log), and what it signed before still verifies against `ca.pem`.
 */
let stack: AgentsStack;
let temp: { path: string; remove(): Promise<void> };
let agent: EnrolledAgent;
let frontFile: string;

beforeAll(async () => {
  temp = await makeTempDir('certs-process');
  frontFile = join(temp.path, 'front', 'front.pem');
  stack = await AgentsStack.start({
    processes: true,
    certificates: true,
    // A CA of 30 days, shorter than the 30-day renewal window: the front's certificate ends with the CA and
    // must still be kept (renewing it could not make it last longer).
    env: { CL_DOMAIN: DOMAIN, CL_PKI_CA_VALIDITY_DAYS: '30', CL_FRONT_CERT_FILE: frontFile },
  });
  agent = await stack.enroll('proc-c');
}, 180_000);
afterAll(async () => {
  await stack?.stop();
  await temp?.remove();
}, 60_000);

async function issue(): Promise<IssueCertificateResult['certificate']> {
  const { csr } = await keyAndCsr([databaseName('proc-c')]);
  const response = await stack.request('POST', 'agents/proc-c/certificates', {
    token: agent.accessToken,
    body: { csr },
  });
  if (response.status !== 201) throw new Error(`${response.status} ${JSON.stringify(response.body)}`);
  return (response.body as unknown as IssueCertificateResult).certificate;
}

test('killed and started again, the certificates service keeps its CA and signs for the same ca.pem', async () => {
  const before = await fetchText(stack, 'ca.pem');
  expect(before.status).toBe(200);
  const fingerprint = before.headers.get('x-ca-fingerprint');
  const caFile = await put(temp.path, 'ca.pem', before.text);
  const caJson = await readFile(join(stack.env.CL_PKI_DIR!, 'ca.json'), 'utf8');
  expect(caJson).not.toMatch(/PRIVATE KEY/);
  const earlier = await issue();

  await stack.stopService('certificates', 'SIGKILL');
  const down = await fetchText(stack, 'ca.pem');
  expect(down.status).toBeGreaterThanOrEqual(500);
  const started = stack.startService('certificates', { CL_LOG_LEVEL: 'info' });
  const after = await waitFor(
    'the certificates service to answer again',
    async () => {
      if (started.child.exitCode !== null) throw new Error(`it exited:\n${started.output()}`);
      const response = await fetchText(stack, 'ca.pem');
      return response.status === 200 ? response : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  expect(after.headers.get('x-ca-fingerprint')).toBe(fingerprint);
  expect(after.text).toBe(before.text);
  expect(await readFile(join(stack.env.CL_PKI_DIR!, 'ca.json'), 'utf8')).toBe(caJson);
  expect(
    (await eventsOfType(stack, 'CertificateAuthorityCreated')).map((event) => event.aggregate.id),
  ).toEqual([fingerprint]);

  // Signed before and after the restart: both verify against the ca.pem fetched before it.
  const later = await issue();
  for (const certificate of [earlier, later]) {
    const file = await put(temp.path, `${certificate.serial}.crt`, certificate.certificatePem);
    expect((await openssl(['verify', '-CAfile', caFile, file])).stdout.trim()).toBe(`${file}: OK`);
  }
  const crl = await fetchText(stack, 'crl.pem');
  const crlFile = await put(temp.path, 'crl.pem', crl.text);
  expect((await openssl(['crl', '-in', crlFile, '-CAfile', caFile, '-noout'])).stderr).toMatch(/verify OK/);
  // The front's bundle was kept across the restart: still one certificate recorded for `_front`.
  const front = (await readWholeLog(stack)).events.filter(
    (event) => event.aggregate.id === '_front' && /^Certificate(Issued|Renewed)$/.test(event.type),
  );
  expect(front.map((event) => event.type)).toEqual(['CertificateIssued']);
  // Its log lines (JSON, from its own process) never carry a key.
  expect(started.output()).toContain('certificates ready');
  expect(started.output()).not.toMatch(/PRIVATE KEY/);
}, 150_000);

test('the front server’s bundle: issued by the service for *.apps and *.mongodb, the key only in its 0600 file', async () => {
  const text = await readFile(frontFile, 'utf8');
  expect((await stat(frontFile)).mode & 0o777).toBe(0o600);
  const blocks = decodePem(text);
  expect(blocks.map((block) => block.type)).toEqual(['CERTIFICATE', 'CERTIFICATE', 'PRIVATE KEY']);
  const leaf = await put(temp.path, 'front-leaf.pem', encodePem('CERTIFICATE', blocks[0]!.der));
  const caFile = await put(temp.path, 'ca-front.pem', (await fetchText(stack, 'ca.pem')).text);
  expect((await openssl(['verify', '-CAfile', caFile, leaf])).stdout.trim()).toBe(`${leaf}: OK`);
  const san = (await openssl(['x509', '-noout', '-ext', 'subjectAltName', '-in', leaf])).stdout;
  expect(san).toContain(`DNS:*.apps.${DOMAIN}`);
  expect(san).toContain(`DNS:*.mongodb.${DOMAIN}`);
  // Recorded in the log as the `_front` holder's, installed; public data only.
  const [issued] = (await eventsOfType(stack, 'CertificateIssued')).filter(
    (event) => event.aggregate.id === '_front',
  );
  expect(issued!.data).toMatchObject({ agentId: null, names: [`*.apps.${DOMAIN}`, `*.mongodb.${DOMAIN}`] });
  expect(issued!.data.certificatePem).toBe(encodePem('CERTIFICATE', blocks[0]!.der));
  const installed = (await eventsOfType(stack, 'CertificateInstalled')).filter(
    (event) => event.aggregate.id === '_front',
  );
  expect(installed.map((event) => event.data.serial)).toEqual([issued!.data.serial]);
  const log = await readWholeLog(stack);
  expect(log.raw.join('\n')).not.toMatch(/PRIVATE KEY/);
  expect(log.raw.join('\n')).not.toContain(blocks[2]!.der.toString('base64').slice(64, 160));
});
