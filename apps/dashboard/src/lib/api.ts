/**
 * The API client: every request carries the session's bearer token; errors become ApiError with the
 * API's own `{ error, message, field? }`. A 401 ends the session (the token expired or was revoked).
 * The JSON shapes are those of apps/api (the dashboard reads only the API).
 */
import type { DeploymentStatus, RouteKind, RouteStatus } from '#contracts';

export const API_BASE = '/api/v1';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly body?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The endpoint does not exist on this API (Nest's own 404), as opposed to a missing resource. */
  get missingEndpoint(): boolean {
    return this.status === 404 && this.message === 'no such route';
  }
}

type Query = Record<string, string | number | boolean | undefined | null>;

interface RequestOptions {
  query?: Query;
  body?: unknown;
  signal?: AbortSignal;
  idempotencyKey?: string;
}

let currentToken: string | null = null;
let onUnauthorized: (message: string) => void = () => undefined;

/** Set by the session provider: the token to send, and what to do when the API refuses it. */
export function configureApi(token: string | null, unauthorized: (message: string) => void): void {
  currentToken = token;
  onUnauthorized = unauthorized;
}

export function currentBearer(): string | null {
  return currentToken;
}

export function pathWithQuery(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== '') params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/** A request with an explicit token (sign-in checks a token before it becomes the session's). */
export async function apiRequest<T>(
  method: string,
  path: string,
  options: RequestOptions = {},
  token: string | null = currentToken,
): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (options.idempotencyKey) headers['Idempotency-Key'] = options.idempotencyKey;
  let response: Response;
  try {
    response = await fetch(API_BASE + pathWithQuery(path, options.query), {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (error) {
    if ((error as Error).name === 'AbortError') throw error;
    throw new ApiError(
      0,
      'network',
      'The API did not answer: check the network and that the API is running.',
    );
  }
  const text = await response.text();
  let body: unknown = undefined;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  if (response.ok) return body as T;
  const error = body as { error?: string; message?: string; field?: string } | undefined;
  const apiError = new ApiError(
    response.status,
    error?.error ?? 'error',
    error?.message ?? `The API answered ${response.status} ${response.statusText}.`,
    error?.field,
    body,
  );
  if (response.status === 401 && token !== null && token === currentToken) onUnauthorized(apiError.message);
  throw apiError;
}

export const api = {
  get: <T>(path: string, query?: Query, signal?: AbortSignal) =>
    apiRequest<T>('GET', path, { query, signal }),
  post: <T>(path: string, body?: unknown, options: Omit<RequestOptions, 'body'> = {}) =>
    apiRequest<T>('POST', path, { ...options, body: body ?? {} }),
  patch: <T>(path: string, body: unknown, options: Omit<RequestOptions, 'body'> = {}) =>
    apiRequest<T>('PATCH', path, { ...options, body }),
  delete: <T>(path: string, body?: unknown, options: Omit<RequestOptions, 'body'> = {}) =>
    apiRequest<T>('DELETE', path, { ...options, body: body ?? {} }),
};

/**
 * A fresh `Idempotency-Key` for each submission, so that a request sent twice on its way appends once.
 * Made with getRandomValues, which (unlike randomUUID) also works on a page served over plain http.
 */
export function newIdempotencyKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `dashboard-${Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('')}`;
}

/** A readable sentence for any error, naming the field when the API named one. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 0) return error.message;
    const field = error.field ? ` (field: ${error.field})` : '';
    const what =
      error.status === 403
        ? 'Not allowed'
        : error.status === 404
          ? 'Not found'
          : error.status === 409
            ? 'Conflict'
            : error.status === 503
              ? 'Unavailable'
              : error.status >= 500
                ? 'The API failed'
                : error.status === 400
                  ? 'Invalid input'
                  : `Error ${error.status}`;
    return `${what}: ${error.message}${field}`;
  }
  return error instanceof Error ? error.message : String(error);
}

// ---- shapes of the API's answers ----
// The API's views, the projector's answers among them, are imported from #contracts (type-only: nothing
// of it reaches the bundle). Declared here: the values the forms list.

export const ROUTE_KINDS: RouteKind[] = ['http', 'tls-sni'];
export const ROUTE_STATUSES: RouteStatus[] = ['pending', 'active', 'failed', 'removed'];

/** A deployment that ended: its log stream ends too, and nothing can be cancelled. */
export const FINISHED_DEPLOYMENT_STATUSES: DeploymentStatus[] = [
  'succeeded',
  'failed',
  'cancelled',
  'abandoned',
];
/** Where a cancel is still taken: after `verified` only success can follow (the API answers 409). */
export const CANCELLABLE_DEPLOYMENT_STATUSES: DeploymentStatus[] = [
  'requested',
  'claimed',
  'fetched',
  'built',
  'started',
  'healthy',
  'switched',
];

export { AGGREGATE_TYPES } from '../../../../libs/contracts/src/subjects';
export const ACTOR_KINDS = ['admin', 'agent', 'service', 'system'];

export const REVOCATION_REASONS = [
  'unspecified',
  'keyCompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'privilegeWithdrawn',
];

export interface Capabilities {
  endpoints: string[];
}
