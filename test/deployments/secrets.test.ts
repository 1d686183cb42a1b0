/**
 * A secret's value reaches the app and nothing else: the app proves it has it (its SHA-256), and the value
 * is then searched for, as bytes, in every message of the event log and of the logs stream, a pg_dump of
 * the database, every API answer the test got, and everything each service and the agent printed. It is
 * where it must be only: the app's environment and the agent's 0600 cache of it. The app prints the
 * value raw, in base64 and URL-encoded; its log shows `[secret:SECRET]` instead. A rotated value is used
 * by the next deployment and the old version is forgotten by the front.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { LOGS_STREAM } from '#contracts';
import { DOMAIN } from '../e2e/stack.js';
import { waitFor } from '../harness/processes.js';
import { rawEventLog } from './helpers.js';
import {
  bodyThroughFront,
  createApp,
  deployAndWait,
  deploymentLogs,
  helloRepo,
  isRoot,
  logLine,
  startDeploymentRig,
  type DeploymentRig,
} from './agent-e2e.js';

const run = promisify(execFile);
if (!isRoot) console.log('secrets.test: skipped, the agent isolates apps by uid and needs root');
const describeRoot = isRoot ? describe : describe.skip;

let rig: DeploymentRig;
const hostname = `vault.apps.${DOMAIN}`;
const SECRET = randomBytes(30).toString('base64url'); // 40 characters
const ROTATED = randomBytes(30).toString('base64url');
const answers: string[] = [];

beforeAll(async () => {
  if (isRoot)
    rig = await startDeploymentRig('vault-a', '127.0.0.6', {
      uidBase: 62_500,
      portBase: 21_400,
      env: { CL_DEPLOY_SECRET_GC_MS: '300' },
    });
}, 180_000);
afterAll(async () => {
  await rig?.stop();
});

/** Every message of the LOGS stream, raw. */
async function rawLogs(): Promise<string> {
  const jsm = await jetstreamManager(rig.e2e.stack.service);
  const info = await jsm.streams.info(LOGS_STREAM);
  const parts: string[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const message = await jsm.streams.getMessage(LOGS_STREAM, { seq }).catch(() => null);
    if (message) parts.push(new TextDecoder().decode(message.data));
  }
  return parts.join('\n');
}

/** Where a value must never be, each place by name: the names of those that hold it. */
async function placesHolding(value: string): Promise<string[]> {
  const { stdout: dump } = await run('pg_dump', ['--no-owner', rig.e2e.stack.db.url], {
    maxBuffer: 256 * 1024 * 1024,
  });
  const places: Record<string, string> = {
    'the event log': await rawEventLog(rig.e2e.stack),
    'the logs stream': await rawLogs(),
    'the database': dump,
    'the API answers': answers.join('\n'),
  };
  for (const [name, started] of rig.e2e.stack.processes) places[`the output of ${name}`] = started.output();
  return Object.entries(places)
    .filter(([, text]) => text.includes(value))
    .map(([name]) => name);
}

describeRoot('a secret value', () => {
  test('reaches the app, its logs show it redacted, and it is nowhere else', async () => {
    const { e2e } = rig;
    const repo = await helloRepo('vault', 'vault v1');
    const app = await createApp(e2e, 'vault-a', 'vault', repo, {
      env: [
        { name: 'GREETING', value: 'hello' },
        { name: 'SECRET', value: SECRET, secret: true },
      ],
    });
    answers.push(JSON.stringify(app));
    const { status, view } = await deployAndWait(e2e, 'apps/vault/deployments');
    answers.push(JSON.stringify(view));
    expect([status, view.status]).toEqual([200, 'succeeded']);
    const digest = await bodyThroughFront(e2e, hostname, '/secret-digest');
    expect(digest.body).toBe(createHash('sha256').update(SECRET).digest('hex'));

    await logLine(e2e, view.deploymentId, /^secret url /);
    const lines = await deploymentLogs(e2e, view.deploymentId);
    answers.push(lines.join('\n'));
    expect(lines.filter((line) => line.startsWith('secret '))).toEqual([
      'secret raw [secret:SECRET]',
      'secret base64 [secret:SECRET]',
      'secret url [secret:SECRET]',
    ]);
    answers.push(JSON.stringify((await e2e.request('GET', 'apps/vault')).body));

    expect(await placesHolding(SECRET)).toEqual([]);

    // Where it must be: the app's environment, and the agent's cache of it (0600, root's, for restarts).
    const env = JSON.parse((await bodyThroughFront(e2e, hostname, '/env')).body) as { pid: number };
    expect((await readFile(`/proc/${env.pid}/environ`, 'utf8')).split('\0')).toContain(`SECRET=${SECRET}`);
    const cacheDir = join(rig.agentDir, 'state', 'deployments', 'env');
    const [cache] = await readdir(cacheDir);
    const cached = await stat(join(cacheDir, cache!));
    expect([cached.uid, cached.mode & 0o777]).toEqual([0, 0o600]);
    expect(await readFile(join(cacheDir, cache!), 'utf8')).toContain(SECRET);
  });

  test('a rotated value is what the next deployment gets; the old version is forgotten', async () => {
    const { e2e } = rig;
    const put = await e2e.request('PUT', 'apps/vault/secrets/SECRET', { body: { value: ROTATED } });
    answers.push(JSON.stringify(put.body));
    expect([put.status, put.body.version]).toEqual([200, 2]);
    const { view } = await deployAndWait(e2e, 'apps/vault/deployments');
    answers.push(JSON.stringify(view));
    expect(view.status).toBe('succeeded');
    const digest = await bodyThroughFront(e2e, hostname, '/secret-digest');
    expect(digest.body).toBe(createHash('sha256').update(ROTATED).digest('hex'));
    await waitFor(
      'version 1 to be forgotten',
      async () => {
        const rows: { version: number }[] = await e2e.stack.db.dataSource.query(
          `SELECT version FROM app_secret_values WHERE app_name = 'vault' AND name = 'SECRET'`,
        );
        return rows.map((row) => row.version).join() === '2';
      },
      { timeoutMs: 15_000 },
    );
    expect(await placesHolding(ROTATED)).toEqual([]);
    expect(await placesHolding(SECRET)).toEqual([]);
  });
});
