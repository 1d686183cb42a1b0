import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { jetstreamManager } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { DEPLOYMENT_UPLOADS_BUCKET } from '#auth';
import { deploymentCommands } from '#contracts';
import { ApiError } from '../../apps/agent/src/api-client.js';
import { downloadUpload, UploadFailed } from '../../apps/agent/src/deployments/upload.js';
import { repoRoot } from '../harness/apps.js';
import type { AgentsStack, EnrolledAgent } from '../harness/stack.js';
import { makeTempDir } from '../harness/processes.js';
import { AgentProtocol, REPOS, startDeploymentsStack } from './helpers.js';

/**
 * Deploying an uploaded tarball over HTTP, against the real stack and broker permissions: the API stores
 * it in the object store while hashing and counting, the deployment names it by digest and size, and
 * only its agent (or an admin) downloads it. Refused uploads store nothing and append nothing.
 */
const MAX_BYTES = 256 * 1024;
const STORE_MAX_BYTES = 1024 * 1024;
let stack: AgentsStack;
let admin: string;
let alpha: EnrolledAgent;
let bravo: EnrolledAgent;
let tarball: Buffer;
let temp: { path: string; remove(): Promise<void> };

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

beforeAll(async () => {
  stack = await startDeploymentsStack({
    env: {
      CL_DEPLOY_UPLOAD_MAX_BYTES: String(MAX_BYTES),
      CL_DEPLOY_UPLOAD_STORE_MAX_BYTES: String(STORE_MAX_BYTES),
    },
  });
  admin = stack.adminToken('alice');
  alpha = await stack.enroll('alpha', {}, '198.51.100.40');
  bravo = await stack.enroll('bravo', {}, '198.51.100.41');
  temp = await makeTempDir('upload');
  const source = join(temp.path, 'source');
  execFileSync('mkdir', ['-p', join(source, 'public')]);
  await writeFile(join(source, 'server.js'), 'console.log("from an upload")\n');
  await writeFile(join(source, 'public', 'index.html'), '<p>hi</p>\n');
  // Past one object store chunk (128 KiB): the download is read chunk by chunk.
  await writeFile(join(source, 'public', 'blob.bin'), randomBytes(200 * 1024));
  tarball = execFileSync('tar', ['-czf', '-', '-C', source, '.']);
  for (const [name, agentId, sourceSpec] of [
    ['site', 'alpha', { type: 'upload' }],
    ['repo-site', 'alpha', { type: 'git', url: `file://${REPOS}/repo-site` }],
  ] as const) {
    const created = await stack.request('POST', 'apps', {
      token: admin,
      body: { name, agentId, source: sourceSpec },
    });
    expect(created.status).toBe(201);
  }
});
afterAll(async () => {
  await stack?.stop();
  await temp?.remove();
});

interface Sent {
  status: number;
  headers: import('node:http').IncomingHttpHeaders;
  body: Buffer;
  json: Record<string, unknown>;
}

/** A raw HTTP exchange: binary bodies, a chosen Content-Type, chunked when asked (no Content-Length). */
function send(
  method: string,
  path: string,
  options: { token?: string; contentType?: string; body?: Buffer; chunked?: boolean; key?: string } = {},
): Promise<Sent> {
  const url = new URL(`${stack.baseUrl}/api/v1/${path}`);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      url,
      {
        method,
        headers: {
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          ...(options.contentType ? { 'content-type': options.contentType } : {}),
          ...(options.key ? { 'idempotency-key': options.key } : {}),
          ...(options.body && !options.chunked ? { 'content-length': String(options.body.length) } : {}),
        },
        timeout: 30_000,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const body = Buffer.concat(chunks);
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
          } catch {
            // A tarball.
          }
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body, json });
        });
        response.on('error', reject);
      },
    );
    outgoing.on('timeout', () => outgoing.destroy(new Error(`${method} ${path}: no answer`)));
    outgoing.on('error', reject);
    // Written before the end: Node would otherwise set a Content-Length of its own.
    if (options.chunked) outgoing.write(options.body);
    outgoing.end(options.chunked ? undefined : options.body);
  });
}

/** What the uploads bucket holds (its stream's messages: chunks and records). */
async function storedMessages(): Promise<number> {
  const jsm = await jetstreamManager(stack.service);
  return (await jsm.streams.info(`OBJ_${DEPLOYMENT_UPLOADS_BUCKET}`)).state.messages;
}

/** Nothing appended and nothing stored by what `act` does. */
async function changesNothing(act: () => Promise<void>): Promise<void> {
  const [events, stored] = [await stack.lastEventSequence(), await storedMessages()];
  await act();
  expect([await stack.lastEventSequence(), await storedMessages()]).toEqual([events, stored]);
}

let deploymentId: string;
let upload: { uploadId: string; sha256: string; bytes: number };

describe('deploying an upload', () => {
  test('a tarball is stored and deployed: 202 with the upload by digest and size; a retry is the same', async () => {
    const key = randomUUID();
    const accepted = await send('POST', 'apps/site/deployments', {
      token: admin,
      contentType: 'application/gzip',
      body: tarball,
      key,
    });
    expect(accepted.status).toBe(202);
    deploymentId = accepted.json.deploymentId as string;
    upload = accepted.json.upload as typeof upload;
    expect(accepted.headers.location).toBe(`/api/v1/deployments/${deploymentId}`);
    expect(accepted.json).toMatchObject({ appName: 'site', agentId: 'alpha', status: 'requested' });
    expect(upload).toEqual({ uploadId: expect.any(String), sha256: sha256(tarball), bytes: tarball.length });
    expect(tarball.length).toBeGreaterThan(128 * 1024);
    // The same Idempotency-Key names the same deployment, of the first upload.
    const again = await send('POST', 'apps/site/deployments', {
      token: admin,
      contentType: 'application/x-gzip',
      body: tarball,
      key,
    });
    expect([again.status, again.json.deploymentId, again.json.upload]).toEqual([202, deploymentId, upload]);
  });

  test('the source goes to the deployment agent (and an admin) only, with its SHA-256', async () => {
    const own = await send('GET', `deployments/${deploymentId}/source`, { token: alpha.accessToken });
    expect([own.status, own.headers['x-content-sha256'], sha256(own.body)]).toEqual([
      200,
      upload.sha256,
      upload.sha256,
    ]);
    expect((await send('GET', `deployments/${deploymentId}/source`, { token: admin })).status).toBe(200);
    const foreign = await send('GET', `deployments/${deploymentId}/source`, { token: bravo.accessToken });
    const unknown = await send('GET', `deployments/${randomUUID()}/source`, { token: bravo.accessToken });
    expect([foreign.status, foreign.json.error, foreign.json.field]).toEqual([
      403,
      'forbidden',
      'deploymentId',
    ]);
    expect([unknown.status, unknown.json.error, unknown.json.field]).toEqual([
      403,
      'forbidden',
      'deploymentId',
    ]);
    expect(foreign.body.includes(tarball.subarray(0, 64))).toBe(false);
  });

  test("the agent's downloadUpload gets the bytes, checked; another agent's token and a wrong digest fail", async () => {
    const file = join(temp.path, 'download.tar.gz');
    const options = { apiUrl: stack.baseUrl, deploymentId, upload, file };
    expect(await downloadUpload({ ...options, accessToken: alpha.accessToken })).toEqual({
      bytes: upload.bytes,
      sha256: upload.sha256,
    });
    expect(sha256(await readFile(file))).toBe(upload.sha256);
    const other = join(temp.path, 'other.tar.gz');
    const refused = await downloadUpload({ ...options, file: other, accessToken: bravo.accessToken }).catch(
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(ApiError);
    expect((refused as ApiError).status).toBe(403);
    const wrong = await downloadUpload({
      ...options,
      file: other,
      accessToken: alpha.accessToken,
      upload: { ...upload, sha256: 'ab'.repeat(32) },
    }).catch((error: unknown) => error);
    expect(wrong).toBeInstanceOf(UploadFailed);
    // A failed download leaves no file behind.
    await expect(readFile(other)).rejects.toThrow('ENOENT');
  });

  test('a deployment of git has no source to download', async () => {
    const git = await send('POST', 'apps/repo-site/deployments', {
      token: admin,
      contentType: 'application/json',
      body: Buffer.from('{}'),
    });
    expect(git.status).toBe(202);
    const source = await send('GET', `deployments/${git.json.deploymentId as string}/source`, {
      token: admin,
    });
    expect([source.status, source.json.field]).toEqual([404, 'deploymentId']);
  });
});

describe('refused uploads store nothing and append nothing', () => {
  test('past CL_DEPLOY_UPLOAD_MAX_BYTES: 413', async () => {
    await changesNothing(async () => {
      const big = gzipSync(randomBytes(MAX_BYTES + 1024), { level: 0 });
      const answer = await send('POST', 'apps/site/deployments', {
        token: admin,
        contentType: 'application/gzip',
        body: big,
      });
      expect([answer.status, answer.json.error, answer.json.field]).toEqual([413, 'too_large', '(body)']);
      expect(String(answer.json.message)).toContain(`at most ${MAX_BYTES}`);
    });
  });

  test('another content type, or a body that is not gzip: 415', async () => {
    await changesNothing(async () => {
      const text = await send('POST', 'apps/site/deployments', {
        token: admin,
        contentType: 'text/plain',
        body: tarball,
      });
      expect([text.status, text.json.error, text.json.field]).toEqual([415, 'unsupported', 'Content-Type']);
      const notGzip = await send('POST', 'apps/site/deployments', {
        token: admin,
        contentType: 'application/octet-stream',
        body: Buffer.from('plain text, not a tarball'),
      });
      expect([notGzip.status, notGzip.json.field]).toEqual([415, 'Content-Type']);
    });
  });

  test('no Content-Length (chunked): 411, the size is checked first', async () => {
    await changesNothing(async () => {
      const chunked = await send('POST', 'apps/site/deployments', {
        token: admin,
        contentType: 'application/gzip',
        body: tarball,
        chunked: true,
      });
      expect([chunked.status, chunked.json.error, chunked.json.field]).toEqual([
        411,
        'length_required',
        'Content-Length',
      ]);
    });
  });

  test("a tarball for a git app, JSON for an upload app, an uploadId, another agent's app: refused", async () => {
    await changesNothing(async () => {
      const toGit = await send('POST', 'apps/repo-site/deployments', {
        token: admin,
        contentType: 'application/gzip',
        body: tarball,
      });
      expect([toGit.status, toGit.json.field]).toEqual([400, 'Content-Type']);
      const json = await stack.request('POST', 'apps/site/deployments', { token: admin, body: {} });
      expect([json.status, json.body.field]).toEqual([400, 'Content-Type']);
      const named = await stack.request('POST', 'apps/site/deployments', {
        token: admin,
        body: { uploadId: randomUUID() },
      });
      expect([named.status, named.body.field]).toEqual([400, 'uploadId']);
      const foreign = await send('POST', 'apps/site/deployments', {
        token: bravo.accessToken,
        contentType: 'application/gzip',
        body: tarball,
      });
      expect(foreign.status).toBe(403);
    });
  });

  test('the deployments service refuses an upload that is not stored as named', async () => {
    const ask = async (forged: { uploadId: string; sha256: string; bytes: number }) => {
      const reply = await stack.service.request(
        deploymentCommands.request,
        JSON.stringify({
          pattern: deploymentCommands.request,
          id: randomUUID(),
          data: {
            commandId: randomUUID(),
            actor: { kind: 'admin', id: 'alice' },
            correlationId: randomUUID(),
            payload: { appName: 'site', request: {}, upload: forged },
          },
        }),
        { timeout: 10_000 },
      );
      return reply.json<{ response: { ok: boolean; error?: { field?: string; message: string } } }>()
        .response;
    };
    await changesNothing(async () => {
      const unknown = await ask({ uploadId: randomUUID(), sha256: upload.sha256, bytes: upload.bytes });
      expect([unknown.ok, unknown.error?.field]).toEqual([false, 'uploadId']);
      expect(unknown.error?.message).toContain('no upload');
      const resized = await ask({ ...upload, bytes: upload.bytes + 1 });
      const rehashed = await ask({ ...upload, sha256: 'cd'.repeat(32) });
      expect([resized.ok, resized.error?.field, rehashed.ok, rehashed.error?.field]).toEqual([
        false,
        'uploadId',
        false,
        'uploadId',
      ]);
    });
  });
});

describe('the CLI', () => {
  /** The built CLI (`node dist/apps/cli/src/main.js`) against the stack, as an admin. */
  const cli = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [join(repoRoot, 'dist/apps/cli/src/main.js'), ...args], {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? '', CL_API_URL: stack.baseUrl, CL_ADMIN_TOKEN: admin },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });

  test('apps create --upload, then deployments create --upload <file> [--wait]', async () => {
    const created = await cli(['apps', 'create', 'cli-site', '--agent', 'alpha', '--upload', '--json']);
    expect([
      created.code,
      (JSON.parse(created.stdout) as { config: { source: unknown } }).config.source,
    ]).toEqual([0, { type: 'upload' }]);
    const file = join(temp.path, 'cli.tar.gz');
    await writeFile(file, tarball);
    const deployed = await cli(['deployments', 'create', 'cli-site', '--upload', file, '--json']);
    expect(deployed.code).toBe(0);
    expect((JSON.parse(deployed.stdout) as { upload: unknown }).upload).toEqual({
      uploadId: expect.any(String),
      sha256: sha256(tarball),
      bytes: tarball.length,
    });
    // Followed by its id after the one upload: nobody claims it, so it stands where it is at the timeout.
    const stored = await storedMessages();
    const waited = await cli([
      'deployments',
      'create',
      'cli-site',
      '--upload',
      file,
      '--wait',
      '--timeout',
      '5',
    ]);
    expect([waited.code, waited.stdout]).toEqual([1, expect.stringContaining('still requested')]);
    expect(await storedMessages()).toBe(stored + 3); // two chunks and the record: one upload
    const both = await cli(['deployments', 'create', 'cli-site', '--upload', file, '--ref', 'main']);
    expect([both.code, both.stderr]).toEqual([2, expect.stringContaining('--ref and --upload')]);
  });
});

/** The uploads the bucket holds (records, not chunks). */
async function uploadsStored(): Promise<number> {
  return (await (await new Objm(stack.service).open(DEPLOYMENT_UPLOADS_BUCKET)).list()).length;
}

describe('the ends of the store', () => {
  test('a body cut short stores no upload and appends nothing', async () => {
    const [events, uploads] = [await stack.lastEventSequence(), await uploadsStored()];
    const url = new URL(`${stack.baseUrl}/api/v1/apps/site/deployments`);
    await new Promise<void>((resolve) => {
      const outgoing = httpRequest(url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${admin}`,
          'content-type': 'application/gzip',
          'content-length': String(200_000),
        },
      });
      outgoing.on('error', () => resolve());
      outgoing.write(gzipSync(randomBytes(150_000), { level: 0 }), () => {
        setTimeout(() => {
          outgoing.destroy();
          resolve();
        }, 300);
      });
    });
    // The API's answer goes nowhere: give it the time to fail the store, then look.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect([await stack.lastEventSequence(), await uploadsStored()]).toEqual([events, uploads]);
  });

  test('past CL_DEPLOY_UPLOAD_STORE_MAX_BYTES a new upload is 503, stored and appended nothing', async () => {
    let refused: Sent | undefined;
    for (let i = 0; i < 6 && !refused; i++) {
      const [events, stored] = [await stack.lastEventSequence(), await storedMessages()];
      const answer = await send('POST', 'apps/site/deployments', {
        token: admin,
        contentType: 'application/gzip',
        body: gzipSync(randomBytes(MAX_BYTES - 1024), { level: 0 }),
      });
      if (answer.status === 202) continue;
      refused = answer;
      expect([await stack.lastEventSequence(), await storedMessages()]).toEqual([events, stored]);
    }
    expect([
      refused?.status,
      refused?.json.error,
      refused?.headers['retry-after'],
      refused?.json.message,
    ]).toEqual([503, 'unavailable', '2', expect.stringContaining('the upload store is full')]);
  });
});

// Last: a claim that nobody renews is abandoned by the supervisor, which appends.
describe('the claim', () => {
  test('the agent that claims the deployment is told which upload, by digest and size', async () => {
    const connection = await stack.connectAsAgent(alpha);
    try {
      const claimed = (await new AgentProtocol('alpha', connection).claim(deploymentId)) as unknown as {
        upload: unknown;
      };
      expect(claimed.upload).toEqual(upload);
    } finally {
      await connection.close();
    }
  });
});
