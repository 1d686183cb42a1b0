import { DataplaneClient, DataplaneError, type DataplaneResult, type Transaction } from './client.js';

/** What the callback of `withTransaction` works in. */
export interface TransactionContext {
  /** Pass as `transaction_id` to every edit. */
  id: string;
  /** The configuration version the transaction started from: plan against this state. */
  version: number;
  /** 1 on the first try; higher when the callback runs again after a conflict. */
  attempt: number;
  client: DataplaneClient;
}

export interface WithTransactionOptions {
  /** Tries before giving up on conflicts (default 5). */
  maxAttempts?: number;
  /** Commit with `force_reload=true` (200 once HAProxy reloaded) instead of waiting for reload_delay. */
  forceReload?: boolean;
  /** Pause before a retry, multiplied by the attempt number, plus jitter (default 20 ms). */
  retryDelayMs?: number;
}

export interface TransactionOutcome<T> {
  /** What the callback returned on the attempt that committed. */
  result: T;
  transaction: Transaction;
  /** The configuration version after the commit. */
  configurationVersion: number | undefined;
  /** The reload that applies the commit (absent with forceReload). */
  reloadId: string | undefined;
  /** 202 (reload scheduled) or 200 (forced reload done). */
  status: number;
  attempts: number;
}

/** Conflicts that a fresh plan can resolve: the version moved (409) or the transaction became outdated (406). */
export function isReplannable(error: unknown): error is DataplaneError {
  return error instanceof DataplaneError && (error.status === 409 || error.status === 406);
}

/**
 * Runs `work` inside a Data Plane API transaction and commits it.
 *
 * Reads the current version, starts a transaction on it, runs `work`, commits. The transaction is deleted
 * whenever anything fails (they never expire by themselves). When the version moved (409) or the
 * transaction was outdated by another commit (406), `work` runs again on a new transaction at the fresh
 * version, up to `maxAttempts` times; so `work` must plan from what it reads inside the transaction.
 */
export async function withTransaction<T>(
  client: DataplaneClient,
  work: (tx: TransactionContext) => Promise<T>,
  options: WithTransactionOptions = {},
): Promise<TransactionOutcome<T>> {
  const maxAttempts = Math.max(1, options.maxAttempts ?? 5);
  const retryDelayMs = options.retryDelayMs ?? 20;
  let lastError: unknown;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (attempt > 1) {
      await new Promise((resolve) => setTimeout(resolve, retryDelayMs * attempt * (0.5 + Math.random())));
    }
    let transaction: Transaction;
    try {
      const version = await client.getVersion();
      transaction = await client.startTransaction(version);
    } catch (error) {
      lastError = error;
      if (isReplannable(error)) continue;
      throw error;
    }
    const id = transaction.id ?? '';
    try {
      const result = await work({ id, version: transaction._version ?? 0, attempt, client });
      const committed: DataplaneResult<Transaction> = await client.commitTransaction(id, {
        forceReload: options.forceReload,
      });
      return {
        result,
        transaction: committed.data,
        configurationVersion: committed.configurationVersion,
        reloadId: committed.reloadId,
        status: committed.status,
        attempts: attempt,
      };
    } catch (error) {
      lastError = error;
      // A committed, failed or outdated transaction may already be gone (404): nothing left to clean.
      await client.deleteTransaction(id).catch(() => undefined);
      if (isReplannable(error)) continue;
      throw error;
    }
  }
  throw lastError;
}
