import { once } from 'node:events';
import type { Server } from 'node:tls';
import type { NatsConnection } from '@nats-io/transport-node';
import type { IssueCertificateResult } from '#contracts';
import { createCsr } from '#pki-client';
import type { AgentsStack, EnrolledAgent } from '../harness/stack.js';
import { makeTempDir } from '../harness/processes.js';
import { openssl, put } from '../pki/helpers.js';
import {
  certificateRow,
  databaseName,
  DOMAIN,
  eventsOfType,
  fetchText,
  keyAndCsr,
  natsRequest,
  startCertificatesStack,
  tlsClient,
  tlsServer,
  waitForRow,
} from './helpers.js';

/**
 * Issuance end to end, with OpenSSL as the outside judge: an agent sends a CSR (over HTTP and over its
 * own NATS prefix), the certificates service signs only names it owns, the certificate verifies against
 * the public `ca.pem`, carries the profile's extensions, and a TLS server with the agent's key is accepted
 * by a Node TLS client and by `openssl s_client` trusting only the CA.
 */
let stack: AgentsStack;
let temp: { path: string; remove(): Promise<void> };
let agent: EnrolledAgent;
let nats: NatsConnection;
let caPem: string;
let caFile: string;
const servers: Server[] = [];

beforeAll(async () => {
  stack = await startCertificatesStack();
  temp = await makeTempDir('certs-issue');
  agent = await stack.enroll('db-1');
  nats = await stack.connectAsAgent(agent);
});
afterAll(async () => {
  for (const server of servers) server.close();
  await nats?.close().catch(() => undefined);
  await stack?.stop();
  await temp?.remove();
});

test('ca.pem is public, and the log records the CA once (public data only)', async () => {
  const response = await fetchText(stack, 'ca.pem');
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/application\/x-pem-file/);
  caPem = response.text;
  expect(caPem).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
  caFile = await put(temp.path, 'ca.pem', caPem);
  const created = await eventsOfType(stack, 'CertificateAuthorityCreated');
  expect(created).toHaveLength(1);
  expect(created[0]!.aggregate).toEqual({ type: 'ca', id: response.headers.get('x-ca-fingerprint') });
  expect(created[0]!.data.certificatePem).toBe(caPem);
  const text = await openssl(['x509', '-noout', '-text', '-in', caFile]);
  expect(text.stdout).toMatch(/CA:TRUE/);
  expect(text.stdout).toContain(`DNS:${DOMAIN}`); // name constraints: permitted subtree
});

let issued: IssueCertificateResult['certificate'];
let agentKey: string;

test('an agent CSR over HTTP: 201, verified by openssl against ca.pem, with the profile extensions', async () => {
  const name = databaseName('db-1');
  const request = await keyAndCsr([name]);
  agentKey = request.privateKeyPem;
  const before = await stack.lastEventSequence();
  const response = await stack.request('POST', 'agents/db-1/certificates', {
    token: agent.accessToken,
    body: { csr: request.csr },
  });
  expect(response.status).toBe(201);
  const result = response.body as unknown as IssueCertificateResult;
  expect(result.outcome).toBe('issued');
  issued = result.certificate;
  expect(issued).toMatchObject({ agentId: 'db-1', names: [name], replaces: null });
  expect(issued.chainPem).toBe(caPem);
  // One event, on the agent's certificate aggregate, with exactly what the answer says.
  expect(await stack.lastEventSequence()).toBe(before + 1);
  const [event] = (await eventsOfType(stack, 'CertificateIssued')).filter(
    (candidate) => candidate.data.serial === issued.serial,
  );
  expect(event!.aggregate).toEqual({ type: 'certificate', id: 'db-1' });
  expect(event!.actor).toEqual({ kind: 'agent', id: 'db-1' });
  expect(event!.data.certificatePem).toBe(issued.certificatePem);

  const certFile = await put(temp.path, 'db-1.crt', issued.certificatePem);
  const verify = await openssl(['verify', '-CAfile', caFile, certFile]);
  expect(verify.stdout.trim()).toBe(`${certFile}: OK`);
  const text = (await openssl(['x509', '-noout', '-text', '-in', certFile])).stdout;
  expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
  expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment/);
  expect(text).toMatch(
    /X509v3 Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication/,
  );
  expect(text).toMatch(new RegExp(`X509v3 Subject Alternative Name:\\s+DNS:${name.replace(/\./g, '\\.')}`));
  expect(text).toContain(`Subject: CN = ${name}`);
  expect(text).toMatch(/X509v3 Subject Key Identifier/);
  expect(text).toMatch(/X509v3 Authority Key Identifier/);
  expect(text).toContain('Public-Key: (2048 bit)');
  const serial = (await openssl(['x509', '-noout', '-serial', '-in', certFile])).stdout.trim();
  expect(serial.toLowerCase()).toBe(`serial=${issued.serial}`);

  // The projection shows it, issued, with the public data.
  const row = await waitForRow(stack, issued.serial);
  expect(row).toMatchObject({ holder: 'db-1', agent_id: 'db-1', names: [name], status: 'issued' });
});

test('a TLS server with the agent key is accepted by Node and by openssl s_client trusting only the CA', async () => {
  const name = databaseName('db-1');
  const { server, port } = await tlsServer(agentKey, issued.certificatePem + issued.chainPem);
  servers.push(server);
  const node = await tlsClient(port, name, caPem);
  expect(node).toEqual({ line: 'hello', serial: issued.serial, authorized: true });

  const sClient = await openssl(
    [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      '-servername',
      name,
      '-verify_hostname',
      name,
      '-CAfile',
      caFile,
      '-verify_return_error',
      // Keep reading after stdin's EOF until the server closes, so its greeting is printed.
      '-ign_eof',
    ],
    { input: '' },
  );
  // With -verify_return_error a failed verification aborts the handshake, so a verified handshake and the
  // server's greeting are the judge. (Not the exit status: Node closes without a TLS close_notify, which
  // OpenSSL 3 may report as "unexpected eof while reading" — seen on a loaded machine.)
  expect(sClient.stdout).toMatch(/Verify return code: 0 \(ok\)/);
  expect(sClient.stdout).toMatch(/^hello$/m);
  // The same server for a name the certificate does not hold is refused.
  const other = await openssl(
    [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      '-servername',
      databaseName('db-2'),
      '-verify_hostname',
      databaseName('db-2'),
      '-CAfile',
      caFile,
      '-verify_return_error',
    ],
    { input: '' },
  );
  expect(other.code).not.toBe(0);
  await expect(tlsClient(port, databaseName('db-2'), caPem)).rejects.toThrow(/does not match|altnames/i);
});

test('the same CSR again is answered with the same certificate (200) and appends nothing', async () => {
  const before = await stack.lastEventSequence();
  const again = await stack.request('POST', 'agents/db-1/certificates', {
    token: agent.accessToken,
    body: { csr: (await keyAndCsrFor(agentKey)).csr },
  });
  expect(again.status).toBe(200);
  expect(again.body).toMatchObject({ outcome: 'existing', certificate: { serial: issued.serial } });
  expect(await stack.lastEventSequence()).toBe(before);
});

test('over NATS: a route host name it holds is certified with its database name; then it confirms', async () => {
  const routeName = `app.db-1.mongodb.${DOMAIN}`;
  const route = await stack.request('POST', 'routes', {
    token: agent.accessToken,
    body: { kind: 'tls-sni', hostname: routeName, target: { host: agent.address, port: 27017 } },
  });
  expect(route.status).toBe(202);
  const names = await natsRequest<{ databaseHostname: string; hostnames: string[] }>(
    nats,
    'db-1',
    'names',
    {},
  );
  expect(names).toMatchObject({ ok: true, result: { databaseHostname: databaseName('db-1') } });

  const request = await keyAndCsr([databaseName('db-1'), routeName]);
  const reply = await natsRequest<IssueCertificateResult>(nats, 'db-1', 'request', {
    csr: request.csr,
    replaces: issued.serial,
  });
  if (!reply.ok) throw new Error(JSON.stringify(reply.error));
  expect(reply.result.outcome).toBe('renewed');
  const renewed = reply.result.certificate;
  expect(renewed.names).toEqual([databaseName('db-1'), routeName]);
  expect(renewed.replaces).toBe(issued.serial);
  const certFile = await put(temp.path, 'db-1-route.crt', renewed.certificatePem);
  expect((await openssl(['verify', '-CAfile', caFile, certFile])).code).toBe(0);
  expect((await openssl(['x509', '-noout', '-ext', 'subjectAltName', '-in', certFile])).stdout).toContain(
    `DNS:${databaseName('db-1')}, DNS:${routeName}`,
  );

  const confirm = await natsRequest(nats, 'db-1', 'confirm', {
    serial: renewed.serial,
    hook: { status: 'succeeded' },
  });
  expect(confirm).toEqual({
    ok: true,
    result: { serial: renewed.serial, status: 'installed', changed: true, superseded: [issued.serial] },
  });
  // Confirming again changes nothing.
  const before = await stack.lastEventSequence();
  expect(await natsRequest(nats, 'db-1', 'confirm', { serial: renewed.serial })).toMatchObject({
    ok: true,
    result: { changed: false },
  });
  expect(await stack.lastEventSequence()).toBe(before);
  await waitForRow(stack, renewed.serial, (row) => row.status === 'installed');
  expect(await waitForRow(stack, renewed.serial)).toMatchObject({
    replaces: issued.serial,
    hook_status: 'succeeded',
  });
  expect(await waitForRow(stack, issued.serial, (row) => row.status === 'superseded')).toMatchObject({
    superseded_by: renewed.serial,
  });
});

test('reads: an agent sees its own certificates; an admin every one, with filters', async () => {
  const own = await stack.request('GET', 'agents/db-1/certificates', { token: agent.accessToken });
  expect(own.status).toBe(200);
  const serials = (own.body.certificates as { serial: string }[]).map((entry) => entry.serial);
  expect(serials).toContain(issued.serial);
  expect(own.body.total).toBe(2);

  const admin = stack.adminToken();
  const installed = await stack.request('GET', 'certificates?status=installed&agentId=db-1', {
    token: admin,
  });
  expect(installed.body).toMatchObject({
    total: 1,
    certificates: [{ status: 'installed', agentId: 'db-1' }],
  });
  const byName = await stack.request('GET', `certificates?name=app.db-1.mongodb.${DOMAIN}`, { token: admin });
  expect(byName.body.total).toBe(1);
  const single = await stack.request('GET', `certificates/${issued.serial}`, { token: agent.accessToken });
  expect(single.body).toMatchObject({
    serial: issued.serial,
    status: 'superseded',
    certificatePem: issued.certificatePem,
  });
  const missing = await stack.request('GET', `certificates/${'7f'.repeat(16)}`, { token: admin });
  expect(missing.status).toBe(404);
  expect((await certificateRow(stack, issued.serial))?.certificate_pem).toBe(issued.certificatePem);
});

test('admin revocation: the certificate is in the next public CRL, which openssl verifies against the CA', async () => {
  const admin = stack.adminToken();
  const refused = await stack.request('POST', `certificates/${issued.serial}/revoke`, {
    token: agent.accessToken,
    body: {},
  });
  expect(refused.status).toBe(403);
  const revoked = await stack.request('POST', `certificates/${issued.serial}/revoke`, {
    token: admin,
    body: { reason: 'keyCompromise', detail: 'test' },
  });
  expect(revoked).toMatchObject({
    status: 200,
    body: { serial: issued.serial, holder: 'db-1', changed: true },
  });
  const again = await stack.request('POST', `certificates/${issued.serial}/revoke`, {
    token: admin,
    body: {},
  });
  expect(again.body).toMatchObject({ changed: false });

  const crl = await fetchText(stack, 'crl.pem');
  expect(crl.status).toBe(200);
  const crlFile = await put(temp.path, 'crl.pem', crl.text);
  const checked = await openssl(['crl', '-in', crlFile, '-CAfile', caFile, '-noout', '-text']);
  expect(checked.stderr).toMatch(/verify OK/);
  expect(checked.stdout.toUpperCase()).toContain(`SERIAL NUMBER: ${issued.serial.toUpperCase()}`);
  expect(checked.stdout).toMatch(/Key Compromise/);
  const certFile = await put(temp.path, 'revoked.crt', issued.certificatePem);
  const verify = await openssl(['verify', '-crl_check', '-CAfile', caFile, '-CRLfile', crlFile, certFile]);
  expect(verify.code).not.toBe(0);
  expect(verify.stdout + verify.stderr).toMatch(/certificate revoked/);
  await waitForRow(
    stack,
    issued.serial,
    (row) => row.status === 'revoked' && row.revocation_reason === 'keyCompromise',
  );
  // The same key pair is not certified again.
  const reuse = await stack.request('POST', 'agents/db-1/certificates', {
    token: agent.accessToken,
    body: { csr: (await keyAndCsrFor(agentKey)).csr },
  });
  expect(reuse).toMatchObject({ status: 409, body: { field: 'csr' } });
  await once(servers[0]!.close(), 'close');
  servers.length = 0;
});

/** A CSR for the agent's database name with an existing key. */
async function keyAndCsrFor(privateKeyPem: string) {
  return { csr: createCsr({ privateKey: privateKeyPem, names: [databaseName('db-1')] }) };
}
