/**
 * The managed haproxy.cfg and its transactions, with dataplaneapi's commit algorithm: version check,
 * `haproxy -c` on the transaction's file, write, bump `_version` by one, outdate the other transactions.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  cloneConfig,
  getVersion,
  parseConfig,
  serializeConfig,
  setVersion,
  type CfgDocument,
} from './cfg/document.js';
import { ModelError } from './cfg/objects.js';
import type { HaproxyControl } from './haproxy.js';

/** An error answer of the API: `{code: status, message}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export type TransactionStatus = 'failed' | 'outdated' | 'in_progress' | 'success';

export interface StoredTransaction {
  id: string;
  /** The configuration version the transaction started from. */
  version: number;
  status: TransactionStatus;
  document: CfgDocument;
}

/** Writes through a temporary file and a rename, so readers never see half a file. */
export async function atomicWrite(path: string, content: string | Buffer, mode?: number): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}-${randomUUID()}`;
  await writeFile(temporary, content, mode === undefined ? {} : { mode });
  await rename(temporary, path);
}

export class ConfigStore {
  private master!: CfgDocument;
  private readonly transactions = new Map<string, StoredTransaction>();
  private lock: Promise<unknown> = Promise.resolve();

  constructor(
    readonly configFile: string,
    readonly transactionDir: string,
    readonly maxOpenTransactions: number,
    private readonly haproxy: HaproxyControl,
  ) {}

  private get prefix(): string {
    return `${basename(this.configFile)}.`;
  }

  private fileOf(id: string, folder: '' | 'failed' | 'outdated' = ''): string {
    return join(this.transactionDir, folder, `${this.prefix}${id}`);
  }

  /** Reads haproxy.cfg and the in-progress transactions left in transaction_dir (they persist). */
  async init(): Promise<void> {
    this.master = parseConfig(await readFile(this.configFile, 'utf8'));
    await mkdir(join(this.transactionDir, 'failed'), { recursive: true });
    await mkdir(join(this.transactionDir, 'outdated'), { recursive: true });
    for (const entry of await readdir(this.transactionDir)) {
      if (!entry.startsWith(this.prefix) || entry.includes('.tmp-')) continue;
      const id = entry.slice(this.prefix.length);
      const document = parseConfig(await readFile(join(this.transactionDir, entry), 'utf8'));
      this.transactions.set(id, { id, version: getVersion(document), status: 'in_progress', document });
    }
  }

  get version(): number {
    return getVersion(this.master);
  }

  /** The master configuration as text (what is on disk). */
  text(): string {
    return serializeConfig(this.master);
  }

  /** Runs `work` after every earlier write finished: commits never interleave. */
  serialize<T>(work: () => Promise<T>): Promise<T> {
    const run = this.lock.then(work);
    this.lock = run.catch(() => undefined);
    return run;
  }

  /** Version shown in Configuration-Version: the transaction's when one in progress is named. */
  versionFor(transactionId: string | null | undefined): number {
    const transaction = transactionId ? this.transactions.get(transactionId) : undefined;
    return transaction && transaction.status === 'in_progress' ? transaction.version : this.version;
  }

  /** The document to read: the master, or an in-progress transaction (400 when unknown). */
  documentFor(transactionId: string | null | undefined): CfgDocument {
    if (!transactionId) return this.master;
    return this.openTransaction(transactionId).document;
  }

  private openTransaction(id: string): StoredTransaction {
    const transaction = this.transactions.get(id);
    if (!transaction || transaction.status !== 'in_progress') {
      throw new ApiError(400, `transaction does not exist: ${id}`);
    }
    return transaction;
  }

  // ------------------------------------------------------------------------------ transactions

  list(status?: string): StoredTransaction[] {
    return [...this.transactions.values()].filter((transaction) => !status || transaction.status === status);
  }

  get(id: string): StoredTransaction {
    const transaction = this.transactions.get(id);
    if (!transaction) throw new ApiError(404, `transaction ${id} does not exist`);
    return transaction;
  }

  async start(version: number): Promise<StoredTransaction> {
    return this.serialize(async () => {
      if (version !== this.version) {
        throw new ApiError(
          409,
          `version mismatch: version in configuration file is ${this.version}, given version is ${version}`,
        );
      }
      const open = this.list('in_progress').length;
      if (open >= this.maxOpenTransactions) {
        throw new ApiError(
          429,
          `cannot start a new transaction, reached the maximum amount of ${this.maxOpenTransactions} active transactions available`,
        );
      }
      const transaction: StoredTransaction = {
        id: randomUUID(),
        version,
        status: 'in_progress',
        document: cloneConfig(this.master),
      };
      await atomicWrite(this.fileOf(transaction.id), serializeConfig(transaction.document));
      this.transactions.set(transaction.id, transaction);
      return transaction;
    });
  }

  async delete(id: string): Promise<void> {
    const transaction = this.get(id);
    this.transactions.delete(id);
    const folder =
      transaction.status === 'failed' ? 'failed' : transaction.status === 'outdated' ? 'outdated' : '';
    await rm(this.fileOf(id, folder), { force: true });
  }

  /** Applies an edit inside a transaction and saves the transaction's file. */
  async edit<T>(id: string, edit: (document: CfgDocument) => T): Promise<T> {
    return this.serialize(async () => {
      const transaction = this.openTransaction(id);
      const working = cloneConfig(transaction.document);
      const result = edit(working);
      transaction.document = working;
      await atomicWrite(this.fileOf(id), serializeConfig(working));
      return result;
    });
  }

  private async move(transaction: StoredTransaction, status: 'failed' | 'outdated'): Promise<void> {
    transaction.status = status;
    await rename(this.fileOf(transaction.id), this.fileOf(transaction.id, status)).catch(() => undefined);
  }

  /**
   * Checks, writes and bumps: the part of a commit shared by transactions and `?version=` calls.
   * On a `haproxy -c` failure the master stays untouched and the caller gets 400.
   */
  private async apply(transactionId: string, document: CfgDocument, startedFrom: number): Promise<number> {
    const next = cloneConfig(document);
    setVersion(next, this.version + 1);
    const text = serializeConfig(next);
    const candidate = this.fileOf(transactionId);
    await atomicWrite(candidate, text);
    const check = await this.haproxy.check(candidate);
    if (!check.ok) {
      throw new ApiError(
        400,
        `validation error: exit status 1: err transactionId=${transactionId} \n${check.alerts}`,
      );
    }
    await atomicWrite(this.configFile, text);
    await rm(candidate, { force: true });
    this.master = next;
    for (const other of this.transactions.values()) {
      if (other.id !== transactionId && other.status === 'in_progress' && other.version <= startedFrom) {
        await this.move(other, 'outdated');
      }
    }
    return this.version;
  }

  /** Commits a transaction (dataplaneapi's order: 404, 406, 409, haproxy -c → 400, write). */
  async commit(id: string): Promise<{ transaction: StoredTransaction; version: number }> {
    return this.serialize(async () => {
      const transaction = this.get(id);
      if (transaction.status === 'outdated' || transaction.status === 'failed') {
        throw new ApiError(406, `transaction ${id} is ${transaction.status} and cannot be committed`);
      }
      if (transaction.status !== 'in_progress') throw new ApiError(404, `transaction ${id} does not exist`);
      if (transaction.version !== this.version) {
        await this.move(transaction, 'outdated');
        throw new ApiError(
          409,
          `version mismatch, transaction version: ${transaction.version}, configured version: ${this.version}`,
        );
      }
      try {
        const version = await this.apply(id, transaction.document, transaction.version);
        transaction.status = 'success';
        this.transactions.delete(id);
        return { transaction, version };
      } catch (error) {
        if (error instanceof ApiError && error.status === 400) await this.move(transaction, 'failed');
        throw error;
      }
    });
  }

  /**
   * dataplaneapi's inotify watcher: haproxy.cfg changed on disk behind the API's back (a hand edit). The
   * file is read again, its version goes up by one and it is saved; HAProxy is not reloaded. A change to
   * the text the API itself wrote last (or to `ignore`, the last-known-good copy a failed reload puts
   * back, whose md5 header dataplaneapi would find consistent) is not an edit. Returns the new version.
   */
  async adoptExternalEdit(ignore?: string): Promise<number | undefined> {
    return this.serialize(async () => {
      const disk = await readFile(this.configFile, 'utf8').catch(() => undefined);
      if (disk === undefined || disk === this.text() || disk === ignore) return undefined;
      const document = parseConfig(disk);
      setVersion(document, getVersion(document) + 1);
      await atomicWrite(this.configFile, serializeConfig(document));
      this.master = document;
      return this.version;
    });
  }

  /** A `?version=N` call: an implicit transaction holding one edit, committed at once. */
  async implicit<T>(
    version: number,
    edit: (document: CfgDocument) => T,
  ): Promise<{ result: T; version: number }> {
    return this.serialize(async () => {
      if (version !== this.version) {
        throw new ApiError(
          409,
          `version mismatch: version in configuration file is ${this.version}, given version is ${version}`,
        );
      }
      const working = cloneConfig(this.master);
      const result = edit(working);
      const id = randomUUID();
      try {
        return { result, version: await this.apply(id, working, version) };
      } finally {
        await rm(this.fileOf(id), { force: true });
      }
    });
  }
}

/** Maps model errors to API errors. */
export function asApiError(error: unknown): ApiError | undefined {
  if (error instanceof ApiError) return error;
  if (error instanceof ModelError) return new ApiError(error.status, error.message);
  return undefined;
}
