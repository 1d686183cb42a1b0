import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Artifact, Instance } from './runtime.js';
import { DeploymentState, type InflightEntry } from './state.js';

const RELEASE = '0b9c7a3e-5a51-4f7e-9d8e-2c1b4a6f8e01';
const DEPLOYMENT = '6f1d2c3b-4a5e-4f60-8b7a-9c8d7e6f5a41';
const OTHER_DEPLOYMENT = '7a2e3d4c-5b6f-4071-9c8b-0d9e8f7a6b52';

const artifact = (index: number) => ({ releaseId: `release-${index}` }) as unknown as Artifact;

const entry = (deploymentId: string): InflightEntry => ({
  deploymentId,
  leaseId: 'lease-1',
  appName: 'web',
  workspace: null,
  instance: null,
  command: null,
});

/** Refused, whether the method throws at once or returns a rejected promise. */
async function refused(call: () => unknown, message: RegExp): Promise<void> {
  await expect((async () => call())()).rejects.toThrow(message);
}

describe('DeploymentState', () => {
  let dir: string;
  let state: DeploymentState;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cl-state-'));
    state = new DeploymentState(dir);
    await state.init();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps its files 0600 in 0700 directories', async () => {
    await state.uidFor('web', [62000, 62010]);
    await state.updateRecord('web', (record) => {
      record.artifacts.push(artifact(1));
    });
    await state.saveEnv(RELEASE, { SECRET: 'value' });
    await state.setInflight(entry(DEPLOYMENT));
    await state.logPaths('web', 'release-1');
    const mode = async (path: string) => (await stat(path)).mode & 0o777;
    expect(state.root).toBe(join(dir, 'deployments'));
    for (const sub of ['', 'apps', 'env', 'logs', join('logs', 'web')])
      expect(await mode(join(state.root, sub))).toBe(0o700);
    for (const file of [
      'uids.json',
      'inflight.json',
      join('apps', 'web.json'),
      join('env', `${RELEASE}.json`),
    ])
      expect(await mode(join(state.root, file))).toBe(0o600);
    // No temporary files are left behind by the atomic writes.
    expect((await readdir(state.root)).sort()).toEqual(['apps', 'env', 'inflight.json', 'logs', 'uids.json']);
  });

  describe('uidFor', () => {
    it('gives the lowest free uid, and the same one again for the same app', async () => {
      expect(await state.uidFor('web', [62000, 62010])).toBe(62000);
      expect(await state.uidFor('api', [62000, 62010])).toBe(62001);
      expect(await state.uidFor('web', [62000, 62010])).toBe(62000);
      expect(await state.uids()).toEqual({ web: 62000, api: 62001 });
      // Another agent process reading the same directory sees the same uids.
      expect(await new DeploymentState(dir).uidFor('api', [62000, 62010])).toBe(62001);
    });

    it('fills a gap left in the range', async () => {
      await state.uidFor('a', [62000, 62010]);
      await state.uidFor('b', [62005, 62010]);
      expect(await state.uidFor('c', [62000, 62010])).toBe(62001);
      expect(await state.uids()).toEqual({ a: 62000, b: 62005, c: 62001 });
    });

    it('gives different apps asking at once different uids', async () => {
      const names = ['a', 'b', 'c', 'd', 'e', 'f'];
      const uids = await Promise.all(names.map((name) => state.uidFor(name, [62000, 62010])));
      expect([...uids].sort()).toEqual([62000, 62001, 62002, 62003, 62004, 62005]);
      expect(Object.keys(await state.uids()).sort()).toEqual(names);
    });

    it('refuses when the range is full, naming deployments.uidRange', async () => {
      await state.uidFor('a', [62000, 62001]);
      await state.uidFor('b', [62000, 62001]);
      await expect(state.uidFor('c', [62000, 62001])).rejects.toThrow(
        /no free uid in 62000-62001.*deployments\.uidRange/,
      );
      // An app that has one still gets it.
      expect(await state.uidFor('b', [62000, 62001])).toBe(62001);
      expect(await state.uids()).toEqual({ a: 62000, b: 62001 });
    });
  });

  describe('records', () => {
    it('an app without a record has an empty one', async () => {
      expect(await state.record('web')).toEqual({ artifacts: [], instances: [] });
      expect(await state.appNames()).toEqual([]);
    });

    it('concurrent updates do not lose writes', async () => {
      const updates = Array.from({ length: 25 }, (_, index) =>
        state.updateRecord('web', (record) => ({
          ...record,
          artifacts: [...record.artifacts, artifact(index)],
        })),
      );
      await Promise.all(updates);
      const record = await state.record('web');
      expect(record.artifacts).toHaveLength(25);
      expect(record.artifacts.map((item) => item.releaseId).sort()).toEqual(
        Array.from({ length: 25 }, (_, index) => `release-${index}`).sort(),
      );
      expect(await state.appNames()).toEqual(['web']);
    });

    it('a change that throws is not written and does not stop the next one', async () => {
      await state.updateRecord('web', (record) => {
        record.instances.push({ releaseId: 'kept' } as unknown as Instance);
      });
      const failing = state.updateRecord('web', () => {
        throw new Error('no');
      });
      const next = state.updateRecord('web', (record) => {
        record.artifacts.push(artifact(1));
      });
      await expect(failing).rejects.toThrow('no');
      expect(await next).toEqual({ artifacts: [artifact(1)], instances: [{ releaseId: 'kept' }] });
      expect(await state.record('web')).toEqual(await next);
    });

    it('a damaged record is an error, not an empty record', async () => {
      await state.updateRecord('web', () => undefined);
      const { writeFile } = await import('node:fs/promises');
      await writeFile(join(state.root, 'apps', 'web.json'), '{ not json');
      await expect(state.record('web')).rejects.toThrow(/cannot read .*web\.json/);
    });
  });

  describe('names', () => {
    const badApps = ['../x', 'a/b', '..', '.', '', 'Web', '/etc', 'web\u0000', 'web.json', '-web'];
    const badReleases = [
      '../x',
      'a/b',
      '../../../../../../../../../etc/passwd',
      RELEASE.slice(1),
      `${RELEASE}/`,
    ];

    it.each(badApps)('refuses the app name %j before building a path', async (name) => {
      await refused(() => state.record(name), /not an app name/);
      await refused(() => state.updateRecord(name, () => undefined), /not an app name/);
      await refused(() => state.uidFor(name, [62000, 62010]), /not an app name/);
      await refused(() => state.logPaths(name, 'release-1'), /not an app name/);
      await refused(() => state.removeLogs(name, 'release-1'), /not an app name/);
    });

    it.each(badReleases)('refuses the release id %j before building a path', async (id) => {
      await refused(() => state.saveEnv(id, {}), /not a release id/);
      await refused(() => state.loadEnv(id), /not a release id/);
      await refused(() => state.removeEnv(id), /not a release id/);
      await refused(() => state.setInflight(entry(id)), /not a release id/);
    });

    it('refuses a log name that is not a plain file name', async () => {
      for (const name of ['../x', 'a/b', '', 'x'.repeat(81)])
        await refused(() => state.logPaths('web', name), /bad log name/);
      expect(await state.logPaths('web', 'release-1')).toEqual({
        stdoutPath: join(state.root, 'logs', 'web', 'release-1.out'),
        stderrPath: join(state.root, 'logs', 'web', 'release-1.err'),
      });
    });

    it('nothing was written for the refused names', async () => {
      for (const name of badApps) await refused(() => state.updateRecord(name, () => undefined), /./);
      for (const id of badReleases) await refused(() => state.saveEnv(id, { A: 'b' }), /./);
      expect(await readdir(join(state.root, 'apps'))).toEqual([]);
      expect(await readdir(join(state.root, 'env'))).toEqual([]);
      expect((await readdir(dir)).sort()).toEqual(['deployments']);
      expect(await readdir(join(state.root, 'logs'))).toEqual([]);
    });
  });

  it('saves, loads and removes a release’s environment', async () => {
    expect(await state.loadEnv(RELEASE)).toBeNull();
    await state.saveEnv(RELEASE, { TOKEN: 'secret-value' });
    expect(await state.loadEnv(RELEASE)).toEqual({ TOKEN: 'secret-value' });
    expect(JSON.parse(await readFile(join(state.root, 'env', `${RELEASE}.json`), 'utf8'))).toEqual({
      TOKEN: 'secret-value',
    });
    await state.removeEnv(RELEASE);
    await state.removeEnv(RELEASE);
    expect(await state.loadEnv(RELEASE)).toBeNull();
  });

  describe('inflight', () => {
    it('is set, updated and cleared per deployment', async () => {
      expect(await state.inflight()).toEqual({});
      await state.setInflight(entry(DEPLOYMENT));
      await state.setInflight({ ...entry(OTHER_DEPLOYMENT), appName: 'api' });
      await state.updateInflight(DEPLOYMENT, { workspace: '/srv/ws', command: { pid: 42, startTime: 7 } });
      expect(await state.inflight()).toEqual({
        [DEPLOYMENT]: { ...entry(DEPLOYMENT), workspace: '/srv/ws', command: { pid: 42, startTime: 7 } },
        [OTHER_DEPLOYMENT]: { ...entry(OTHER_DEPLOYMENT), appName: 'api' },
      });
      await state.clearInflight(DEPLOYMENT);
      expect(Object.keys(await state.inflight())).toEqual([OTHER_DEPLOYMENT]);
      await state.clearInflight(OTHER_DEPLOYMENT);
      expect(await state.inflight()).toEqual({});
    });

    it('updating or clearing an unknown deployment changes nothing', async () => {
      await state.setInflight(entry(DEPLOYMENT));
      await state.updateInflight(OTHER_DEPLOYMENT, { workspace: '/srv/ws' });
      await state.clearInflight(OTHER_DEPLOYMENT);
      expect(await state.inflight()).toEqual({ [DEPLOYMENT]: entry(DEPLOYMENT) });
    });

    it('changes made at once are all kept', async () => {
      await Promise.all([
        state.setInflight(entry(DEPLOYMENT)),
        state.updateInflight(DEPLOYMENT, { workspace: '/srv/ws' }),
        state.setInflight(entry(OTHER_DEPLOYMENT)),
        state.updateInflight(DEPLOYMENT, { command: { pid: 1, startTime: 2 } }),
        state.clearInflight(OTHER_DEPLOYMENT),
      ]);
      expect(await state.inflight()).toEqual({
        [DEPLOYMENT]: { ...entry(DEPLOYMENT), workspace: '/srv/ws', command: { pid: 1, startTime: 2 } },
      });
    });
  });
});
