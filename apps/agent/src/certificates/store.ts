import { mkdir, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { certificateSerial } from '#contracts';
import { inspectCertificate, replaceSymlinkAtomic, writeFileAtomic, type CertificateInfo } from '#pki-client';

/** A certificate in use: the key made here, the certificate the CA signed for it, and the CA. */
export interface InstalledPair {
  serial: string;
  keyPem: string;
  certificatePem: string;
  chainPem: string;
  info: CertificateInfo;
}

/** A key made for a request not answered yet: kept so a retry sends the same key (and gets the same certificate). */
const pendingSchema = z.strictObject({
  keyPem: z.string().min(1),
  names: z.array(z.string().min(1)).min(1),
  replaces: certificateSerial.nullable(),
  createdAt: z.string(),
});
export type PendingRequest = z.output<typeof pendingSchema>;

const stateSchema = z.strictObject({
  /** The serial the certificates service confirmed as installed. */
  confirmed: certificateSerial.nullable(),
  /** What the hook did after the last install, reported with the confirmation. */
  lastHook: z
    .strictObject({
      serial: certificateSerial,
      status: z.enum(['none', 'succeeded', 'failed']),
      detail: z.string().optional(),
    })
    .nullable(),
});
export type CertificateState = z.output<typeof stateSchema>;

/** The files a server uses, under `<dir>/live/` (a link switched atomically to the newest release). */
export interface LivePaths {
  dir: string;
  /** The private key, 0600. */
  key: string;
  /** The leaf certificate. */
  certificate: string;
  /** The CA certificate. */
  chain: string;
  /** Leaf then CA: what most TLS servers take as their certificate. */
  fullchain: string;
  /** Leaf, CA and key in one file, 0600 (MongoDB's certificateKeyFile, HAProxy's crt). */
  bundle: string;
}

/**
 * The agent's certificates on disk:
 *
 *   <dir>/releases/<serial>/{key.pem, cert.pem, chain.pem, fullchain.pem, bundle.pem}
 *   <dir>/live -> releases/<serial>     the pair in use, switched with one rename
 *   <dir>/pending.json                  the key of a request in flight (0600)
 *   <dir>/state.json                    what the service confirmed, and the last hook result
 *   <dir>/ca.pem                        the CA pinned at the first install
 *
 * Every file is written to a temporary name, fsynced and renamed (keys 0600); the release of the previous
 * pair stays until the new one is confirmed, so a server can always fall back to it.
 */
export class CertificateStore {
  readonly live: LivePaths;

  constructor(readonly dir: string) {
    const live = join(dir, 'live');
    this.live = {
      dir: live,
      key: join(live, 'key.pem'),
      certificate: join(live, 'cert.pem'),
      chain: join(live, 'chain.pem'),
      fullchain: join(live, 'fullchain.pem'),
      bundle: join(live, 'bundle.pem'),
    };
  }

  private get releases(): string {
    return join(this.dir, 'releases');
  }

  async init(): Promise<void> {
    await mkdir(this.releases, { recursive: true, mode: 0o700 });
  }

  /** The pair `live` points at, or undefined when there is none (or it cannot be read). */
  async current(): Promise<InstalledPair | undefined> {
    let target: string;
    try {
      target = await readlink(this.live.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const serial = target.split('/').pop() ?? '';
    try {
      const [keyPem, certificatePem, chainPem] = await Promise.all([
        readFile(this.live.key, 'utf8'),
        readFile(this.live.certificate, 'utf8'),
        readFile(this.live.chain, 'utf8'),
      ]);
      const info = inspectCertificate(certificatePem);
      if (info.serial !== serial) return undefined;
      return { serial, keyPem, certificatePem, chainPem, info };
    } catch {
      return undefined;
    }
  }

  /** Writes a new release and points `live` at it; the previous release stays. */
  async install(pair: {
    serial: string;
    keyPem: string;
    certificatePem: string;
    chainPem: string;
  }): Promise<void> {
    const release = join(this.releases, pair.serial);
    await mkdir(release, { recursive: true, mode: 0o700 });
    const fullchain = pair.certificatePem + pair.chainPem;
    await writeFileAtomic(join(release, 'key.pem'), pair.keyPem, { mode: 0o600 });
    await writeFileAtomic(join(release, 'cert.pem'), pair.certificatePem, { mode: 0o644 });
    await writeFileAtomic(join(release, 'chain.pem'), pair.chainPem, { mode: 0o644 });
    await writeFileAtomic(join(release, 'fullchain.pem'), fullchain, { mode: 0o644 });
    await writeFileAtomic(join(release, 'bundle.pem'), fullchain + pair.keyPem, { mode: 0o600 });
    await replaceSymlinkAtomic(join('releases', pair.serial), this.live.dir);
  }

  /** Releases other than `serial` (the previous pair once the new one is confirmed). */
  async removeOtherReleases(serial: string): Promise<string[]> {
    const removed: string[] = [];
    for (const entry of await readdir(this.releases)) {
      if (entry === serial) continue;
      await rm(join(this.releases, entry), { recursive: true, force: true });
      removed.push(entry);
    }
    return removed;
  }

  async releaseSerials(): Promise<string[]> {
    return (await readdir(this.releases)).sort();
  }

  private get pendingPath(): string {
    return join(this.dir, 'pending.json');
  }

  async pending(): Promise<PendingRequest | undefined> {
    const raw = await readJson(this.pendingPath);
    const parsed = raw === undefined ? undefined : pendingSchema.safeParse(raw);
    return parsed?.success ? parsed.data : undefined;
  }

  async savePending(pending: PendingRequest): Promise<void> {
    await writeFileAtomic(this.pendingPath, JSON.stringify(pending) + '\n', { mode: 0o600 });
  }

  async clearPending(): Promise<void> {
    await rm(this.pendingPath, { force: true });
  }

  private get statePath(): string {
    return join(this.dir, 'state.json');
  }

  async state(): Promise<CertificateState> {
    const raw = await readJson(this.statePath);
    const parsed = raw === undefined ? undefined : stateSchema.safeParse(raw);
    return parsed?.success ? parsed.data : { confirmed: null, lastHook: null };
  }

  async saveState(state: CertificateState): Promise<void> {
    await writeFileAtomic(this.statePath, JSON.stringify(state) + '\n', { mode: 0o600 });
  }

  private get caPath(): string {
    return join(this.dir, 'ca.pem');
  }

  async pinnedCa(): Promise<string | undefined> {
    try {
      return await readFile(this.caPath, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async pinCa(pem: string): Promise<void> {
    await writeFileAtomic(this.caPath, pem, { mode: 0o644 });
  }
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
