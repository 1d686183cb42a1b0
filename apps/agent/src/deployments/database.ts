import { createHash, randomBytes } from 'node:crypto';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { chmod, chown, lstat, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createClient } from 'redis';
import { backupId as backupIdSchema, type BackupView, type DatabaseEngine } from '#contracts';
import { writeFileAtomic } from '#pki-client';
import type { LivePaths } from '../certificates/store.js';
import type { AppPlace } from './runtime.js';
import type { DatabaseCredentials, DeploymentState } from './state.js';

/**
 * Managed databases (docs/deployments.md, "Databases"): the agent runs the engine installed on the VPS
 * as a release of the app, with
 * - TLS only, with the certificate this agent holds from the CloudLunacy CA (copied for the database's
 *   own user, reloaded in place after each renewal);
 * - authentication always: the client user's password is made here and kept in the agent's state; the
 *   database's files hold only its SHA-256; the agent's own admin user is reached on a unix socket only;
 * - the data in the app's `shared/data`, which every release of the app uses in turn;
 * - bound to the VPS's public address only (where the front reaches it).
 */

/** Where one database's files are (the agent writes `dir`, root-owned; the database writes `data`). */
export interface DatabaseFiles {
  /** `<app>/db`: root:<app> 0750, so the database reads its key and ACL but changes neither. */
  dir: string;
  key: string;
  /** The agent's certificate and the CA's (leaf first). */
  cert: string;
  ca: string;
  /** The users, with password hashes only. */
  acl: string;
  /**
   * `<app>/data`, the database's (0700): in the root-owned app directory, so the database can never
   * replace the directory itself with a link for the agent (root) to follow.
   */
  data: string;
  /** `<app>/run`, the database's, holding the admin's way in (a unix socket): never on the network. */
  run: string;
  socket: string;
}

export function databaseFiles(place: AppPlace): DatabaseFiles {
  const dir = join(place.dir, 'db');
  return {
    dir,
    key: join(dir, 'key.pem'),
    cert: join(dir, 'cert.pem'),
    ca: join(dir, 'ca.pem'),
    acl: join(dir, 'users.conf'),
    data: join(place.dir, 'data'),
    run: join(place.dir, 'run'),
    socket: join(place.dir, 'run', 'redis.sock'),
  };
}

/** The engines' programs, looked for on the release PATH. */
export const ENGINE_PROGRAMS: Record<DatabaseEngine, string> = { redis: 'redis-server' };
/** On the container runtime, the engine's image unless the agent's config names another. */
export const DEFAULT_ENGINE_IMAGES: Record<DatabaseEngine, string> = { redis: 'docker.io/library/redis:7' };

/**
 * A database release's command in a container (no shell): its sealed configuration, mounted at the same
 * path, with the port and the address of this start.
 */
export function databaseCommand(artifactLocation: string, port: number, host: string): string[] {
  return [
    'redis-server',
    `${artifactLocation}/redis.conf`,
    '--port',
    '0',
    '--tls-port',
    String(port),
    '--bind',
    host,
  ];
}

/** The release's start command: port and address come from the environment each start gets. */
export const REDIS_START = 'exec redis-server ./redis.conf --port 0 --tls-port "$PORT" --bind "$HOST"';
/** The agent's own user of each database (admin commands on the unix socket only). */
export const DATABASE_ADMIN_USER = 'cloudlunacy';

/** The static settings of a Redis release (its `redis.conf`, sealed in the release like a build). */
export function redisConfig(files: DatabaseFiles): string {
  return [
    '# Written by the CloudLunacy agent. The port and the address come on the command line.',
    'port 0',
    `tls-cert-file ${files.cert}`,
    `tls-key-file ${files.key}`,
    `tls-ca-cert-file ${files.ca}`,
    'tls-auth-clients no',
    'tls-protocols "TLSv1.2 TLSv1.3"',
    `unixsocket ${files.socket}`,
    'unixsocketperm 700',
    `dir ${files.data}`,
    'appendonly yes',
    'appendfsync everysec',
    'daemonize no',
    // Bound to one address, with passwords: protected mode would only refuse the front.
    'protected-mode no',
    // Payloads a client could craft are checked in full before they are loaded.
    'sanitize-dump-payload yes',
    'logfile ""',
    `include ${files.acl}`,
    '',
  ].join('\n');
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * The users: `default` (what clients get) may do everything but administration (CONFIG, SHUTDOWN,
 * REPLICAOF, DEBUG, …, so a client cannot point the database at other files), MIGRATE (connections out
 * of the VPS) and RESTORE (crafted payloads); the agent's user all of it.
 */
export function redisAcl(credentials: DatabaseCredentials): string {
  return [
    `user ${credentials.user} on #${sha256(credentials.password)} ~* &* +@all -@admin -migrate -restore`,
    `user ${credentials.adminUser} on #${sha256(credentials.adminPassword)} ~* &* +@all`,
    '',
  ].join('\n');
}

/** 32 random bytes, base64url: nothing to quote in a URL, a config file or a shell. */
export const newPassword = () => randomBytes(32).toString('base64url');

export function newCredentials(now = new Date()): DatabaseCredentials {
  return {
    user: 'default',
    password: newPassword(),
    adminUser: DATABASE_ADMIN_USER,
    adminPassword: newPassword(),
    rotatedAt: now.toISOString(),
  };
}

const NO_CERTIFICATES =
  'certificates are off on this agent (certificates.enabled): a database serves TLS only, with the certificate of the CloudLunacy CA';

type RedisTarget =
  | { tls: { host: string; port: number; ca: string }; user: string; password: string }
  | { socket: string; user: string; password: string };

/** One short connection (no reconnects, no offline queue) for one piece of work. */
async function withRedis<T>(
  target: RedisTarget,
  work: (send: (args: string[]) => Promise<unknown>) => Promise<T>,
  timeoutMs = 3_000,
): Promise<T> {
  const socket =
    'socket' in target
      ? { path: target.socket, connectTimeout: timeoutMs, reconnectStrategy: false as const }
      : {
          tls: true as const,
          host: target.tls.host,
          port: target.tls.port,
          ca: target.tls.ca,
          // The health gate runs before the route (and the certificate's new name) exists: the chain
          // is checked, the name by the front's verification.
          checkServerIdentity: () => undefined,
          connectTimeout: timeoutMs,
          reconnectStrategy: false as const,
        };
  const client = createClient({
    socket,
    username: target.user,
    password: target.password,
    disableOfflineQueue: true,
  });
  let lastError: unknown;
  client.on('error', (error: unknown) => (lastError = error));
  try {
    await client.connect();
  } catch (error) {
    throw lastError instanceof Error ? lastError : error;
  }
  try {
    return await work((args) => client.sendCommand(args));
  } finally {
    client.destroy();
  }
}

/** The client user's view: TLS against the CA, AUTH, PING → PONG. */
export async function pingRedis(
  address: { host: string; port: number },
  credentials: Pick<DatabaseCredentials, 'user' | 'password'>,
  caPem: string,
): Promise<void> {
  const answer = await withRedis(
    { tls: { ...address, ca: caPem }, user: credentials.user, password: credentials.password },
    (send) => send(['PING']),
  );
  if (answer !== 'PONG') throw new Error(`PING answered ${JSON.stringify(answer)}`);
}

/**
 * The agent's part of each database: credentials, the files the database reads, reloading its TLS after
 * a renewal, rotating its client password.
 */
export class Databases {
  constructor(
    private readonly state: DeploymentState,
    /** The agent's certificate files; undefined when certificates are off (no database can run). */
    private readonly certificates: (() => Promise<LivePaths | null>) | undefined,
    private readonly uidIsolated: boolean,
    /** Finished backups kept per database (the oldest beyond go after each new one). */
    private readonly backupsKept = 7,
  ) {}

  /** The database's credentials, made the first time. */
  async credentials(appName: string): Promise<DatabaseCredentials> {
    const known = await this.state.credentials(appName);
    if (known) return known;
    const made = newCredentials();
    await this.state.saveCredentials(appName, made);
    return made;
  }

  /**
   * Resolves once the agent holds a certificate (a database deployed right after enrollment waits for
   * the first one, `onWait` saying so once); throws at once when certificates are off, or when `signal`
   * aborts.
   */
  async awaitCertificate(signal: AbortSignal, onWait: () => void): Promise<void> {
    if (!this.certificates) throw new Error(NO_CERTIFICATES);
    for (let waiting = false; !(await this.certificates()); waiting = true) {
      if (!waiting) onWait();
      signal.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** Everything a release of the database needs before it starts: its files, the TLS pair, its data. */
  async prepare(place: AppPlace, engine: DatabaseEngine): Promise<DatabaseFiles> {
    const files = databaseFiles(place);
    await this.ownedDir(files.dir, 0, place.gid, 0o750);
    await this.installTls(place);
    await this.writeUsers(place, engine, await this.credentials(place.appName));
    await this.ownedDir(files.data, place.uid, place.gid, 0o700);
    await this.ownedDir(files.run, place.uid, place.gid, 0o700);
    return files;
  }

  /** Copies the agent's current pair where the database's user can read it (and nobody else's can). */
  async installTls(place: AppPlace): Promise<void> {
    const live = this.certificates ? await this.certificates() : null;
    if (!live)
      throw new Error(
        this.certificates ? 'this agent holds no certificate from the CloudLunacy CA yet' : NO_CERTIFICATES,
      );
    const files = databaseFiles(place);
    for (const [from, to] of [
      [live.key, files.key],
      [live.fullchain, files.cert],
      [live.chain, files.ca],
    ] as const)
      await this.readableByApp(place, to, await readFile(from));
  }

  async writeUsers(place: AppPlace, engine: DatabaseEngine, credentials: DatabaseCredentials): Promise<void> {
    switch (engine) {
      case 'redis':
        await this.readableByApp(place, databaseFiles(place).acl, redisAcl(credentials));
    }
  }

  /** After a renewal: the running database loads the new pair; clients connected stay connected. */
  async reloadTls(place: AppPlace, engine: DatabaseEngine): Promise<void> {
    await this.installTls(place);
    const files = databaseFiles(place);
    switch (engine) {
      case 'redis':
        await this.admin(place, (send) =>
          send([
            'CONFIG',
            'SET',
            'tls-cert-file',
            files.cert,
            'tls-key-file',
            files.key,
            'tls-ca-cert-file',
            files.ca,
          ]),
        );
    }
  }

  /**
   * A new client password: the running database takes it at once (connections already authenticated
   * stay), and its files for the next start. The old password stops working.
   */
  async rotate(place: AppPlace, engine: DatabaseEngine, running: boolean): Promise<DatabaseCredentials> {
    const current = await this.credentials(place.appName);
    const next = { ...current, password: newPassword(), rotatedAt: new Date().toISOString() };
    if (running) {
      switch (engine) {
        case 'redis':
          await this.admin(place, (send) =>
            send(['ACL', 'SETUSER', next.user, 'resetpass', `#${sha256(next.password)}`]),
          );
      }
    }
    await this.writeUsers(place, engine, next);
    await this.state.saveCredentials(place.appName, next);
    return next;
  }

  private readonly running = new Map<string, BackupView>();

  /**
   * Starts a backup (one at a time per database; asked again while one runs, the answer is that one):
   * the engine writes a snapshot, which is copied to `<app>/backups/<id>.rdb` (root-only) and digested.
   * The file stays on the VPS.
   */
  async startBackup(place: AppPlace, engine: DatabaseEngine): Promise<BackupView> {
    const already = this.running.get(place.appName);
    if (already) return already;
    const now = new Date();
    const view: BackupView = {
      backupId: `${now
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z')}-${randomBytes(4).toString('hex')}`,
      status: 'running',
      startedAt: now.toISOString(),
      finishedAt: null,
      bytes: 0,
      sha256: null,
      error: null,
    };
    this.running.set(place.appName, view);
    void this.backup(place, engine, view).finally(() => this.running.delete(place.appName));
    return { ...view };
  }

  private async backup(place: AppPlace, engine: DatabaseEngine, view: BackupView): Promise<void> {
    const dir = await this.backupsDir(place);
    const file = join(dir, `${view.backupId}.rdb`);
    try {
      switch (engine) {
        case 'redis':
          await this.admin(place, async (send) => {
            const persistence = async () => {
              const info = String(await send(['INFO', 'persistence']));
              return (name: string) => new RegExp(`^${name}:(\\S+)`, 'm').exec(info)?.[1];
            };
            // A save of its own: done when the count of saves moved past what it was before (a save
            // scheduled behind an AOF rewrite counts only once it ran).
            const before = Number((await persistence())('rdb_saves'));
            await send(['BGSAVE', 'SCHEDULE']);
            for (;;) {
              const field = await persistence();
              if (Number(field('rdb_saves')) > before && field('rdb_bgsave_in_progress') === '0') {
                if (field('rdb_last_bgsave_status') !== 'ok')
                  throw new Error('the database could not write its snapshot (see its log)');
                return;
              }
              view.bytes = await this.snapshotBytesSoFar(place);
              await new Promise((resolve) => setTimeout(resolve, 100));
            }
          });
      }
      const hash = createHash('sha256');
      let bytes = 0;
      // The database's user owns its data directory: a link there must not make root copy another file.
      const snapshot = await open(
        join(databaseFiles(place).data, 'dump.rdb'),
        constants.O_RDONLY | constants.O_NOFOLLOW,
      );
      if (!(await snapshot.stat()).isFile()) {
        await snapshot.close();
        throw new Error('the snapshot is not a regular file');
      }
      await pipeline(
        snapshot.createReadStream(),
        async function* (chunks: AsyncIterable<Buffer>) {
          for await (const chunk of chunks) {
            hash.update(chunk);
            bytes += chunk.length;
            view.bytes = bytes;
            yield chunk;
          }
        },
        createWriteStream(`${file}.tmp`, { mode: 0o600 }),
      );
      await rename(`${file}.tmp`, file);
      Object.assign(view, {
        status: 'done',
        bytes,
        sha256: hash.digest('hex'),
        finishedAt: new Date().toISOString(),
      });
    } catch (error) {
      await rm(`${file}.tmp`, { force: true });
      Object.assign(view, {
        status: 'failed',
        finishedAt: new Date().toISOString(),
        error: ((error as Error).message ?? String(error)).slice(0, 300),
      });
    }
    await writeFileAtomic(join(dir, `${view.backupId}.json`), JSON.stringify(view));
    if (view.status === 'done') await this.prune(place);
  }

  /** Keeps the newest finished backups (and failed records newer than the oldest kept). */
  private async prune(place: AppPlace): Promise<void> {
    const dir = await this.backupsDir(place);
    const all = (await this.listBackups(place)).filter((backup) => backup.status !== 'running');
    const done = all.filter((backup) => backup.status === 'done');
    const oldestKept = done[Math.min(done.length, this.backupsKept) - 1]?.backupId ?? '';
    for (const backup of all) {
      const keep =
        backup.status === 'done' ? done.indexOf(backup) < this.backupsKept : backup.backupId > oldestKept;
      if (keep) continue;
      await rm(join(dir, `${backup.backupId}.rdb`), { force: true });
      await rm(join(dir, `${backup.backupId}.json`), { force: true });
    }
  }

  /** The size of the snapshot being written (the engine's temporary file), for the progress. */
  private async snapshotBytesSoFar(place: AppPlace): Promise<number> {
    const data = databaseFiles(place).data;
    const names = await readdir(data).catch(() => [] as string[]);
    let bytes = 0;
    for (const name of names.filter((candidate) => /^temp-.*\.rdb$/.test(candidate)))
      bytes += await stat(join(data, name)).then(
        (found) => found.size,
        () => 0,
      );
    return bytes;
  }

  /** The backups on the VPS, newest first, with one still running. */
  async listBackups(place: AppPlace): Promise<BackupView[]> {
    const dir = await this.backupsDir(place);
    const views: BackupView[] = [];
    for (const name of await readdir(dir)) {
      if (!name.endsWith('.json')) continue;
      const view = JSON.parse(await readFile(join(dir, name), 'utf8')) as BackupView;
      if (backupIdSchema.safeParse(view.backupId).success) views.push(view);
    }
    // The one in progress, until its record is written (then it is among the records).
    const running = this.running.get(place.appName);
    if (running && !views.some((view) => view.backupId === running.backupId)) views.push({ ...running });
    return views.sort((a, b) => b.backupId.localeCompare(a.backupId));
  }

  /** A finished backup whose file is still what was written (size and digest). */
  async checkBackup(place: AppPlace, id: string): Promise<BackupView> {
    const view = (await this.listBackups(place)).find((candidate) => candidate.backupId === id);
    if (!view) throw new Error(`no backup ${id} on this VPS`);
    if (view.status !== 'done')
      throw new Error(`backup ${id} is ${view.status}: only a finished backup restores`);
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(join(await this.backupsDir(place), `${id}.rdb`)))
      hash.update(chunk as Buffer);
    if (hash.digest('hex') !== view.sha256) throw new Error(`backup ${id} changed on disk since it was made`);
    return view;
  }

  /**
   * With the database stopped: its data becomes the backup's. What it held is set aside in
   * `<app>/backups/replaced-<time>` (root-only), never deleted here.
   */
  async restoreFiles(place: AppPlace, engine: DatabaseEngine, id: string): Promise<string> {
    const files = databaseFiles(place);
    const dir = await this.backupsDir(place);
    // Made by root where only root writes (the app directory), then given to the database, then swapped
    // in by renames inside root-owned directories: nothing the database wrote is followed.
    const fresh = `${files.data}.restoring`;
    await rm(fresh, { recursive: true, force: true });
    await mkdir(fresh, { mode: 0o700 });
    switch (engine) {
      case 'redis': {
        // Redis 7 loads an AOF directory whose base is an RDB file: the backup, with a manifest naming it.
        const aof = join(fresh, 'appendonlydir');
        await mkdir(aof, { mode: 0o700 });
        const base = join(aof, 'appendonly.aof.1.base.rdb');
        await pipeline(
          createReadStream(join(dir, `${id}.rdb`)),
          createWriteStream(base, { mode: 0o600, flags: 'wx' }),
        );
        const manifest = join(aof, 'appendonly.aof.manifest');
        await writeFileAtomic(manifest, 'file appendonly.aof.1.base.rdb seq 1 type b\n', { mode: 0o600 });
        if (this.uidIsolated)
          for (const path of [fresh, aof, base, manifest]) await chown(path, place.uid, place.gid);
      }
    }
    const aside = join(dir, `replaced-${new Date().toISOString().replace(/[-:.]/g, '')}`);
    await rename(files.data, aside);
    await rename(fresh, files.data);
    return aside;
  }

  /** The admin socket, if it is one the database made (a link there must not lead root elsewhere). */
  private async adminSocket(place: AppPlace): Promise<string> {
    const path = databaseFiles(place).socket;
    const found = await lstat(path);
    if (!found.isSocket() || (this.uidIsolated && found.uid !== place.uid))
      throw new Error(`${path} is not the database's socket`);
    return path;
  }

  private async backupsDir(place: AppPlace): Promise<string> {
    const dir = join(place.dir, 'backups');
    await this.ownedDir(dir, 0, 0, 0o700);
    return dir;
  }

  private async admin<T>(place: AppPlace, work: (send: (args: string[]) => Promise<unknown>) => Promise<T>) {
    const credentials = await this.credentials(place.appName);
    return withRedis(
      {
        socket: await this.adminSocket(place),
        user: credentials.adminUser,
        password: credentials.adminPassword,
      },
      work,
    );
  }

  /** A root-owned file the app's group reads (0640), replaced atomically. */
  private async readableByApp(place: AppPlace, path: string, data: string | Uint8Array): Promise<void> {
    await writeFileAtomic(path, data, { mode: 0o640 });
    if (this.uidIsolated) await chown(path, 0, place.gid);
    await chmod(path, this.uidIsolated ? 0o640 : 0o600);
  }

  private async ownedDir(path: string, uid: number, gid: number, mode: number): Promise<void> {
    await mkdir(path, { recursive: true, mode });
    const found = await lstat(path);
    if (!found.isDirectory()) throw new Error(`${path} is not a directory`);
    if (this.uidIsolated) await chown(path, uid, gid);
    await chmod(path, this.uidIsolated ? mode : 0o700);
  }
}
