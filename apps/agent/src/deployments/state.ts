import { chmod, mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { dnsLabel } from '#contracts';
import { writeFileAtomic } from '#pki-client';
import type { Artifact, Instance } from './runtime.js';

/**
 * What the agent knows about its apps, kept where no app can write (`<stateDir>/deployments`, 0700 root):
 * an app that could edit its own pid record could make the agent kill any process, and one that could
 * edit its env cache could read another's. Files are replaced atomically; each app's record is changed
 * by one writer at a time.
 */
export interface AppRecord {
  artifacts: Artifact[];
  instances: Instance[];
}

/** A deployment this agent claimed and has not finished: what to clean up after a crash. */
export interface InflightEntry {
  deploymentId: string;
  leaseId: string;
  appName: string;
  workspace: string | null;
  /** The new release's instance, once started. */
  instance: Instance | null;
  /** The running fetch or build command's process group (pid with its start time). */
  command: { pid: number; startTime: number } | null;
}

/** The users of a database the agent runs: the one clients get, and the agent's own (admin, local only). */
export interface DatabaseCredentials {
  user: string;
  password: string;
  adminUser: string;
  adminPassword: string;
  /** When the client password was last made (created or rotated). */
  rotatedAt: string;
}

const emptyRecord = (): AppRecord => ({ artifacts: [], instances: [] });

export class DeploymentState {
  readonly root: string;
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(stateDir: string) {
    this.root = join(stateDir, 'deployments');
  }

  async init(): Promise<void> {
    for (const dir of [this.root, join(this.root, 'apps'), join(this.root, 'env'), join(this.root, 'logs')]) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      // mkdir leaves an existing directory's mode as it was.
      await chmod(dir, 0o700);
    }
  }

  /** Every path below is built from names validated here, never from what a source or an app says. */
  private app(appName: string): string {
    if (!dnsLabel.safeParse(appName).success) throw new Error(`not an app name: ${JSON.stringify(appName)}`);
    return appName;
  }

  private id(releaseId: string): string {
    if (!/^[0-9a-f-]{36}$/.test(releaseId)) throw new Error(`not a release id: ${JSON.stringify(releaseId)}`);
    return releaseId;
  }

  /** One change at a time per key: read, change, write. */
  private serial<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(key) ?? Promise.resolve();
    const next = previous.then(work, work);
    this.chains.set(
      key,
      next.catch(() => undefined),
    );
    return next;
  }

  private async readJson<T>(path: string, fallback: T): Promise<T> {
    try {
      return JSON.parse(await readFile(path, 'utf8')) as T;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
      throw new Error(`cannot read ${path}: ${(error as Error).message}`);
    }
  }

  async uids(): Promise<Record<string, number>> {
    return this.readJson<Record<string, number>>(join(this.root, 'uids.json'), {});
  }

  /**
   * The app's uid: the one it has, or the lowest free one in the range (`available` says whether the
   * host has given it to someone else).
   */
  uidFor(
    appName: string,
    range: [number, number],
    available: (uid: number) => Promise<boolean> = () => Promise.resolve(true),
  ): Promise<number> {
    this.app(appName);
    return this.serial('uids', async () => {
      const uids = await this.uids();
      if (uids[appName] !== undefined) return uids[appName];
      const taken = new Set(Object.values(uids));
      for (let uid = range[0]; uid <= range[1]; uid++) {
        if (taken.has(uid) || !(await available(uid))) continue;
        uids[appName] = uid;
        await writeFileAtomic(join(this.root, 'uids.json'), JSON.stringify(uids, null, 2));
        return uid;
      }
      throw new Error(`no free uid in ${range[0]}-${range[1]}: widen deployments.uidRange`);
    });
  }

  record(appName: string): Promise<AppRecord> {
    return this.readJson(join(this.root, 'apps', `${this.app(appName)}.json`), emptyRecord());
  }

  async appNames(): Promise<string[]> {
    const names = await readdir(join(this.root, 'apps')).catch(() => [] as string[]);
    return names.filter((name) => name.endsWith('.json')).map((name) => name.slice(0, -5));
  }

  updateRecord(appName: string, change: (record: AppRecord) => AppRecord | void): Promise<AppRecord> {
    const path = join(this.root, 'apps', `${this.app(appName)}.json`);
    return this.serial(`app:${appName}`, async () => {
      const record = await this.readJson(path, emptyRecord());
      const next = change(record) ?? record;
      await writeFileAtomic(path, JSON.stringify(next, null, 2));
      return next;
    });
  }

  /** Forgets one process of the app (by pid and start time: pids are reused). */
  async removeInstance(appName: string, instance: Pick<Instance, 'pid' | 'startTime'>): Promise<void> {
    await this.updateRecord(appName, (record) => {
      record.instances = record.instances.filter(
        (i) => !(i.pid === instance.pid && i.startTime === instance.startTime),
      );
    });
  }

  /** The environment a release was started with (secret values included): 0600 in the 0700 directory. */
  async saveEnv(releaseId: string, env: Record<string, string>): Promise<void> {
    await writeFileAtomic(join(this.root, 'env', `${this.id(releaseId)}.json`), JSON.stringify(env));
  }

  loadEnv(releaseId: string): Promise<Record<string, string> | null> {
    return this.readJson<Record<string, string> | null>(
      join(this.root, 'env', `${this.id(releaseId)}.json`),
      null,
    );
  }

  /** A database's passwords, made on this VPS and kept nowhere else: 0600 in the 0700 directory. */
  credentials(appName: string): Promise<DatabaseCredentials | null> {
    return this.readJson<DatabaseCredentials | null>(
      join(this.root, 'databases', `${this.app(appName)}.json`),
      null,
    );
  }

  async saveCredentials(appName: string, credentials: DatabaseCredentials): Promise<void> {
    const dir = join(this.root, 'databases');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(join(dir, `${this.app(appName)}.json`), JSON.stringify(credentials));
  }

  async removeEnv(releaseId: string): Promise<void> {
    await rm(join(this.root, 'env', `${this.id(releaseId)}.json`), { force: true });
  }

  /** Where a release's output goes: files the agent opens and hands to the process, out of its reach. */
  async logPaths(appName: string, name: string): Promise<{ stdoutPath: string; stderrPath: string }> {
    const dir = join(this.root, 'logs', this.app(appName));
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (!/^[A-Za-z0-9._-]{1,80}$/.test(name)) throw new Error(`bad log name ${JSON.stringify(name)}`);
    return { stdoutPath: join(dir, `${name}.out`), stderrPath: join(dir, `${name}.err`) };
  }

  async removeLogs(appName: string, name: string): Promise<void> {
    const { stdoutPath, stderrPath } = await this.logPaths(appName, name);
    for (const path of [stdoutPath, stderrPath, `${stdoutPath}.1`, `${stderrPath}.1`])
      await rm(path, { force: true });
  }

  /** Removes the output files of an app whose names start with one of `prefixes` (a pruned release's). */
  async removeLogsStartingWith(appName: string, prefixes: readonly string[]): Promise<void> {
    const dir = join(this.root, 'logs', this.app(appName));
    for (const name of await readdir(dir).catch(() => [] as string[]))
      if (prefixes.some((prefix) => name.startsWith(prefix))) await rm(join(dir, name), { force: true });
  }

  inflight(): Promise<Record<string, InflightEntry>> {
    return this.readJson<Record<string, InflightEntry>>(join(this.root, 'inflight.json'), {});
  }

  /** Written before the claim is sent, and at each step that leaves something to clean up. */
  setInflight(entry: InflightEntry): Promise<void> {
    return this.serial('inflight', async () => {
      const all = await this.inflight();
      all[this.id(entry.deploymentId)] = entry;
      await writeFileAtomic(join(this.root, 'inflight.json'), JSON.stringify(all, null, 2));
    });
  }

  updateInflight(deploymentId: string, change: Partial<InflightEntry>): Promise<void> {
    return this.serial('inflight', async () => {
      const all = await this.inflight();
      const entry = all[deploymentId];
      if (!entry) return;
      all[deploymentId] = { ...entry, ...change };
      await writeFileAtomic(join(this.root, 'inflight.json'), JSON.stringify(all, null, 2));
    });
  }

  clearInflight(deploymentId: string): Promise<void> {
    return this.serial('inflight', async () => {
      const all = await this.inflight();
      if (!(deploymentId in all)) return;
      delete all[deploymentId];
      await writeFileAtomic(join(this.root, 'inflight.json'), JSON.stringify(all, null, 2));
    });
  }
}
