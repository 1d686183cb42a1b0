import { lstat, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { AGENTS_STREAM } from '#contracts';
import { decodePem, inspectCertificate } from '#pki-client';
import type { AgentsStack } from '../harness/stack.js';
import { startApp } from '../harness/apps.js';
import { freePort } from '../harness/ports.js';
import { makeTempDir, waitFor, type RunningProcess } from '../harness/processes.js';
import { openssl, put } from '../pki/helpers.js';
import {
  databaseName,
  eventsOfType,
  fetchText,
  keyAndCsr,
  LogCapture,
  readWholeLog,
  startCertificatesStack,
  tlsClient,
  waitForRow,
  type Loose,
} from './helpers.js';

/**
 * A certificate's whole life with a real agent process (node dist/apps/agent/src/main.js), in order:
 * the agent makes its key and gets its first certificate; the certificates service restarts and keeps its
 * CA; with a short validity, the service asks the agent for a renewal and the running agent installs the
 * renewed pair (atomically, the previous pair kept until the service confirmed, the hook run) without
 * restarting; deregistration revokes the agent's certificates and the CRL lists them (openssl judges);
 * and after all that, no private key is in the event log, the projections or the logs.
 */
const AGENT = 'life-a';
/**
 * Issued certificates live 120 s and are renewed when less than 90 s are left: ~30 s after issuance (time
 * for the first checks even on a loaded machine), and the one in use always has over a minute left.
 */
const VALIDITY_S = 120;
const RENEW_BEFORE_S = 90;

let stack: AgentsStack;
let temp: { path: string; remove(): Promise<void> };
const capture = new LogCapture();
let agent: RunningProcess;
let agentPid: number | undefined;
let probePort: number;
let certsDir: string;
let hookLog: string;
let caPem = '';
let caFile = '';
let caFingerprint = '';
/** Every private key the agent made (read from its own disk), for the grep-proof. */
const agentKeys = new Set<string>();
let first: Loose;
let renewed: Loose;

beforeAll(async () => {
  temp = await makeTempDir('certs-life');
  stack = await startCertificatesStack({
    capture,
    env: {
      CL_PKI_CERT_VALIDITY_S: String(VALIDITY_S),
      CL_PKI_RENEW_BEFORE_S: String(RENEW_BEFORE_S),
      CL_CERTS_RENEW_CHECK_MS: '500',
      CL_CERTS_RENEW_RETRY_S: '5',
    },
  });
  const ca = await fetchText(stack, 'ca.pem');
  caPem = ca.text;
  caFingerprint = ca.headers.get('x-ca-fingerprint') ?? '';
  caFile = await put(temp.path, 'ca.pem', caPem);
  probePort = await freePort();
  certsDir = join(temp.path, 'certs');
  hookLog = join(temp.path, 'hook.log');
  const configPath = join(temp.path, 'agent.json');
  // The hook records, at the moment it runs: the serial it was given, which releases exist on disk, and
  // the serial of the certificate file it was pointed at (read by openssl).
  const hook = [
    'printf "%s|%s|%s\\n" "$CL_CERT_SERIAL"',
    `"$(ls ${join(certsDir, 'releases')} | tr '\\n' ' ')"`,
    '"$(openssl x509 -noout -serial -in "$CL_CERT_FILE")"',
    `>> ${hookLog}`,
  ].join(' ');
  await writeFile(
    configPath,
    JSON.stringify({
      apiUrl: stack.baseUrl,
      enrollmentToken: await stack.enrollmentToken(),
      agentId: AGENT,
      sourceAddress: '127.0.0.21',
      stateDir: join(temp.path, 'state'),
      heartbeatIntervalMs: 1_000,
      reconnect: { initialDelayMs: 100, maxDelayMs: 1_000 },
      certificates: {
        dir: certsDir,
        keyBits: 2048,
        hook: { command: ['/bin/sh', '-c', hook], timeoutMs: 20_000 },
        checkIntervalMs: 2_000,
        probe: { host: '127.0.0.1', port: probePort },
      },
    }),
  );
  agent = startApp('agent', { CL_LOG_LEVEL: 'info' }, ['--config', configPath]);
  stack.processes.set(`agent-${AGENT}`, agent);
  agentPid = agent.child.pid;
}, 180_000);
afterAll(async () => {
  await stack?.stop();
  await temp?.remove();
}, 60_000);

const agentLog = () =>
  agent
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Loose);

function agentAlive(): void {
  if (agent.child.exitCode !== null || agent.child.signalCode !== null)
    throw new Error(`the agent exited:\n${agent.output().slice(-4000)}`);
}

async function hookLines(): Promise<{ serial: string; releases: string[]; fileSerial: string }[]> {
  const text = await readFile(hookLog, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [serial, releases, fileSerial] = line.split('|') as [string, string, string];
      return {
        serial,
        releases: releases.split(' ').filter(Boolean).sort(),
        fileSerial: fileSerial.replace(/^serial=/, '').toLowerCase(),
      };
    });
}

/** The serial the agent's TLS endpoint serves, verified by Node's TLS client trusting only the CA. */
async function probeSerial(): Promise<string> {
  return (await tlsClient(probePort, databaseName(AGENT), caPem)).serial;
}

async function rememberLiveKey(): Promise<void> {
  agentKeys.add(await readFile(join(certsDir, 'live', 'key.pem'), 'utf8'));
}

test('the agent makes its key, gets its certificate, installs it 0600 and confirms; the hook runs', async () => {
  const issued = await waitFor(
    'the agent’s first certificate',
    async () => {
      agentAlive();
      return (await eventsOfType(stack, 'CertificateIssued')).find((event) => event.data.agentId === AGENT);
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  first = issued.data;
  expect(first.names).toEqual([databaseName(AGENT)]);
  expect(issued.actor).toEqual({ kind: 'agent', id: AGENT });
  // The agent confirmed: installed in the projection, with the hook's result.
  await waitForRow(stack, first.serial, (row) => row.status === 'installed', 60_000);
  expect(await waitForRow(stack, first.serial)).toMatchObject({ hook_status: 'succeeded' });

  // On its disk: live -> releases/<serial>, the key 0600, the certificate verified by openssl.
  expect((await lstat(join(certsDir, 'live'))).isSymbolicLink()).toBe(true);
  expect(await readlink(join(certsDir, 'live'))).toBe(join('releases', first.serial));
  expect((await stat(join(certsDir, 'live', 'key.pem'))).mode & 0o777).toBe(0o600);
  expect((await stat(join(certsDir, 'live', 'bundle.pem'))).mode & 0o777).toBe(0o600);
  const verify = await openssl(['verify', '-CAfile', caFile, join(certsDir, 'live', 'cert.pem')]);
  expect(verify.stdout.trim()).toMatch(/: OK$/);
  await rememberLiveKey();

  const hooks = await hookLines();
  expect(hooks[0]).toEqual({ serial: first.serial, releases: [first.serial], fileSerial: first.serial });
  // Its TLS endpoint serves it, for its name, to a client that trusts only the CA.
  expect(await waitFor('the probe to serve the first certificate', () => probeSerial())).toBe(first.serial);
}, 180_000);

test('the CA survives a restart of the certificates service: same certificate, same fingerprint', async () => {
  const pkiDir = stack.env.CL_PKI_DIR!;
  const caJsonBefore = await readFile(join(pkiDir, 'ca.json'), 'utf8');
  const crlBefore = await fetchText(stack, 'crl.pem');
  await stack.stopCertificates();
  await stack.startCertificates();

  const after = await fetchText(stack, 'ca.pem');
  expect(after.status).toBe(200);
  expect(after.headers.get('x-ca-fingerprint')).toBe(caFingerprint);
  expect(after.text).toBe(caPem);
  expect(await readFile(join(pkiDir, 'ca.json'), 'utf8')).toBe(caJsonBefore);
  // openssl's own fingerprint of the CA before and after is the one the service reports.
  const afterFile = await put(temp.path, 'ca-after.pem', after.text);
  const fingerprintOf = async (file: string) =>
    (await openssl(['x509', '-noout', '-fingerprint', '-sha256', '-in', file])).stdout
      .trim()
      .replace(/^.*=/, '')
      .replace(/:/g, '')
      .toLowerCase();
  expect(await fingerprintOf(caFile)).toBe(caFingerprint);
  expect(await fingerprintOf(afterFile)).toBe(caFingerprint);
  // The log still records one CA.
  const created = await eventsOfType(stack, 'CertificateAuthorityCreated');
  expect(created.map((event) => event.data.fingerprint)).toEqual([caFingerprint]);
  // The restarted service signs CRLs that verify against the CA from before, with a larger number.
  const crlAfter = await fetchText(stack, 'crl.pem');
  const crlFile = await put(temp.path, 'crl-after-restart.pem', crlAfter.text);
  expect((await openssl(['crl', '-in', crlFile, '-CAfile', caFile, '-noout'])).stderr).toMatch(/verify OK/);
  expect(BigInt(crlAfter.headers.get('x-crl-number')!)).toBeGreaterThan(
    BigInt(crlBefore.headers.get('x-crl-number')!),
  );
}, 90_000);

test('renewal: the service asks, the running agent installs the new pair atomically, hooks and confirms', async () => {
  const renewal = await waitFor(
    'a renewal of the first certificate',
    async () => {
      agentAlive();
      return (await eventsOfType(stack, 'CertificateRenewed')).find(
        (event) => event.data.replaces === first.serial,
      );
    },
    { timeoutMs: 90_000, intervalMs: 250 },
  );
  renewed = renewal.data;
  expect(renewed).toMatchObject({ agentId: AGENT, names: [databaseName(AGENT)] });
  expect(renewed.publicKeyFingerprint).not.toBe(first.publicKeyFingerprint); // a new key pair
  // The service asked (through the agent's durable consumer); the agent did not decide it by itself.
  expect(
    agentLog().some(
      (line) =>
        line.msg === 'message received' &&
        line.topic === 'certificates.renew' &&
        line.subject === `agents.${AGENT}.in.certificates.renew`,
    ),
  ).toBe(true);
  expect(
    agentLog().some(
      (line) =>
        line.msg === 'requesting a certificate' &&
        line.replaces === first.serial &&
        line.why === 'the certificates service asked for a renewal',
    ),
  ).toBe(true);

  // Installed and confirmed; what it replaces is superseded.
  await waitForRow(stack, renewed.serial, (row) => row.status === 'installed', 60_000);
  expect(await waitForRow(stack, renewed.serial)).toMatchObject({
    replaces: first.serial,
    hook_status: 'succeeded',
  });
  expect(await waitForRow(stack, first.serial, (row) => row.status === 'superseded')).toMatchObject({
    superseded_by: renewed.serial,
  });

  // Same process, never restarted; its TLS endpoint switched to the new certificate on the same port.
  agentAlive();
  expect(agent.child.pid).toBe(agentPid);
  expect(agentLog().filter((line) => line.msg === 'agent identity ready')).toHaveLength(1);
  // (It serves the renewed certificate, or a later renewal if one came already.)
  const served = await waitFor('the probe to serve a renewed certificate', async () => {
    const serial = await probeSerial();
    return serial !== first.serial ? serial : undefined;
  });
  const renewals = (await eventsOfType(stack, 'CertificateRenewed')).map((event) => event.data.serial);
  expect(renewals).toContain(served);
  const renewedFile = await put(temp.path, 'renewed.crt', renewed.certificatePem);
  expect((await openssl(['verify', '-CAfile', caFile, renewedFile])).stdout.trim()).toMatch(/: OK$/);

  // The hook ran for the new pair while the previous one was still on disk (kept until confirmed), and
  // the file it was given already held the new certificate (switched in one rename).
  const hook = (await hookLines()).find((line) => line.serial === renewed.serial);
  expect(hook).toEqual({
    serial: renewed.serial,
    releases: [first.serial, renewed.serial].sort(),
    fileSerial: renewed.serial,
  });
  // Once confirmed, the previous release is removed (or, if a later renewal came already, the live one
  // is the only one left besides it).
  await waitFor('the previous release to be removed after the confirmation', async () =>
    (await readdir(join(certsDir, 'releases'))).includes(first.serial) ? undefined : true,
  );
  const live = await readlink(join(certsDir, 'live'));
  const liveSerial = live.split('/').pop()!;
  expect((await readdir(join(certsDir, 'releases'))).includes(liveSerial)).toBe(true);
  expect((await stat(join(certsDir, 'live', 'key.pem'))).mode & 0o777).toBe(0o600);
  await rememberLiveKey();
}, 180_000);

test('deregistration revokes the agent’s certificates, and openssl finds them in the CRL', async () => {
  await rememberLiveKey();
  const liveCertificate = await readFile(join(certsDir, 'live', 'cert.pem'), 'utf8');
  const liveSerial = inspectCertificate(liveCertificate).serial;
  const deregistered = await stack.request('DELETE', `agents/${AGENT}`, {
    token: stack.adminToken(),
    body: { reason: 'test: decommissioned' },
  });
  expect(deregistered.status).toBe(200);

  // Every certificate of the agent that was still valid is revoked (cessationOfOperation), by the service.
  const revoked = await waitFor(
    'the live certificate to be revoked',
    async () => {
      const events = await eventsOfType(stack, 'CertificateRevoked');
      return events.some((event) => event.data.serial === liveSerial) ? events : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  const mine = revoked.filter((event) => event.aggregate.id === AGENT);
  for (const event of mine) {
    expect(event.data.reason).toBe('cessationOfOperation');
    expect(event.actor).toEqual({ kind: 'system', id: 'certificates' });
  }
  // (Certificates already expired are not revoked: they are no longer valid anyway.)
  expect(mine.map((event) => event.data.serial)).toContain(liveSerial);
  await waitForRow(stack, liveSerial, (row) => row.status === 'revoked');
  // None of its certificates is left valid (one signed while the deregistration went through included).
  await waitFor('no valid certificate of the agent in the projection', async () => {
    const rows: Loose[] = await stack.db.dataSource.query(
      `SELECT serial FROM certificates WHERE agent_id = $1 AND not_after > now() AND status <> 'revoked'`,
      [AGENT],
    );
    return rows.length === 0;
  });

  // Another agent's certificate, which must stay valid.
  const other = await stack.enroll('life-b');
  const otherRequest = await keyAndCsr([databaseName('life-b')]);
  const otherIssued = await stack.request('POST', 'agents/life-b/certificates', {
    token: other.accessToken,
    body: { csr: otherRequest.csr },
  });
  expect(otherIssued.status).toBe(201);
  const otherSerial = (otherIssued.body.certificate as { serial: string }).serial;

  // The public CRL: signed by the CA (openssl crl -CAfile), lists the serials; verify -crl_check refuses
  // the agent's certificate and still accepts the other agent's.
  const crl = await fetchText(stack, 'crl.pem');
  const crlFile = await put(temp.path, 'crl.pem', crl.text);
  const text = await openssl(['crl', '-in', crlFile, '-CAfile', caFile, '-noout', '-text']);
  expect(text.stderr).toMatch(/verify OK/);
  for (const event of mine)
    expect(text.stdout.toUpperCase()).toContain(`SERIAL NUMBER: ${String(event.data.serial).toUpperCase()}`);
  expect(text.stdout).toMatch(/Cessation Of Operation/);
  expect(text.stdout.toUpperCase()).not.toContain(`SERIAL NUMBER: ${otherSerial.toUpperCase()}`);
  const liveFile = await put(temp.path, 'live.crt', liveCertificate);
  const refused = await openssl(['verify', '-crl_check', '-CAfile', caFile, '-CRLfile', crlFile, liveFile]);
  expect(refused.code).not.toBe(0);
  expect(refused.stdout + refused.stderr).toMatch(/certificate revoked/);
  const otherFile = await put(
    temp.path,
    'other.crt',
    (otherIssued.body.certificate as { certificatePem: string }).certificatePem,
  );
  const accepted = await openssl(['verify', '-crl_check', '-CAfile', caFile, '-CRLfile', crlFile, otherFile]);
  expect(accepted.stdout.trim()).toBe(`${otherFile}: OK`);

  // A deregistered agent gets no new certificate.
  const again = await stack.request('POST', `agents/${AGENT}/certificates`, {
    token: stack.adminToken(),
    body: { csr: (await keyAndCsr([databaseName(AGENT)])).csr },
  });
  expect(again).toMatchObject({ status: 409, body: { field: 'agentId' } });
  await agent.stop();
}, 120_000);

test('grep-proof: no private key in the event log, the projections or the logs after the whole run', async () => {
  // The agents' keys were real and are where they belong: on the agent's disk.
  expect(agentKeys.size).toBeGreaterThanOrEqual(2);
  for (const key of agentKeys) expect(key).toContain('-----BEGIN PRIVATE KEY-----');

  const jsm = await jetstreamManager(stack.service);
  const agentsStream: string[] = [];
  const lastAgents = (await jsm.streams.info(AGENTS_STREAM)).state.last_seq;
  for (let seq = 1; seq <= lastAgents; seq++) {
    const message = await jsm.streams.getMessage(AGENTS_STREAM, { seq }).catch(() => null);
    if (message) agentsStream.push(`${message.subject} ${new TextDecoder().decode(message.data)}`);
  }
  const log = await readWholeLog(stack);

  // Every table of the database, every row as JSON.
  const tables: { schema: string; name: string }[] = await stack.db.dataSource.query(
    `SELECT table_schema AS schema, table_name AS name FROM information_schema.tables
      WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`,
  );
  const dump: string[] = [];
  for (const table of tables) {
    const rows: { row: string }[] = await stack.db.dataSource.query(
      `SELECT row_to_json(t)::text AS row FROM "${table.schema}"."${table.name}" t`,
    );
    dump.push(...rows.map((row) => `${table.schema}.${table.name} ${row.row}`));
  }

  const searched: Record<string, string> = {
    'event log': log.raw.join('\n'),
    'agents stream': agentsStream.join('\n'),
    projections: dump.join('\n'),
    'service logs': capture.lines.join('\n'),
    'agent log': agent.output(),
  };
  // The search can find something: the run really went through issuance, renewal and revocation.
  expect(log.events.map((event) => event.type)).toEqual(
    expect.arrayContaining([
      'CertificateAuthorityCreated',
      'CertificateIssued',
      'CertificateRenewed',
      'CertificateInstalled',
      'CertificateSuperseded',
      'CertificateRevoked',
    ]),
  );
  expect(searched.projections).toContain('-----BEGIN CERTIFICATE-----');
  expect(capture.lines.length).toBeGreaterThan(10);
  expect(tables.map((table) => table.name)).toEqual(expect.arrayContaining(['certificates', 'agents']));

  for (const [where, text] of Object.entries(searched)) {
    expect({ where, marker: /PRIVATE KEY/i.test(text) }).toEqual({ where, marker: false });
    for (const key of agentKeys) {
      const base64 = decodePem(key)[0]!.der.toString('base64');
      expect({ where, keyContent: text.includes(base64.slice(64, 160)) }).toEqual({
        where,
        keyContent: false,
      });
    }
  }
});
