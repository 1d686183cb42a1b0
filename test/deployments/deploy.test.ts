/**
 * A deployment for real, end to end: an admin creates an app from a git repository and deploys it; the
 * agent process (as root, isolating the app in its own uid) fetches, builds, starts and health-checks the
 * release, points the app's route at it, the front verifies it through HAProxy with the real host name, and
 * the app answers there. Then a second release replaces the first, a bad ref fails at `fetched` with git's
 * reason, and `git daemon` on loopback serves as a source too.
 */
import { execFile } from 'node:child_process';
import { chmod, cp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import type { DeploymentView } from '#contracts';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DOMAIN } from '../e2e/stack.js';
import { startGitDaemon, startSshGitServer, type TestRepo } from '../harness/git.js';
import { makeTempDir, waitFor } from '../harness/processes.js';
import {
  appView,
  bodyThroughFront,
  createApp,
  deployAndWait,
  deploymentLogs,
  helloRepo,
  HELLO_FIXTURE,
  isRoot,
  logLine,
  procStatusUid,
  startDeploymentRig,
  type DeploymentRig,
} from './agent-e2e.js';

const run = promisify(execFile);
if (!isRoot) console.log('deploy.test: skipped, the agent isolates apps by uid and needs root');
const describeRoot = isRoot ? describe : describe.skip;

let rig: DeploymentRig;
/** The hello app's repository: each test commits the next release to it. */
let repo: TestRepo;
const UID_BASE = 62_100;
const SSH_UID_BASE = 62_700;

beforeAll(async () => {
  if (isRoot)
    rig = await startDeploymentRig('deploy-a', '127.0.0.2', { uidBase: UID_BASE, portBase: 21_000 });
}, 180_000);
afterAll(async () => {
  await rig?.stop();
  // The ssh test's agent gave its apps passwd entries; the rig's stop ended the apps that used them.
  if (isRoot)
    for (let uid = SSH_UID_BASE; uid <= SSH_UID_BASE + 9; uid++)
      await run('sh', [
        '-c',
        `if getent passwd cl-${uid} >/dev/null; then userdel --force cl-${uid}; fi; if getent group cl-${uid} >/dev/null; then groupdel cl-${uid}; fi`,
      ]);
});

describeRoot('an app from a git repository', () => {
  const hostname = `hello.apps.${DOMAIN}`;
  let firstPid = 0;

  test('deploys, serves through the front by its host name, and runs as its own uid', async () => {
    const { e2e } = rig;
    repo = await helloRepo('hello', 'hello v1');
    const app = await createApp(e2e, 'deploy-a', 'hello', repo);
    expect(app.hostname).toBe(hostname);

    const { status, view } = await deployAndWait(e2e, 'apps/hello/deployments');
    expect([status, view.status, view.failure]).toEqual([200, 'succeeded', null]);
    expect(view.phases.map((phase) => [phase.phase, phase.state])).toEqual([
      ['requested', 'done'],
      ['claimed', 'done'],
      ['fetched', 'done'],
      ['built', 'done'],
      ['started', 'done'],
      ['healthy', 'done'],
      ['switched', 'done'],
      ['verified', 'done'],
      ['drained', 'done'],
    ]);
    expect(view.commit).toBe(await repo.git('rev-parse', 'HEAD'));
    expect(await bodyThroughFront(e2e, hostname)).toEqual({ status: 200, body: 'hello v1' });

    // The deployment's log has the agent's steps and the app's own first line.
    await logLine(e2e, view.deploymentId, /^hello listening on 127\.0\.0\.2:\d+$/);
    const lines = await deploymentLogs(e2e, view.deploymentId);
    expect(lines.some((line) => line.startsWith('fetching file://'))).toBe(true);
    expect(lines.some((line) => line.startsWith('health check passed'))).toBe(true);

    // The process runs as the app's uid, in a directory no other user can enter.
    const identity = JSON.parse((await bodyThroughFront(e2e, hostname, '/env')).body) as {
      pid: number;
      uid: number;
    };
    firstPid = identity.pid;
    expect(identity.uid).toBeGreaterThanOrEqual(UID_BASE);
    expect(identity.uid).toBeLessThan(UID_BASE + 100);
    expect(await procStatusUid(identity.pid)).toBe(identity.uid);
    const appDir = join(rig.agentDir, 'apps', 'hello');
    const top = await stat(appDir);
    expect([top.uid, top.gid, top.mode & 0o777]).toEqual([0, identity.uid, 0o710]);
    const home = await stat(join(appDir, 'home'));
    expect([home.uid, home.mode & 0o777]).toEqual([identity.uid, 0o700]);
    // The agent's keys are out of the app's reach.
    const stolen = await run('/usr/bin/setpriv', [
      `--reuid=${identity.uid}`,
      `--regid=${identity.uid}`,
      '--clear-groups',
      'cat',
      join(rig.agentDir, 'state', 'identity.json'),
    ]).then(
      () => 'read',
      (error: { stderr?: string }) => error.stderr ?? '',
    );
    expect(stolen).toMatch(/Permission denied/);
    expect(rig.agent.process.output()).not.toContain('"level":"error"');
  });

  test('a second release replaces the first without touching the route, and the first is stopped', async () => {
    const { e2e } = rig;
    const before = await appView(e2e, 'hello');
    await repo.commit({ 'body.txt': 'hello v2\n' }, 'v2');
    const { status, view } = await deployAndWait(e2e, 'apps/hello/deployments');
    expect([status, view.status]).toEqual([200, 'succeeded']);
    expect(await bodyThroughFront(e2e, hostname)).toEqual({ status: 200, body: 'hello v2' });
    const after = await appView(e2e, 'hello');
    expect(after.routeId).toBe(before.routeId);
    expect(after.current?.number).toBe(2);
    expect(after.keptReleases.map((release) => release.number)).toEqual([2, 1]);
    await waitFor('the first release to be stopped', async () => (await procStatusUid(firstPid)) === null, {
      timeoutMs: 15_000,
    });
  });

  test('a ref that does not exist fails at fetched with git’s reason; the release serving stays', async () => {
    const { e2e } = rig;
    const { status, view } = await deployAndWait(e2e, 'apps/hello/deployments', { ref: 'no-such-branch' });
    expect([status, view.status, view.failure?.phase]).toEqual([502, 'failed', 'fetched']);
    expect(view.failure?.reason).toMatch(/git fetch failed/);
    expect(view.failure?.lastLines.join('\n')).toMatch(/no-such-branch/);
    expect(await bodyThroughFront(e2e, hostname)).toEqual({ status: 200, body: 'hello v2' });
  });
});

describeRoot('rollback', () => {
  const hostname = `hello.apps.${DOMAIN}`;

  test('starts a kept release again without fetching or building it', async () => {
    const { e2e } = rig;
    const first = (await e2e.request('GET', 'apps/hello/deployments?status=succeeded&limit=10'))
      .body as unknown as {
      deployments: DeploymentView[];
    };
    const release1 = first.deployments.find((deployment) => deployment.number === 1)!;
    const { status, view } = await deployAndWait(e2e, 'apps/hello/rollback', { release: 1 });
    expect([status, view.status, view.kind]).toEqual([200, 'succeeded', 'rollback']);
    expect(view.phases.filter((phase) => phase.state === 'skipped').map((phase) => phase.phase)).toEqual([
      'fetched',
      'built',
    ]);
    expect(await bodyThroughFront(e2e, hostname)).toEqual({ status: 200, body: 'hello v1' });
    const app = await appView(e2e, 'hello');
    expect(app.current?.releaseId).toBe(release1.deploymentId);
    const lines = await deploymentLogs(e2e, view.deploymentId);
    expect(lines.some((line) => /^(fetching|running) /.test(line))).toBe(false);
    expect(lines.some((line) => line.startsWith('starting kept release 1 again'))).toBe(true);
  });

  test('a release no longer kept is refused, naming the release', async () => {
    const { e2e } = rig;
    const patched = await e2e.request('PATCH', 'apps/hello', { body: { releasesKept: 2 } });
    expect(patched.status).toBe(200);
    await repo.commit({ 'body.txt': 'hello v3\n' }, 'v3');
    expect((await deployAndWait(e2e, 'apps/hello/deployments')).view.status).toBe('succeeded');
    const app = await appView(e2e, 'hello');
    // The serving release first, then the newest: release 1 (which served before) is no longer kept.
    expect(app.keptReleases.map((release) => release.number)).toEqual([5, 2]);
    const refused = await e2e.request('POST', 'apps/hello/rollback', { body: { release: 1 } });
    expect([refused.status, refused.body.field]).toEqual([409, 'release']);
    // The agent removes what is not kept: only the kept releases' directories are left.
    const releases = async () =>
      (await readdir(join(rig.agentDir, 'apps', 'hello', 'releases')))
        .map((name) => name.split('-')[0])
        .sort()
        .join(',');
    await waitFor('the releases not kept to be removed', async () => (await releases()) === '2,5', {
      timeoutMs: 15_000,
    }).catch(async (error: unknown) => {
      throw new Error(`${String(error)}: ${await releases()}`);
    });
  });
});

describeRoot('a kept release that changed on disk', () => {
  test('is refused at started, and the serving release stays', async () => {
    const { e2e } = rig;
    const dir = join(rig.agentDir, 'apps', 'hello', 'releases');
    const release2 = (await readdir(dir)).find((name) => name.startsWith('2-'))!;
    await chmod(join(dir, release2, 'body.txt'), 0o644);
    await writeFile(join(dir, release2, 'body.txt'), 'tampered\n');
    const { status, view } = await deployAndWait(e2e, 'apps/hello/rollback', { release: 2 });
    expect([status, view.failure?.phase]).toEqual([502, 'started']);
    expect(view.failure?.reason).toMatch(/release 2 changed on disk/);
    expect(await bodyThroughFront(e2e, `hello.apps.${DOMAIN}`)).toEqual({ status: 200, body: 'hello v3' });
  });
});

describeRoot('an app from git daemon on loopback', () => {
  test('deploys a tag and then a commit id', async () => {
    const { e2e } = rig;
    const repo = await helloRepo('daemon', 'daemon v1');
    await repo.git('tag', 'v1');
    const v2 = await repo.commit({ 'body.txt': 'daemon v2\n' }, 'v2');
    const base = join(repo.path, '..');
    const daemon = await startGitDaemon(base);
    try {
      const name = repo.path.slice(base.length + 1);
      await createApp(e2e, 'deploy-a', 'daemon', repo, {
        source: { type: 'git', url: daemon.url(name), ref: 'main' },
      });
      const tagged = await deployAndWait(e2e, 'apps/daemon/deployments', { ref: 'v1' });
      expect([tagged.status, tagged.view.status]).toEqual([200, 'succeeded']);
      expect(await bodyThroughFront(e2e, `daemon.apps.${DOMAIN}`)).toEqual({
        status: 200,
        body: 'daemon v1',
      });
      const pinned = await deployAndWait(e2e, 'apps/daemon/deployments', { ref: v2 });
      expect([pinned.status, pinned.view.commit]).toEqual([200, v2]);
      expect(await bodyThroughFront(e2e, `daemon.apps.${DOMAIN}`)).toEqual({
        status: 200,
        body: 'daemon v2',
      });
    } finally {
      await daemon.process.stop();
    }
  });
});

describeRoot('an app from git over ssh, with system users for the apps', () => {
  test('is fetched as the app’s own named user with the key from its secret and the pinned host key', async () => {
    const { e2e } = rig;
    // Another agent on the same front, this one giving its apps passwd entries (ssh needs a name).
    await e2e.startAgent('ssh-a', '127.0.0.8', {
      deployments: {
        uidRange: [SSH_UID_BASE, SSH_UID_BASE + 9],
        portRange: [21_600, 21_699],
        systemUsers: 'auto',
      },
      logLevel: 'info',
    });
    const dir = await makeTempDir('sshd');
    const server = await startSshGitServer(join(dir.path, 'sshd'));
    try {
      const repo = await helloRepo('tunnel', 'over ssh');
      const created = await e2e.request('POST', 'apps', {
        body: {
          name: 'tunnel',
          agentId: 'ssh-a',
          source: {
            type: 'git',
            url: server.url(repo.path),
            ref: 'main',
            credentials: { kind: 'ssh-key', secret: 'DEPLOY_KEY', knownHosts: server.knownHosts },
          },
          env: [{ name: 'DEPLOY_KEY', value: server.privateKey, secret: true }],
          healthCheck: { path: '/healthz', timeoutSeconds: 20 },
        },
      });
      expect(created.status).toBe(201);
      const { status, view } = await deployAndWait(e2e, 'apps/tunnel/deployments');
      expect([status, view.status, view.failure]).toEqual([200, 'succeeded', null]);
      expect(view.commit).toBe(await repo.git('rev-parse', 'HEAD'));
      expect(await bodyThroughFront(e2e, `tunnel.apps.${DOMAIN}`)).toEqual({ status: 200, body: 'over ssh' });

      // The app's uid has a name, its own group, no shell and the app's home.
      const identity = JSON.parse((await bodyThroughFront(e2e, `tunnel.apps.${DOMAIN}`, '/env')).body) as {
        pid: number;
        uid: number;
      };
      const { stdout } = await run('getent', ['passwd', String(identity.uid)]);
      const [name, , passwdUid, passwdGid, comment, home, shell] = stdout.trim().split(':');
      expect([name, passwdUid, passwdGid, comment, shell]).toEqual([
        `cl-${identity.uid}`,
        String(identity.uid),
        String(identity.uid),
        'CloudLunacy app tunnel',
        '/usr/sbin/nologin',
      ]);
      expect(home).toMatch(/\/tunnel\/home$/);
      // The key was a file in the app's tmp for the fetch only; the app's environment has none of it.
      const environ = await readFile(`/proc/${identity.pid}/environ`, 'utf8');
      expect(environ).not.toContain('DEPLOY_KEY');
      expect(environ).not.toContain('PRIVATE KEY');
      expect(await readdir(join(rig.e2e.dir.path, 'agent-ssh-a', 'apps', 'tunnel', 'tmp'))).toEqual([]);

      // Another server on the pinned name's port but with a key of its own is refused at `fetched`.
      const impostor = await startSshGitServer(join(dir.path, 'impostor'));
      try {
        const pinnedElsewhere = server.knownHosts.replace(/:\d+\]|\]:\d+/, `]:${impostor.port}`);
        const changed = await e2e.request('PATCH', 'apps/tunnel', {
          body: {
            source: {
              type: 'git',
              url: impostor.url(repo.path),
              ref: 'main',
              credentials: { kind: 'ssh-key', secret: 'DEPLOY_KEY', knownHosts: pinnedElsewhere },
            },
          },
        });
        expect(changed.status).toBe(200);
        const refused = await deployAndWait(e2e, 'apps/tunnel/deployments');
        expect([refused.view.status, refused.view.failure?.phase]).toEqual(['failed', 'fetched']);
        expect(refused.view.failure?.lastLines.join('\n')).toMatch(/Host key verification failed/);
        expect(await bodyThroughFront(e2e, `tunnel.apps.${DOMAIN}`)).toEqual({
          status: 200,
          body: 'over ssh',
        });
      } finally {
        await impostor.stop();
      }
    } finally {
      await server.stop();
      await dir.remove();
    }
  });
});

describeRoot('an app from an uploaded tarball', () => {
  test('is downloaded by its agent, checked, unpacked as the app, and served', async () => {
    const { e2e } = rig;
    const dir = await makeTempDir('upload-src');
    try {
      await cp(HELLO_FIXTURE, dir.path, { recursive: true });
      await writeFile(join(dir.path, 'body.txt'), 'uploaded v1\n');
      const { stdout } = await run('tar', ['-czf', '-', '-C', dir.path, '.'], { encoding: 'buffer' });
      await createApp(e2e, 'deploy-a', 'parcel', null);
      const response = await fetch(
        `${e2e.stack.baseUrl}/api/v1/apps/parcel/deployments?wait=succeeded&timeout=120000`,
        {
          method: 'POST',
          headers: { authorization: `Bearer ${e2e.admin}`, 'content-type': 'application/gzip' },
          body: stdout,
        },
      );
      const view = (await response.json()) as DeploymentView;
      expect([response.status, view.status, view.commit]).toEqual([200, 'succeeded', null]);
      expect(await bodyThroughFront(e2e, `parcel.apps.${DOMAIN}`)).toEqual({
        status: 200,
        body: 'uploaded v1',
      });
      const lines = await deploymentLogs(e2e, view.deploymentId);
      expect(lines.some((line) => /^unpacked \d+ entries/.test(line))).toBe(true);
    } finally {
      await dir.remove();
    }
  });
});
