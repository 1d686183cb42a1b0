import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { stripControlCharacters } from '#contracts';
import { UsageError } from './command.js';

/** The local stack's API (deploy/local/stack.env `CL_API_PORT`). */
export const DEFAULT_API_URL = 'http://127.0.0.1:3000';

const RETRIES = 3;
const REQUEST_TIMEOUT_MS = 30_000;
/** Connections in a row an event stream may fail to open (or lose at once) before it gives up. */
const STREAM_RETRIES = 8;
const STREAM_PAUSE_MAX_MS = 5_000;
/** Two missed heartbeats of the API's 15 s: the connection is dead even if no error says so. */
const STREAM_SILENCE_MS = 45_000;

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

/** A line-oriented variant of `safeJson`: one value per line (`--json` of a stream). */
export function safeJsonLine(value: unknown): string {
  return JSON.stringify(value).replace(
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

/** One Server-Sent Event. */
export interface ServerEvent {
  event: string;
  data: string;
  id?: string;
}

/** Incremental parser of `text/event-stream` (https://html.spec.whatwg.org/#event-stream-interpretation). */
export class ServerEventParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private id?: string;

  push(text: string): ServerEvent[] {
    this.buffer += text;
    const events: ServerEvent[] = [];
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      // A lone \r at the end may be the first half of \r\n: wait for the next chunk.
      if (this.buffer[newline] === '\r' && newline === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, newline);
      this.buffer = this.buffer.slice(newline + (this.buffer.startsWith('\r\n', newline) ? 2 : 1));
      if (line === '') {
        if (this.data.length > 0 || this.event) {
          events.push({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
        }
        this.event = '';
        this.data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') this.event = value;
      else if (field === 'data') this.data.push(value);
      // The last event ID persists across events (it is what a reconnection resumes after).
      else if (field === 'id' && !value.includes('\0')) this.id = value;
    }
    return events;
  }
}

export interface EventStreamRequest {
  query?: Record<string, string | number | undefined>;
  /** Ends the stream (Ctrl-C): the generator returns, without an error. */
  signal?: AbortSignal;
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

  /**
   * A Server-Sent Events stream (`GET`), event by event, until the caller stops reading or `signal`
   * aborts. A dropped connection (an error, the server closing it, a silence of two heartbeats) is
   * opened again with `Last-Event-ID`, so nothing is repeated or missed; a refusal (4xx) is thrown, a 503
   * retried; it gives up after STREAM_RETRIES connections in a row that brought nothing.
   */
  async *events(path: string, options: EventStreamRequest = {}): AsyncGenerator<ServerEvent> {
    const url = new URL(`${this.baseUrl}/api/v1/${path}`);
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    let lastEventId: string | undefined;
    let failures = 0;
    let connections = 0;
    let lastProblem = '';
    while (!options.signal?.aborted) {
      if (failures >= STREAM_RETRIES) {
        throw new Error(`the stream from ${this.baseUrl} failed ${failures} times in a row: ${lastProblem}`);
      }
      // Never again at once: a server that closes each stream it opens is not asked in a tight loop.
      if (connections++ > 0) await pause(Math.max(1, failures), STREAM_PAUSE_MAX_MS, options.signal);
      if (options.signal?.aborted) return;
      const connection = new AbortController();
      const signal = options.signal
        ? AbortSignal.any([options.signal, connection.signal])
        : connection.signal;
      let silence: NodeJS.Timeout | undefined;
      const watch = () => {
        clearTimeout(silence);
        silence = setTimeout(() => connection.abort(new Error('no heartbeat')), STREAM_SILENCE_MS);
      };
      try {
        watch();
        const response = await fetch(url, {
          headers: {
            authorization: `Bearer ${this.token}`,
            accept: 'text/event-stream',
            ...(lastEventId === undefined ? {} : { 'last-event-id': lastEventId }),
          },
          signal,
        });
        if (!response.ok) {
          const text = await response.text();
          let body: unknown = {};
          try {
            body = text ? JSON.parse(text) : {};
          } catch {
            body = { error: 'bad_response', message: text.slice(0, 300) };
          }
          if (response.status !== 503) throw errorOf(response.status, body);
          failures++;
          lastProblem = errorOf(response.status, body).message;
          continue;
        }
        let received = false;
        // A new parser per connection: a half event of a dropped one is dropped with it.
        const parser = new ServerEventParser();
        const decoder = new TextDecoder();
        const reader = response.body!.getReader();
        for (;;) {
          const chunk = await reader.read();
          if (chunk.done) break;
          watch();
          for (const event of parser.push(decoder.decode(chunk.value, { stream: true }))) {
            if (!received) {
              received = true;
              failures = 0;
            }
            if (event.id !== undefined) lastEventId = event.id;
            yield event;
          }
        }
        // The server closed the stream without saying it ended (it stopped, or dropped us): again.
        if (!received) failures++;
        lastProblem = 'the server closed the stream';
      } catch (error) {
        if (error instanceof ApiError) throw error;
        if (options.signal?.aborted) return;
        failures++;
        // fetch's own error says only "fetch failed"; its cause says why (ECONNREFUSED …).
        const reason = (connection.signal.aborted ? connection.signal.reason : error) as Error | undefined;
        lastProblem = clean((reason?.cause as Error | undefined)?.message ?? reason?.message);
      } finally {
        clearTimeout(silence);
        // Stops reading the body when the caller stopped reading the events.
        connection.abort();
      }
    }
  }
}

/** 300 ms, 600 ms, 1.2 s … at most `maxMs`; cut short by `signal`. */
function pause(attempt: number, maxMs = Infinity, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.min(maxMs, 300 * 2 ** (attempt - 1)));
    signal?.addEventListener('abort', done, { once: true });
  });
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
