import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gitConfigFile, gitFetchSteps } from '../../apps/agent/src/deployments/git.js';
import { spawnIsolated } from '../../apps/agent/src/deployments/isolation.js';
import { makeTempDir } from '../harness/processes.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot)
  console.log('git-fetch.test: skipped, fetching as an app uid needs root (uid %d)', process.getuid?.());
const maybe = isRoot ? it : it.skip;

/**
 * A real shallow fetch of a `file://` repository owned by root, as an app's own uid through setpriv:
 * git's ownership check passes only through the global config file the agent writes (the spike's finding).
 */
maybe(
  'fetches one commit of a root-owned repository as the app uid, with nothing of .git left to run',
  async () => {
    const uid = 62000 + 900 + (process.pid % 90);
    const temp = await makeTempDir('git-fetch');
    try {
      await chmod(temp.path, 0o755);
      const repo = join(temp.path, 'repo');
      await mkdir(repo);
      const git = (...args: string[]) =>
        execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args], {
          encoding: 'utf8',
        });
      git('init', '-q', '-b', 'main');
      await writeFile(join(repo, 'server.js'), 'console.log("v1")\n');
      git('add', '.');
      git('commit', '-q', '-m', 'v1');
      const commit = git('rev-parse', 'HEAD').trim();
      execFileSync('chmod', ['-R', 'a+rX', repo]);
      const app = join(temp.path, 'app');
      const workspace = join(app, 'release');
      const home = join(app, 'home');
      for (const dir of [app, workspace, home]) {
        await mkdir(dir, { recursive: true });
        await chown(dir, uid, uid);
      }
      const configFile = join(temp.path, 'git.config');
      const source = { type: 'git' as const, url: `file://${repo}`, ref: 'main', credentials: null };
      await writeFile(configFile, gitConfigFile(source, repo), { mode: 0o644 });
      const out = join(temp.path, 'out.log');
      for (const step of gitFetchSteps({
        source,
        ref: 'main',
        workspace,
        home,
        globalConfigFile: configFile,
      })) {
        const fd = openSync(out, 'a');
        const child = spawnIsolated(step.argv, {
          isolation: 'uid',
          uid,
          gid: uid,
          cwd: app,
          env: { ...step.env, PATH: '/usr/bin:/bin' },
          nofile: 1024,
          nproc: 256,
          stdout: fd,
          stderr: fd,
        });
        const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
        closeSync(fd);
        expect([step.argv.slice(5, 8).join(' '), code, readFileSync(out, 'utf8').slice(-500)]).toEqual([
          step.argv.slice(5, 8).join(' '),
          0,
          expect.any(String),
        ]);
      }
      expect(readFileSync(out, 'utf8').trim().split('\n').at(-1)).toBe(commit);
      expect(readFileSync(join(workspace, 'server.js'), 'utf8')).toContain('v1');
      // Without the config file, git refuses the repository of another user: the file is what lets it in.
      await writeFile(configFile, '');
      const bare = join(app, 'second');
      await mkdir(bare);
      await chown(bare, uid, uid);
      const [init, fetch] = gitFetchSteps({
        source,
        ref: 'main',
        workspace: bare,
        home,
        globalConfigFile: configFile,
      });
      for (const [index, step] of [init!, fetch!].entries()) {
        const fd = openSync(out, 'a');
        const child = spawnIsolated(step.argv, {
          isolation: 'uid',
          uid,
          gid: uid,
          cwd: app,
          env: { ...step.env, PATH: '/usr/bin:/bin' },
          nofile: 1024,
          nproc: 256,
          stdout: fd,
          stderr: fd,
        });
        const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
        closeSync(fd);
        if (index === 1) expect(code).not.toBe(0);
      }
      expect(readFileSync(out, 'utf8')).toMatch(/dubious ownership/);
    } finally {
      await temp.remove();
    }
  },
);
