/**
 * What every group of operations shares: the request a handler gets, the reply it gives, the parts of the
 * emulator it works with, and the two ways a configuration object is used (read from the document a request
 * names; written inside a transaction or as an implicit one, with dataplaneapi's reload rules).
 */
import { access } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import type { Logger } from '#platform';
import type { CfgDocument } from '../cfg/document.js';
import type { EmulatorConfig } from '../config.js';
import type { HaproxyControl } from '../haproxy.js';
import type { MatchedOperation } from '../openapi.js';
import { ReloadFailedError, type ReloadAgent } from '../reloads.js';
import { ApiError, type ConfigStore } from '../store.js';

/** A request that passed authentication and validation against the OpenAPI document. */
export interface RequestContext {
  matched: MatchedOperation;
  path: Record<string, string>;
  query: Record<string, unknown>;
  rawQuery: URLSearchParams;
  body: unknown;
  rawBody: Buffer;
  headers: IncomingMessage['headers'];
}

export interface Reply {
  status: number;
  body?: unknown;
  raw?: { data: string | Buffer; contentType: string };
  headers?: Record<string, string>;
}

/** The emulator's parts a handler works with. */
export interface EmulatorParts {
  readonly config: EmulatorConfig;
  readonly haproxy: HaproxyControl;
  readonly store: ConfigStore;
  readonly reloads: ReloadAgent;
  readonly logger: Logger;
}

export type Handler = (emulator: EmulatorParts, context: RequestContext) => Promise<Reply>;

/** Handlers by operationId. */
export type Operations = Record<string, Handler>;

/** Reads the document the request names (a transaction's or the master). */
export function readConfiguration<T>(
  emulator: EmulatorParts,
  context: RequestContext,
  reader: (document: CfgDocument) => T,
): Reply {
  const document = emulator.store.documentFor(context.query.transaction_id as string | undefined);
  return { status: 200, body: reader(document) };
}

/**
 * A configuration change: inside a transaction (202), or as an implicit transaction on `version`
 * (202 + Reload-ID, or `forcedStatus` after a synchronous reload with force_reload). `runtime` may
 * apply the change to the running HAProxy instead of a reload (dataplaneapi's server shortcuts).
 */
export async function writeConfiguration(
  emulator: EmulatorParts,
  context: RequestContext,
  forcedStatus: number,
  edit: (document: CfgDocument) => unknown,
  runtime?: {
    before?: (document: CfgDocument) => unknown;
    apply: (result: unknown, before: unknown) => Promise<Reply | undefined>;
  },
): Promise<Reply> {
  const transactionId = context.query.transaction_id as string | undefined;
  const version = context.query.version as number | undefined;
  const force = context.query.force_reload === true;
  if (transactionId && force) {
    throw new ApiError(400, 'Both force_reload and transaction specified, specify only one');
  }
  if (transactionId && version !== undefined) {
    throw new ApiError(400, 'both version and transaction specified, specify only one');
  }
  if (!transactionId && version === undefined) {
    throw new ApiError(400, 'version or transaction not specified, specify only one');
  }
  if (transactionId) {
    const result = await emulator.store.edit(transactionId, edit);
    return { status: 202, body: result ?? undefined };
  }
  const before = runtime?.before?.(emulator.store.documentFor(undefined));
  const { result } = await emulator.store.implicit(version as number, edit);
  if (force) {
    await forceReload(emulator);
    return { status: forcedStatus, body: forcedStatus === 204 ? undefined : (result ?? undefined) };
  }
  if (runtime) {
    const shortcut = await runtime.apply(result, before);
    if (shortcut) return shortcut;
  }
  return { status: 202, body: result ?? undefined, headers: { 'Reload-ID': emulator.reloads.reload() } };
}

/** force_reload: reloads now; a reload HAProxy refuses is the client's 400. */
export async function forceReload(emulator: EmulatorParts): Promise<void> {
  try {
    await emulator.reloads.forceReload();
  } catch (error) {
    if (error instanceof ReloadFailedError) throw new ApiError(400, error.message);
    throw error;
  }
}

export async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
