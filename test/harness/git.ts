import { execFile } from 'node:child_process';
import { chmod, cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';
import { startProcess, waitFor, portAccepts, type RunningProcess } from './processes.js';

const run = promisify(execFile);

/** A git repository on disk for deployment tests: commits files, names commits, readable by app uids. */
export class TestRepo {
  private constructor(readonly path: string) {}

  /** A new repository at `path` (branch main) holding a copy of `from` (a fixture directory), committed. */
  static async create(path: string, from?: string): Promise<TestRepo> {
    await rm(path, { recursive: true, force: true });
    await mkdir(path, { recursive: true });
    const repo = new TestRepo(path);
    await repo.git('init', '-q', '-b', 'main');
    if (from) await cp(from, path, { recursive: true });
    await repo.commitAll('initial');
    return repo;
  }

  async git(...args: string[]): Promise<string> {
    const { stdout } = await run('git', [
      '-C',
      this.path,
      '-c',
      'user.name=test',
      '-c',
      'user.email=test@test',
      ...args,
    ]);
    return stdout.trim();
  }

  /** Writes `files` (relative path → content; null removes), commits everything, returns the commit id. */
  async commit(files: Record<string, string | null>, message = 'change'): Promise<string> {
    for (const [name, content] of Object.entries(files)) {
      const path = join(this.path, name);
      if (content === null) await rm(path, { force: true });
      else {
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, content);
      }
    }
    return this.commitAll(message);
  }

  private async commitAll(message: string): Promise<string> {
    await this.git('add', '-A');
    await this.git('commit', '-q', '--allow-empty', '-m', message);
    // Apps fetch as their own uids: the repository must be readable (and its directories walkable).
    await run('chmod', ['-R', 'a+rX', this.path]);
    await chmod(dirname(this.path), 0o755).catch(() => undefined);
    return this.git('rev-parse', 'HEAD');
  }

  get url(): string {
    return `file://${this.path}`;
  }
}

/** `git daemon` on loopback serving the repositories under `base` (read-only, every one exported). */
export async function startGitDaemon(
  base: string,
): Promise<{ url(name: string): string; process: RunningProcess; port: number }> {
  const port = await freePort();
  const process = startProcess('git', [
    'daemon',
    `--base-path=${base}`,
    '--export-all',
    '--reuseaddr',
    '--listen=127.0.0.1',
    `--port=${port}`,
    base,
  ]);
  await waitFor('git daemon to listen', () => portAccepts(port), { timeoutMs: 10_000 });
  return { url: (name) => `git://127.0.0.1:${port}/${name}`, process, port };
}

/**
 * OpenSSH's sshd on loopback serving git over ssh (as root, to the repositories' absolute paths), with
 * a fresh host key and one client key allowed. `knownHosts` is the line a client pins the host with.
 */
export async function startSshGitServer(dir: string): Promise<{
  url(path: string): string;
  port: number;
  privateKey: string;
  knownHosts: string;
  stop(): Promise<void>;
}> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // sshd's privilege separation directory (made by its init script, which nothing ran here).
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  for (const key of ['host', 'client'])
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', key, '-f', join(dir, key)]);
  await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'client.pub'), 'utf8'), {
    mode: 0o600,
  });
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'AllowUsers root',
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      '',
    ].join('\n'),
  );
  const process = startProcess('/usr/sbin/sshd', ['-D', '-e', '-f', config]);
  await waitFor('sshd to listen', () => portAccepts(port), { timeoutMs: 10_000 }).catch((error: unknown) => {
    throw new Error(`${String(error)}\n${process.output()}`);
  });
  const hostKey = (await readFile(join(dir, 'host.pub'), 'utf8')).split(' ').slice(0, 2).join(' ');
  return {
    url: (path) => `ssh://root@127.0.0.1:${port}${path}`,
    port,
    privateKey: await readFile(join(dir, 'client'), 'utf8'),
    knownHosts: `[127.0.0.1]:${port} ${hostKey}`,
    stop: () => process.stop(),
  };
}
