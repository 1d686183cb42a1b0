/**
 * What proxy-sync does through the Data Plane API, over the typed client: read and write the sections of
 * the layout (in one version-guarded transaction), read and change map entries at runtime, persist map
 * files, upload the front certificate, and tell reloads apart (the worker's pid).
 */
import { X509Certificate } from 'node:crypto';
import { DataplaneError, withTransaction, type DataplaneClient } from '#dataplane';
import {
  diffStructure,
  type BackendSection,
  type FrontendSection,
  type MapEntry,
  type MapName,
  type StructuralChange,
  type Structure,
} from '#haproxy';

/** The structure changed under us while planning inside the transaction: nothing left to do. */
class NothingToCommit extends Error {}

/** The Data Plane API answers `runtime/info` without a worker pid: HAProxy is not answering it. */
export class NoHaproxyWorkerError extends Error {
  constructor(reason: string) {
    super(`HAProxy is not answering: ${reason}`);
    this.name = 'NoHaproxyWorkerError';
  }
}

export interface StructuralOutcome {
  changes: StructuralChange[];
  /** The configuration version HAProxy runs after the call. */
  version: number;
  committed: boolean;
}

const asText = (body: string) => body;
/** Payload bytes per append: well under the 8,192 above which dataplaneapi replaces the map instead. */
const APPEND_PAYLOAD_BYTES = 6144;

export class DataplaneGateway {
  constructor(private readonly client: DataplaneClient) {}

  get api() {
    return this.client.api;
  }

  version(): Promise<number> {
    return this.client.getVersion();
  }

  /** The worker's pid: a different one means HAProxy reloaded or restarted (runtime-only state is gone). */
  async workerPid(): Promise<number> {
    const info = await this.client.getProcessInfo();
    const pid = info.info?.pid;
    if (typeof pid !== 'number') throw new NoHaproxyWorkerError(info.error ?? 'no pid');
    return pid;
  }

  async readStructure(transactionId?: string): Promise<{ frontends: unknown[]; backends: unknown[] }> {
    const query = transactionId
      ? { transaction_id: transactionId, full_section: true }
      : { full_section: true };
    const [frontends, backends] = await Promise.all([
      this.client.unwrap(
        this.client.api.GET('/services/haproxy/configuration/frontends', { params: { query } }),
      ),
      this.client.unwrap(
        this.client.api.GET('/services/haproxy/configuration/backends', { params: { query } }),
      ),
    ]);
    return { frontends: frontends.data, backends: backends.data };
  }

  /**
   * Commits the sections of `desired` that differ from HAProxy's, in one transaction at the current
   * version: plans again from what is read inside the transaction (someone may have changed it since the
   * pass observed it), writes every change with full_section, and commits with a synchronous reload. A
   * 409/406 (someone else committed) re-plans (withTransaction).
   */
  async commitStructure(desired: Structure): Promise<StructuralOutcome> {
    try {
      const outcome = await withTransaction(
        this.client,
        async (tx) => {
          const changes = diffStructure(desired, await this.readStructure(tx.id));
          if (changes.length === 0) throw new NothingToCommit();
          for (const change of changes) await this.write(change, tx.id);
          return changes;
        },
        { forceReload: true },
      );
      return {
        changes: outcome.result,
        version: outcome.configurationVersion ?? (await this.version()),
        committed: true,
      };
    } catch (error) {
      if (error instanceof NothingToCommit)
        return { changes: [], version: await this.version(), committed: false };
      throw error;
    }
  }

  private async write(change: StructuralChange, transactionId: string): Promise<void> {
    const query = { transaction_id: transactionId, full_section: true };
    if (change.section === 'frontend') {
      const body = change.body as FrontendSection;
      if (change.action === 'create') {
        await this.client.unwrap(
          this.client.api.POST('/services/haproxy/configuration/frontends', { params: { query }, body }),
        );
      } else {
        await this.client.unwrap(
          this.client.api.PUT('/services/haproxy/configuration/frontends/{name}', {
            params: { path: { name: change.name }, query },
            body,
          }),
        );
      }
      return;
    }
    const body = change.body as BackendSection;
    if (change.action === 'create') {
      await this.client.unwrap(
        this.client.api.POST('/services/haproxy/configuration/backends', { params: { query }, body }),
      );
    } else {
      await this.client.unwrap(
        this.client.api.PUT('/services/haproxy/configuration/backends/{name}', {
          params: { path: { name: change.name }, query },
          body,
        }),
      );
    }
  }

  /** Transactions left open (by a crashed proxy-sync): they never expire, so they are deleted. */
  async abandonOpenTransactions(): Promise<number> {
    const open = await this.client.listTransactions('in_progress');
    for (const transaction of open) {
      if (transaction.id) await this.client.deleteTransaction(transaction.id).catch(() => undefined);
    }
    return open.length;
  }

  // ------------------------------------------------------------------ maps

  async readMap(name: MapName): Promise<MapEntry[]> {
    const { data } = await this.client.unwrap(
      this.client.api.GET('/services/haproxy/runtime/maps/{parent_name}/entries', {
        params: { path: { parent_name: name } },
      }),
    );
    return data.map((entry) => ({ key: entry.key ?? '', value: entry.value ?? '' }));
  }

  /** The value HAProxy holds for a key, or undefined. */
  async readEntry(name: MapName, key: string): Promise<string | undefined> {
    try {
      const { data } = await this.client.unwrap(
        this.client.api.GET('/services/haproxy/runtime/maps/{parent_name}/entries/{id}', {
          params: { path: { parent_name: name, id: key } },
        }),
      );
      return data.value;
    } catch (error) {
      if (error instanceof DataplaneError && error.isNotFound) return undefined;
      throw error;
    }
  }

  async addEntry(name: MapName, entry: MapEntry): Promise<void> {
    try {
      await this.client.unwrap(
        this.client.api.POST('/services/haproxy/runtime/maps/{parent_name}/entries', {
          params: { path: { parent_name: name } },
          body: entry,
        }),
      );
    } catch (error) {
      // Already there (an earlier attempt, or a reload loaded it from the file): set the value instead.
      if (error instanceof DataplaneError && error.isConflict) await this.setEntry(name, entry);
      else throw error;
    }
  }

  async setEntry(name: MapName, entry: MapEntry): Promise<void> {
    await this.client.unwrap(
      this.client.api.PUT('/services/haproxy/runtime/maps/{parent_name}/entries/{id}', {
        params: { path: { parent_name: name, id: entry.key } },
        body: { value: entry.value },
      }),
    );
  }

  async deleteEntry(name: MapName, key: string): Promise<void> {
    try {
      await this.client.unwrap(
        this.client.api.DELETE('/services/haproxy/runtime/maps/{parent_name}/entries/{id}', {
          params: { path: { parent_name: name, id: key } },
        }),
      );
    } catch (error) {
      if (!(error instanceof DataplaneError && error.isNotFound)) throw error;
    }
  }

  /**
   * Replaces the whole runtime map at once. The API appends payloads up to 8 KiB and replaces the map
   * atomically (prepare/commit map) above that, so this is only called with a payload above 8 KiB.
   */
  async replaceMap(name: MapName, entries: MapEntry[]): Promise<void> {
    await this.client.unwrap(
      this.client.api.PUT('/services/haproxy/runtime/maps/{name}', {
        params: { path: { name } },
        body: entries,
      }),
    );
  }

  /**
   * Appends entries to the runtime map with `PUT /runtime/maps/{name}` in payloads well under 8 KiB:
   * dataplaneapi appends a payload up to 8,192 bytes with one `add map <map> <<payload` (above, it
   * replaces the whole map). Nothing is de-duplicated: only for keys known to be absent.
   */
  async appendEntries(name: MapName, entries: readonly MapEntry[]): Promise<void> {
    let chunk: MapEntry[] = [];
    let bytes = 0;
    const send = async () => {
      if (chunk.length === 0) return;
      const body = chunk;
      chunk = [];
      bytes = 0;
      await this.client.unwrap(
        this.client.api.PUT('/services/haproxy/runtime/maps/{name}', { params: { path: { name } }, body }),
      );
    };
    for (const entry of entries) {
      const line = Buffer.byteLength(entry.key) + Buffer.byteLength(entry.value) + 2;
      if (bytes + line > APPEND_PAYLOAD_BYTES) await send();
      chunk.push(entry);
      bytes += line;
    }
    await send();
  }

  async clearMap(name: MapName): Promise<void> {
    await this.client.unwrap(
      this.client.api.DELETE('/services/haproxy/runtime/maps/{name}', { params: { path: { name } } }),
    );
  }

  /** Writes the map file (what HAProxy loads at the next reload) without reloading. */
  async storeMapFile(name: MapName, text: string): Promise<void> {
    await this.client.unwrap(
      this.client.api.PUT('/services/haproxy/storage/maps/{name}', {
        params: { path: { name: `${name}.map` }, query: { skip_reload: true } },
        body: text,
        bodySerializer: asText,
        headers: { 'content-type': 'text/plain' },
      }),
    );
  }

  async readMapFile(name: MapName): Promise<string> {
    const { data } = await this.client.unwrap(
      this.client.api.GET('/services/haproxy/storage/maps/{name}', {
        params: { path: { name: `${name}.map` } },
        parseAs: 'text',
      }),
    );
    return data as unknown as string;
  }

  // ------------------------------------------------------------------ the CRL

  /**
   * Stores the CA's CRL as a general use file. A new file is written without a reload (nothing uses it
   * yet: the structure then names it in crl-file, and that change reloads); a changed one reloads at once,
   * since HAProxy 2.6 reads a server's crl-file only when it loads (a runtime `commit ssl crl-file` does
   * not reach server lines).
   */
  async ensureCrl(name: string, pem: string): Promise<'unchanged' | 'installed' | 'replaced'> {
    let stored: string | undefined;
    try {
      const { data } = await this.client.unwrap(
        this.client.api.GET('/services/haproxy/storage/general/{name}', {
          params: { path: { name } },
          parseAs: 'text',
        }),
      );
      stored = data as unknown as string;
    } catch (error) {
      if (!(error instanceof DataplaneError && error.isNotFound)) throw error;
    }
    if (stored === pem) return 'unchanged';
    const form = new FormData();
    form.append('file_upload', new Blob([pem], { type: 'application/octet-stream' }), name);
    if (stored === undefined) {
      await this.client.unwrap(
        this.client.api.POST('/services/haproxy/storage/general', {
          body: form as never,
          bodySerializer: ((body: unknown) => body) as never,
        }),
      );
      return 'installed';
    }
    await this.client.unwrap(
      this.client.api.PUT('/services/haproxy/storage/general/{name}', {
        params: { path: { name }, query: { force_reload: true } },
        body: form as never,
        bodySerializer: ((body: unknown) => body) as never,
      }),
    );
    return 'replaced';
  }

  // ------------------------------------------------------------------ the front certificate

  /**
   * Uploads the front's certificate when HAProxy's storage does not hold this one: the first upload
   * reloads (a bind that loads a directory picks a new file up only then), a replacement is swapped at
   * runtime. Returns what happened.
   */
  async ensureCertificate(name: string, pem: string): Promise<'unchanged' | 'installed' | 'replaced'> {
    const local = new X509Certificate(pem);
    let stored: { serial?: string; not_after?: string | null } | undefined;
    try {
      const { data } = await this.client.unwrap(
        this.client.api.GET('/services/haproxy/storage/ssl_certificates/{name}', {
          params: { path: { name } },
        }),
      );
      stored = data;
    } catch (error) {
      if (!(error instanceof DataplaneError && error.isNotFound)) throw error;
    }
    if (!stored) {
      const form = new FormData();
      form.append('file_upload', new Blob([pem], { type: 'application/x-pem-file' }), name);
      await this.client.unwrap(
        this.client.api.POST('/services/haproxy/storage/ssl_certificates', {
          params: { query: { force_reload: true } },
          body: form as never,
          bodySerializer: ((body: unknown) => body) as never,
        }),
      );
      return 'installed';
    }
    const sameSerial = (stored.serial ?? '').toUpperCase() === local.serialNumber.toUpperCase();
    const sameExpiry =
      stored.not_after !== undefined &&
      stored.not_after !== null &&
      new Date(stored.not_after).getTime() === new Date(local.validTo).getTime();
    if (sameSerial && sameExpiry) return 'unchanged';
    await this.client.unwrap(
      this.client.api.PUT('/services/haproxy/storage/ssl_certificates/{name}', {
        params: { path: { name } },
        body: pem,
        bodySerializer: asText,
        headers: { 'content-type': 'text/plain' },
      }),
    );
    return 'replaced';
  }
}
