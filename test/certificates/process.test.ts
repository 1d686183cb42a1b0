import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IssueCertificateResult } from '#contracts';
import { AgentsStack } from '../agents/stack.js';
import { makeTempDir, waitFor } from '../harness/processes.js';
import { openssl, put } from '../pki/helpers.js';
import { databaseName, DOMAIN, eventsOfType, fetchText, keyAndCsr, type Enrolled } from './helpers.js';

/**
 * The certificates service as production runs it: its own process (`node dist/apps/certificates/src/main.js`)
 * beside registration, projector, routing and API, configured only by CL_* variables. Killed with SIGKILL
 * and started again, it comes back with the same CA (same certificate, same fingerprint, one
 * CertificateAuthorityCreated in the log), and what it signed before still verifies against `ca.pem`.
 */
let stack: AgentsStack;
let temp: { path: string; remove(): Promise<void> };
let agent: Enrolled;

beforeAll(async () => {
  temp = await makeTempDir('certs-process');
  stack = await AgentsStack.start({
    processes: true,
    certificates: true,
    env: { CL_DOMAIN: DOMAIN, CL_PKI_CA_VALIDITY_DAYS: '30' },
  });
  agent = await stack.enroll('proc-c');
});
afterAll(async () => {
  await stack?.stop();
  await temp?.remove();
});

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
  // Its log lines (JSON, from its own process) never carry a key.
  expect(started.output()).toContain('certificates ready');
  expect(started.output()).not.toMatch(/PRIVATE KEY/);
});
