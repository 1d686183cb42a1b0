import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { stripControlCharacters } from '#contracts';
import { UsageError } from './command.js';

/** The local stack's API (deploy/local/stack.env `CL_API_PORT`). */
export const DEFAULT_API_URL = 'http://127.0.0.1:3000';

const RETRIES = 3;
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * Text that came from the server, fit to print: no control characters (C0, DEL, C1: they could move the
 * cursor, retitle the terminal or hide what follows; newlines too, each field is printed on its line), no
 * bidirectional overrides, tabs as spaces.
 */
export function clean(text: unknown): string {
  return stripControlCharacters(String(text ?? ''))
    .replace(/[\u202a-\u202e\u2066-\u2069]/g, '')
    .replace(/\t/g, ' ');
}

/** JSON for machines: lossless, with the C1 controls JSON.stringify leaves raw escaped as well. */
export function safeJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(
    /[\u007f-\u009f]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** A refusal of the API: its message and the field it names, both cleaned for printing. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly apiMessage: string,
    readonly field: string | undefined,
    hint?: string,
  ) {
    super(
      `${apiMessage}${field === undefined ? '' : ` (field ${field}${hint ? `, ${hint}` : ''})`} [${status} ${code}]`,
    );
  }
}

export interface ApiAnswer<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

export interface ApiRequest {
  body?: unknown;
  /** A body sent as it is (an uploaded tarball) instead of JSON; a Blob, so it is resent whole on a retry. */
  raw?: { contentType: string; data: Blob };
  query?: Record<string, string | number | undefined>;
  /** Statuses answered as results instead of errors (e.g. 502 for a deployment that failed). */
  accept?: number[];
  /** How long this one request may take (a `?wait=` request takes as long as it waits). */
  timeoutMs?: number;
}

function tokenFrom(values: Record<string, string | boolean | undefined>): string {
  const file = values['token-file'];
  if (typeof file === 'string') {
    let token: string;
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (error) {
      throw new UsageError(`--token-file: cannot read ${file}: ${(error as Error).message}`);
    }
    if (!token) throw new UsageError(`--token-file: ${file} is empty`);
    return token;
  }
  const token = process.env.CL_ADMIN_TOKEN?.trim();
  if (!token) throw new UsageError('give the admin token in CL_ADMIN_TOKEN or with --token-file <file>');
  return token;
}

/** Options every API command takes. */
export const apiOptions = {
  'token-file': { type: 'string' },
  json: { type: 'boolean' },
} as const;

/**
 * The HTTP API as an admin (`CL_API_URL`, the token from `CL_ADMIN_TOKEN` or `--token-file`). One
 * Idempotency-Key per invocation of the CLI: every write of this run and each retry of it carries it, so a
 * request retried after a lost answer names the same app, secret version or deployment.
 */
export class ApiClient {
  readonly idempotencyKey = randomUUID();

  constructor(
    readonly baseUrl: string,
    private readonly token: string,
  ) {}

  static fromArgs(values: Record<string, string | boolean | undefined>): ApiClient {
    const raw = process.env.CL_API_URL?.trim() || DEFAULT_API_URL;
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new UsageError(`CL_API_URL: not a URL: ${raw}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new UsageError(`CL_API_URL: must be http(s): ${raw}`);
    }
    return new ApiClient(url.href.replace(/\/+$/, ''), tokenFrom(values));
  }

  async request<T = Record<string, unknown>>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    options: ApiRequest = {},
  ): Promise<ApiAnswer<T>> {
    const url = new URL(`${this.baseUrl}/api/v1/${path}`);
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.token}`,
      accept: 'application/json',
    };
    if (method !== 'GET') headers['idempotency-key'] = this.idempotencyKey;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    if (options.raw !== undefined) headers['content-type'] = options.raw.contentType;
    let lastError: unknown;
    for (let attempt = 1; attempt <= RETRIES; attempt++) {
      let response: Response;
      try {
        response = await fetch(url, {
          method,
          headers,
          body: options.raw?.data ?? (options.body === undefined ? undefined : JSON.stringify(options.body)),
          signal: AbortSignal.timeout(options.timeoutMs ?? REQUEST_TIMEOUT_MS),
        });
      } catch (error) {
        // No answer (refused, reset, timed out): the same request again, with the same key.
        lastError = error;
        if (attempt < RETRIES) await pause(attempt);
        continue;
      }
      const text = await response.text();
      let body: unknown = {};
      try {
        body = text ? JSON.parse(text) : {};
      } catch {
        body = { error: 'bad_response', message: text.slice(0, 300) };
      }
      if (response.status === 503 && attempt < RETRIES) {
        lastError = errorOf(response.status, body);
        await pause(attempt);
        continue;
      }
      if (response.ok || options.accept?.includes(response.status)) {
        return { status: response.status, body: body as T, headers: response.headers };
      }
      throw errorOf(response.status, body);
    }
    if (lastError instanceof ApiError) throw lastError;
    const cause = lastError instanceof Error ? (lastError.cause as Error | undefined) : undefined;
    throw new Error(
      `no answer from ${this.baseUrl} after ${RETRIES} attempts: ${clean(cause?.message ?? (lastError as Error)?.message)}`,
    );
  }
}

function pause(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 300 * 2 ** (attempt - 1)));
}

function errorOf(status: number, raw: unknown): ApiError {
  const body = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const field = typeof body.field === 'string' ? clean(body.field) : undefined;
  return new ApiError(status, clean(body.error ?? 'error'), clean(body.message ?? `HTTP ${status}`), field);
}

/** The same error, with the CLI option that sets the field it names. */
export function withHint(error: unknown, hintOf: (field: string) => string | undefined): unknown {
  if (!(error instanceof ApiError) || error.field === undefined) return error;
  const hint = hintOf(error.field);
  return hint ? new ApiError(error.status, error.code, error.apiMessage, error.field, hint) : error;
}
