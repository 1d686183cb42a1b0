import { X509Certificate } from 'node:crypto';
import { link, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { issuesOf } from '#contracts';
import { sha256Hex, syncDirectory, temporaryPathFor, writeFileAtomic, writeFileDurably } from '#pki-client';
import {
  CertificateAuthority,
  createCertificateAuthority,
  signingKeyOf,
  type CreateCaOptions,
} from './ca.js';
import { openPrivateKey, sealPrivateKey, type CaEncryptionKey } from './encryption.js';
import { CaStoreError } from './errors.js';

const FORMAT = 'cloudlunacy-ca';
const base64 = z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64');

/** `ca.json`: the CA certificate and its encrypted private key, one file so that it is created atomically. */
const caFileSchema = z
  .object({
    format: z.literal(FORMAT),
    version: z.literal(1),
    createdAt: z.string(),
    keyRotatedAt: z.string().optional(),
    fingerprint: z.string().regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 hex fingerprint'),
    certificate: z.string().startsWith('-----BEGIN CERTIFICATE-----'),
    privateKey: z
      .object({
        cipher: z.literal('aes-256-gcm'),
        kdf: z.literal('hkdf-sha256'),
        keyId: z.string().regex(/^[0-9a-f]{16}$/),
        salt: base64,
        iv: base64,
        tag: base64,
        ciphertext: base64,
      })
      .strict(),
  })
  .strict();
type CaFile = z.infer<typeof caFileSchema>;

/** Authenticated data of the encrypted key: binds it to its certificate and to this file format. */
const associatedData = (fingerprint: string) => `${FORMAT}/v1:${fingerprint}`;

export interface CaStoreOptions {
  /** The CA directory on persistent storage (created 0700). Back it up; keep the key file elsewhere. */
  dir: string;
  encryptionKey: CaEncryptionKey;
}

export interface OpenedCa {
  ca: CertificateAuthority;
  /** This call created the CA (the caller should record `CertificateAuthorityCreated`). */
  created: boolean;
  /** Another process created the CA while this one was generating its own; that one was discarded. */
  raced: boolean;
}

/** Serialises CRL-number allocation per file within this process. */
const crlNumberLocks = new Map<string, Promise<unknown>>();

/**
 * The CA on disk:
 *
 * - `ca.json` (0600): certificate PEM, its SHA-256 fingerprint and the private key sealed with AES-256-GCM
 *   (see encryption.ts). Created once, atomically: written to a temporary file, fsynced, then hard-linked to
 *   its name — `link(2)` fails if the name exists, so of two processes starting at once exactly one CA
 *   wins and the other process loads it. No lock file, hence no stale lock after a crash.
 * - `ca.pem` (0644): a public copy of the certificate for operators and tools; rewritten from ca.json.
 * - `crl-number` (0600): the last cRLNumber handed out.
 */
export class CaStore {
  readonly dir: string;
  readonly paths: { caFile: string; caPem: string; crlNumber: string };
  readonly #key: CaEncryptionKey;

  constructor(options: CaStoreOptions) {
    this.dir = options.dir;
    this.#key = options.encryptionKey;
    this.paths = {
      caFile: join(options.dir, 'ca.json'),
      caPem: join(options.dir, 'ca.pem'),
      crlNumber: join(options.dir, 'crl-number'),
    };
  }

  async exists(): Promise<boolean> {
    try {
      await readFile(this.paths.caFile);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
  }

  /** Loads the CA; CaStoreError `missing`, `corrupt`, `wrong-key` or `mismatch` says precisely what is wrong. */
  async load(): Promise<CertificateAuthority> {
    const path = this.paths.caFile;
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new CaStoreError(
          'missing',
          `there is no CA in ${this.dir} (ca.json is missing). The certificates service creates one on first start; ` +
            'if this installation already had a CA, restore ca.json from a backup instead: a new CA invalidates every issued certificate',
          path,
        );
      }
      throw new CaStoreError(
        'corrupt',
        `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`,
        path,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new CaStoreError(
        'corrupt',
        `${path} is not JSON: the file is damaged; restore it from a backup`,
        path,
      );
    }
    const parsed = caFileSchema.safeParse(json);
    if (!parsed.success) {
      const issue = issuesOf(parsed.error)[0];
      throw new CaStoreError(
        'corrupt',
        `${path} is not a CloudLunacy CA file: ${issue?.field} ${issue?.message}; restore it from a backup`,
        path,
      );
    }
    const file = parsed.data;
    let x509: X509Certificate;
    try {
      x509 = new X509Certificate(file.certificate);
    } catch {
      throw new CaStoreError(
        'corrupt',
        `the certificate in ${path} cannot be read; restore it from a backup`,
        path,
      );
    }
    if (sha256Hex(x509.raw) !== file.fingerprint) {
      throw new CaStoreError(
        'corrupt',
        `the certificate in ${path} does not match its recorded fingerprint`,
        path,
      );
    }
    const privateKey = openPrivateKey(file.privateKey, this.#key, associatedData(file.fingerprint), path);
    try {
      return CertificateAuthority.fromParts(file.certificate, privateKey);
    } catch (error) {
      throw new CaStoreError('mismatch', `${path}: ${(error as Error).message}`, path);
    }
  }

  /**
   * Loads the CA, or creates it when there is none. Safe to call from several processes at once: they
   * all end up with the same CA, and exactly one of them reports `created`.
   */
  async openOrCreate(options: CreateCaOptions): Promise<OpenedCa> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    if (await this.exists()) {
      const ca = await this.load();
      await this.writePublicCertificate(ca);
      return { ca, created: false, raced: false };
    }
    const fresh = await createCertificateAuthority(options);
    const temporary = temporaryPathFor(this.paths.caFile);
    let created = false;
    try {
      await writeFileDurably(temporary, this.serialise(fresh, new Date().toISOString()), 0o600);
      try {
        await link(temporary, this.paths.caFile);
        created = true;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'EEXIST') {
          throw new CaStoreError(
            'corrupt',
            `cannot create ${this.paths.caFile} (${code}): the CA directory must be on a local file system that supports hard links`,
            this.paths.caFile,
          );
        }
      }
    } finally {
      await rm(temporary, { force: true });
    }
    await syncDirectory(this.dir);
    // Read back what is on disk (ours or the winner's): proves the configured key opens it before use.
    const ca = await this.load();
    if (created && ca.fingerprint !== fresh.fingerprint)
      throw new CaStoreError(
        'corrupt',
        `${this.paths.caFile} changed while it was being created`,
        this.paths.caFile,
      );
    await this.writePublicCertificate(ca);
    return { ca, created, raced: !created };
  }

  /**
   * Re-encrypts the CA private key under `newKey` (rotation of the CA encryption key). The CA itself —
   * certificate, key pair, fingerprint — is unchanged. Atomic: ca.json is either the old or the new file.
   */
  async rewrap(newKey: CaEncryptionKey): Promise<CertificateAuthority> {
    const ca = await this.load();
    const current = JSON.parse(await readFile(this.paths.caFile, 'utf8')) as CaFile;
    await writeFileAtomic(
      this.paths.caFile,
      this.serialise(ca, current.createdAt, newKey, new Date().toISOString()),
      {
        mode: 0o600,
      },
    );
    return new CaStore({ dir: this.dir, encryptionKey: newKey }).load();
  }

  /**
   * The next cRLNumber: strictly greater than every number handed out before, and never below the current
   * Unix time in seconds, so numbers keep growing even if `crl-number` is lost or restored from an old backup.
   * One certificates service owns the store; within a process, calls are serialised.
   */
  async nextCrlNumber(now: Date = new Date()): Promise<bigint> {
    const path = this.paths.crlNumber;
    const previous = crlNumberLocks.get(path) ?? Promise.resolve();
    const next = previous.then(async () => {
      let last = 0n;
      try {
        const text = (await readFile(path, 'utf8')).trim();
        if (!/^\d{1,48}$/.test(text))
          throw new CaStoreError('corrupt', `${path} does not hold a number`, path);
        last = BigInt(text);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
      const floor = BigInt(Math.floor(now.getTime() / 1000));
      const number = last + 1n > floor ? last + 1n : floor;
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(path, `${number}\n`, { mode: 0o600 });
      return number;
    });
    crlNumberLocks.set(
      path,
      next.catch(() => undefined),
    );
    return next;
  }

  private serialise(
    ca: CertificateAuthority,
    createdAt: string,
    key = this.#key,
    keyRotatedAt?: string,
  ): string {
    const file: CaFile = {
      format: FORMAT,
      version: 1,
      createdAt,
      ...(keyRotatedAt ? { keyRotatedAt } : {}),
      fingerprint: ca.fingerprint,
      certificate: ca.certificatePem,
      privateKey: sealPrivateKey(signingKeyOf(ca), key, associatedData(ca.fingerprint)),
    };
    return JSON.stringify(file, null, 2) + '\n';
  }

  private async writePublicCertificate(ca: CertificateAuthority): Promise<void> {
    let current: string | undefined;
    try {
      current = await readFile(this.paths.caPem, 'utf8');
    } catch {
      current = undefined;
    }
    if (current !== ca.certificatePem)
      await writeFileAtomic(this.paths.caPem, ca.certificatePem, { mode: 0o644 });
  }
}
