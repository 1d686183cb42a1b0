import createClient, { type Client, type Middleware } from 'openapi-fetch';
import type { components, paths } from './generated/dataplane.js';

export type DataplanePaths = paths;
export type DataplaneSchemas = components['schemas'];
export type Transaction = DataplaneSchemas['transaction'];
export type Reload = DataplaneSchemas['reload'];
export type StickTableEntry = DataplaneSchemas['stick_table_entry'];
export type Frontend = DataplaneSchemas['frontend'];
export type Bind = DataplaneSchemas['bind'];
export type Backend = DataplaneSchemas['backend'];
export type Server = DataplaneSchemas['server'];
export type Acl = DataplaneSchemas['acl'];
export type BackendSwitchingRule = DataplaneSchemas['backend_switching_rule'];
export type TcpRequestRule = DataplaneSchemas['tcp_request_rule'];
export type HttpRequestRule = DataplaneSchemas['http_request_rule'];
export type MapEntry = DataplaneSchemas['map_entry'];
export type RuntimeServer = DataplaneSchemas['runtime_server'];
export type RuntimeAddServer = DataplaneSchemas['runtime_add_server'];
export type SslCertificate = DataplaneSchemas['ssl_certificate'];
export type ProcessInfo = DataplaneSchemas['process_info'];

/**
 * A non-2xx answer of the Data Plane API. `code` and `message` come from the `{code, message}` error body
 * (code falls back to the HTTP status when the body has none); `request` is the path that failed.
 */
export class DataplaneError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
    readonly configurationVersion: number | undefined,
    readonly request: string,
  ) {
    super(message);
    this.name = 'DataplaneError';
  }

  override toString(): string {
    return `DataplaneError: ${this.request} → ${this.status}: ${this.message}`;
  }

  /** Version moved or object already exists: re-read and re-plan. */
  get isConflict(): boolean {
    return this.status === 409;
  }
  /** A transaction that another commit made outdated (or that failed) cannot be committed. */
  get isNotAcceptable(): boolean {
    return this.status === 406;
  }
  get isNotFound(): boolean {
    return this.status === 404;
  }
  /** The credentials were refused: nothing can be done through this API until they are fixed. */
  get isUnauthorized(): boolean {
    return this.status === 401;
  }
}

/**
 * The Data Plane API answered, but HAProxy behind it did not: a 5xx about its runtime socket (refused,
 * missing or silent), as HAProxy stopped or restarting shows.
 */
export class HaproxyUnreachableError extends DataplaneError {
  constructor(...parts: ConstructorParameters<typeof DataplaneError>) {
    super(...parts);
    this.name = 'HaproxyUnreachableError';
  }
}

/**
 * No answer from the Data Plane API itself: the connection was refused or reset, or the call ran over its
 * timeout. The message is the underlying error's; that error is the `cause`.
 */
export class DataplaneUnreachableError extends Error {
  constructor(cause: Error) {
    super(cause.message, { cause });
    this.name = 'DataplaneUnreachableError';
  }
}

/**
 * What `fetch` and reading a body throw when there is no answer: a TypeError ("fetch failed"), an abort
 * or a timeout. Compared by name and message, not by class: a DOMException may come from another realm.
 */
function isNoAnswer(error: unknown): error is Error {
  if (error instanceof TypeError) return true;
  const { name, message } = (error ?? {}) as { name?: unknown; message?: unknown };
  return (
    typeof name === 'string' && typeof message === 'string' && /abort|timeout|fetch/i.test(name + message)
  );
}

/** The 5xx messages (dataplaneapi's and the emulator's) of a runtime socket that HAProxy does not serve. */
const RUNTIME_SOCKET_DOWN = /socket|ENOENT|ECONNREFUSED|no answer|not answering/i;

export interface DataplaneClientOptions {
  /** `http://host:port/v3` */
  baseUrl: string;
  username: string;
  password: string;
  /** Abort a request that takes longer than this (default 30 s; a forced reload can take seconds). */
  timeoutMs?: number;
  /** openapi-fetch middleware, e.g. to log or to validate requests and responses. */
  middleware?: Middleware[];
  fetch?: (input: Request) => Promise<Response>;
}

/** What a successful call returned, with the two headers that matter. */
export interface DataplaneResult<T> {
  data: T;
  status: number;
  /** `Configuration-Version` of the answer (the new version after a commit). */
  configurationVersion: number | undefined;
  /** `Reload-ID` when the change scheduled a reload. */
  reloadId: string | undefined;
}

type AnyFetchResult<D> = { data?: D; error?: unknown; response: Response };

function headerVersion(response: Response): number | undefined {
  const raw = response.headers.get('configuration-version');
  if (raw === null || !/^\d+$/.test(raw)) return undefined;
  return Number(raw);
}

function errorParts(status: number, error: unknown, fallback: string): { code: number; message: string } {
  if (error && typeof error === 'object') {
    const body = error as { code?: unknown; message?: unknown };
    return {
      code: typeof body.code === 'number' ? body.code : status,
      message: typeof body.message === 'string' ? body.message : JSON.stringify(error),
    };
  }
  if (typeof error === 'string' && error.length > 0) return { code: status, message: error };
  return { code: status, message: fallback };
}

/**
 * Typed client of the Data Plane API v3 (the subset in libs/dataplane/openapi.yaml).
 *
 * `api` is the openapi-fetch client for any operation of the document; `unwrap` turns its result into
 * data or a thrown `DataplaneError`. The helpers below cover the calls every caller needs.
 */
export class DataplaneClient {
  readonly api: Client<paths>;
  readonly baseUrl: string;

  constructor(options: DataplaneClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    const timeoutMs = options.timeoutMs ?? 30_000;
    const underlying = options.fetch ?? ((request: Request) => fetch(request));
    const authorization =
      'Basic ' + Buffer.from(`${options.username}:${options.password}`, 'utf8').toString('base64');
    this.api = createClient<paths>({
      baseUrl: this.baseUrl,
      headers: { Authorization: authorization },
      fetch: (request: Request) =>
        underlying(new Request(request, { signal: AbortSignal.timeout(timeoutMs) })),
    });
    for (const middleware of options.middleware ?? []) this.api.use(middleware);
  }

  /** `http://host:port/v3` for a dataplaneapi listening on host:port. */
  static url(host: string, port: number): string {
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}/v3`;
  }

  /**
   * Returns the data of a 2xx answer, or throws `DataplaneError` with the `{code, message}` body
   * (`HaproxyUnreachableError` when HAProxy behind the API does not answer), or `DataplaneUnreachableError`
   * when the API did not answer at all.
   */
  async unwrap<D>(pending: Promise<AnyFetchResult<D>>): Promise<DataplaneResult<D>> {
    let answer: AnyFetchResult<D>;
    try {
      answer = await pending;
    } catch (error) {
      throw isNoAnswer(error) ? new DataplaneUnreachableError(error) : error;
    }
    const { data, error, response } = answer;
    const configurationVersion = headerVersion(response);
    const request = `${response.url ? new URL(response.url).pathname : ''}`;
    if (!response.ok) {
      const { code, message } = errorParts(response.status, error, response.statusText);
      const Failure =
        response.status >= 500 && RUNTIME_SOCKET_DOWN.test(message)
          ? HaproxyUnreachableError
          : DataplaneError;
      throw new Failure(response.status, code, message, configurationVersion, request);
    }
    return {
      data: data as D,
      status: response.status,
      configurationVersion,
      reloadId: response.headers.get('reload-id') ?? undefined,
    };
  }

  /** The configuration version, or a transaction's version. */
  async getVersion(transactionId?: string): Promise<number> {
    const query = transactionId ? { transaction_id: transactionId } : {};
    const { data } = await this.unwrap(
      this.api.GET('/services/haproxy/configuration/version', { params: { query } }),
    );
    return data;
  }

  async startTransaction(version: number): Promise<Transaction> {
    const { data } = await this.unwrap(
      this.api.POST('/services/haproxy/transactions', { params: { query: { version } } }),
    );
    return data;
  }

  async getTransaction(id: string): Promise<Transaction> {
    const { data } = await this.unwrap(
      this.api.GET('/services/haproxy/transactions/{id}', { params: { path: { id } } }),
    );
    return data;
  }

  async listTransactions(status?: 'failed' | 'in_progress'): Promise<Transaction[]> {
    const { data } = await this.unwrap(
      this.api.GET('/services/haproxy/transactions', { params: { query: status ? { status } : {} } }),
    );
    return data;
  }

  /** Commits; 202 with a Reload-ID, or 200 once HAProxy reloaded when `forceReload`. */
  async commitTransaction(
    id: string,
    options: { forceReload?: boolean } = {},
  ): Promise<DataplaneResult<Transaction>> {
    const query = options.forceReload ? { force_reload: true } : {};
    return this.unwrap(
      this.api.PUT('/services/haproxy/transactions/{id}', { params: { path: { id }, query } }),
    );
  }

  async deleteTransaction(id: string): Promise<void> {
    await this.unwrap(this.api.DELETE('/services/haproxy/transactions/{id}', { params: { path: { id } } }));
  }

  async getReloads(): Promise<Reload[]> {
    const { data } = await this.unwrap(this.api.GET('/services/haproxy/reloads'));
    return data;
  }

  async getReload(id: string): Promise<Reload> {
    const { data } = await this.unwrap(
      this.api.GET('/services/haproxy/reloads/{id}', { params: { path: { id } } }),
    );
    return data;
  }

  /** `show info` of the current worker: its `pid` changes with every reload. */
  async getProcessInfo(): Promise<ProcessInfo> {
    const { data } = await this.unwrap(this.api.GET('/services/haproxy/runtime/info'));
    return data;
  }

  /** Entries of a stick table as HAProxy holds them (`show table`), or only the entry of `key`. */
  async getStickTableEntries(table: string, key?: string): Promise<StickTableEntry[]> {
    const { data } = await this.unwrap(
      this.api.GET('/services/haproxy/runtime/stick_tables/{parent_name}/entries', {
        params: { path: { parent_name: table }, query: key === undefined ? {} : { key } },
      }),
    );
    return data;
  }
}
