import { closeSync, openSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  createReleaseCgroup,
  killReleaseGroup,
  probeIsolation,
  processStartTime,
  spawnIsolated,
  type IsolationProbe,
  type ReleaseCgroup,
} from '../../apps/agent/src/deployments/isolation.js';
import { makeTempDir, waitFor } from '../harness/processes.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot)
  console.log('isolation.test: skipped, uid isolation needs root (running as uid %d)', process.getuid?.());
const maybe = isRoot ? it : it.skip;

/** Pids whose real uid is `uid` (zombies included: they must be reaped too). */
async function processesOf(uid: number): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const status = await readFile(`/proc/${name}/status`, 'utf8').catch(() => '');
    const m = /^Uid:\s+(\d+)/m.exec(status);
    const state = /^State:\s+(\S)/m.exec(status)?.[1];
    if (m && Number(m[1]) === uid && state !== 'Z') found.push(Number(name));
  }
  return found;
}

describe('spawnIsolated as an app uid', () => {
  // A uid of our own, so that parallel runs and leftovers of other suites do not meet.
  const uid = 62000 + 100 + (process.pid % 800);
  let temp: { path: string; remove(): Promise<void> };
  let probe: IsolationProbe;
  let cgroup: ReleaseCgroup | undefined;
  let pgid = 0;

  beforeAll(async () => {
    if (!isRoot) return;
    temp = await makeTempDir('isolation');
    await chmod(temp.path, 0o755);
    probe = await probeIsolation();
  });

  afterAll(async () => {
    if (!isRoot) return;
    if (pgid) await killReleaseGroup(pgid, cgroup, { graceMs: 500 }).catch(() => undefined);
    await cgroup?.remove();
    // The agent keeps its `cloudlunacy` level; a test removes it when it is the last one in it.
    for (const dir of Object.values(probe.cgroup?.dirs ?? {})) await rmdir(dir).catch(() => undefined);
    await temp.remove();
  });

  maybe(
    'runs node as the uid, without access to root files, limited, and leaves nothing behind',
    async () => {
      expect(probe.isolation).toBe('uid');
      const appDir = join(temp.path, 'app');
      for (const d of [appDir, join(appDir, 'home'), join(appDir, 'tmp')]) {
        await mkdir(d);
        await chown(d, uid, uid);
        await chmod(d, 0o700);
      }
      const secretDir = join(temp.path, 'secret');
      await mkdir(secretDir, { mode: 0o700 });
      await writeFile(join(secretDir, 'key'), 'secret', { mode: 0o700 });
      await writeFile(join(temp.path, 'key0700'), 'secret', { mode: 0o700 });

      if (probe.cgroup) {
        cgroup = await createReleaseCgroup(probe, 'isolation-test', `r${process.pid}`, {
          memoryMb: 96,
          processes: 32,
        });
      } else {
        console.log(`isolation.test: no cgroup assertions, the probe found none (${probe.detail})`);
      }

      // The app: reports what it can see, tries to exceed pids.max with 50 children (one of them in a
      // session of its own, so only the cgroup can find it), then stays up.
      const script = `
      const fs = require('fs'), { spawn } = require('child_process');
      const tryRead = (p) => { try { fs.readFileSync(p); return 'read'; } catch (e) { return e.code; } };
      const children = []; let errors = 0;
      for (let i = 0; i < 50; i++) {
        const c = spawn('sleep', ['300'], { detached: i === 0, stdio: 'ignore' });
        c.on('error', () => errors++);
        children.push(c);
      }
      setTimeout(() => {
        console.log(JSON.stringify({ ready: true, spawned: children.filter((c) => c.pid).length, errors,
          key: tryRead(${JSON.stringify(join(temp.path, 'key0700'))}), secret: tryRead(${JSON.stringify(join(secretDir, 'key'))}) }));
      }, 1000);
      setInterval(() => {}, 1000);
    `;
      const logPath = join(appDir, 'out.log');
      const log = openSync(logPath, 'a', 0o600);
      const child = spawnIsolated(['node', '-e', script], {
        isolation: 'uid',
        uid,
        gid: uid,
        cwd: appDir,
        env: { PATH: '/usr/bin:/bin', HOME: join(appDir, 'home'), USER: `app`, TMPDIR: join(appDir, 'tmp') },
        cgroupProcsFiles: cgroup?.procsFiles,
        nofile: 1024,
        nproc: 4096,
        stdout: log,
        stderr: log,
      });
      closeSync(log);
      child.on('error', () => undefined);
      expect(child.pid).toBeGreaterThan(1);
      pgid = child.pid!;

      const report = await waitFor('the app to report', async () => {
        const text = await readFile(logPath, 'utf8').catch(() => '');
        const line = text.split('\n').find((l) => l.startsWith('{"ready"'));
        return line
          ? (JSON.parse(line) as { spawned: number; errors: number; key: string; secret: string })
          : undefined;
      });

      const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
      expect(status).toMatch(new RegExp(`^Uid:\\t${uid}\\t${uid}\\t${uid}\\t${uid}$`, 'm'));
      expect(status).toMatch(new RegExp(`^Gid:\\t${uid}\\t${uid}\\t${uid}\\t${uid}$`, 'm'));
      expect(status).toMatch(/^Groups:\s*$/m);
      expect(status).toMatch(/^NoNewPrivs:\t1$/m);
      expect(report.key).toBe('EACCES');
      expect(report.secret).toBe('EACCES');
      expect(await processStartTime(child.pid!)).toBeGreaterThan(0);

      if (cgroup && probe.cgroup) {
        const cg = probe.cgroup;
        const pids = await cgroup.pids();
        expect(pids).toContain(child.pid);
        if (cg.memory) {
          const file = cg.version === 1 ? 'memory.limit_in_bytes' : 'memory.max';
          const leaf = cgroup.procsFiles.find((f) => f.startsWith(cg.dirs.memory!))!;
          expect((await readFile(join(leaf, '..', file), 'utf8')).trim()).toBe(String(96 * 1024 * 1024));
        } else console.log('isolation.test: no memory controller, memory limit not checked');
        if (cg.pids) {
          // 50 children + node's own threads do not fit in 32 tasks.
          expect(report.errors).toBeGreaterThan(0);
          expect(report.spawned).toBeLessThan(50);
          const leaf = cgroup.procsFiles.find((f) => f.startsWith(cg.dirs.pids!))!;
          expect(Number(await readFile(join(leaf, '..', 'pids.current'), 'utf8'))).toBeLessThanOrEqual(32);
        } else console.log('isolation.test: no pids controller, pids.max not checked');
      }
      expect((await processesOf(uid)).length).toBeGreaterThan(1);

      const exited = new Promise((resolve) => child.once('exit', resolve));
      expect(await killReleaseGroup(pgid, cgroup, { graceMs: 3000 })).toMatch(/^(exit|kill)$/);
      await exited;
      if (cgroup) expect(await cgroup.pids()).toEqual([]);
      // Without a cgroup the child in its own session escapes the group: say so rather than fail.
      const left = await processesOf(uid);
      if (cgroup) expect(left).toEqual([]);
      else {
        console.log(
          `isolation.test: without a cgroup, ${left.length} process(es) left the group; killing them`,
        );
        for (const pid of left) process.kill(pid, 'SIGKILL');
      }
      pgid = 0;
    },
  );

  maybe('a memory limit kills a process that allocates more', async () => {
    if (!probe.cgroup?.memory) {
      console.log(`isolation.test: no memory cgroup (${probe.detail}), skipping the OOM check`);
      return;
    }
    const cg = await createReleaseCgroup(probe, 'isolation-test', `oom${process.pid}`, {
      memoryMb: 64,
      processes: 64,
    });
    try {
      const child = spawnIsolated(
        [
          'node',
          '-e',
          'const a = []; for (let i = 0; i < 40; i++) a.push(Buffer.alloc(8 << 20, 1)); console.log("survived")',
        ],
        {
          isolation: 'uid',
          uid,
          gid: uid,
          cwd: temp.path,
          env: { PATH: '/usr/bin:/bin', HOME: temp.path },
          cgroupProcsFiles: cg.procsFiles,
          nofile: 1024,
          nproc: 4096,
          stdout: 'ignore',
          stderr: 'ignore',
        },
      );
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
        child.once('exit', (c, s) => resolve([c, s])),
      );
      expect(code).toBeNull();
      expect(signal).toBe('SIGKILL');
    } finally {
      await cg.remove();
    }
  });
});
