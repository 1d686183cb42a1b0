import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '#platform';

/**
 * Whether a database error is about the database being unreachable or busy (retry the whole batch
 * later) rather than about the event (a poison event, to be isolated and dead-lettered).
 */
export function isTransientDatabaseError(error: unknown): boolean {
  const candidate = error as
    { code?: unknown; driverError?: { code?: unknown }; message?: unknown } | undefined;
  const code = String(candidate?.driverError?.code ?? candidate?.code ?? '');
  // SQLSTATE classes: 08 connection, 53 insufficient resources, 57P admin/crash shutdown, 40 serialization/deadlock.
  if (/^(08|53|57P|40001|40P01)/.test(code)) return true;
  if (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENOTFOUND)$/.test(code)) return true;
  const message = String(candidate?.message ?? '');
  return /Connection terminated|connection is closed|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(
    message,
  );
}

export interface UnavailableRetry {
  /** What is retried, for the log. */
  what: string;
  /** Delays between attempts (the last one repeats). */
  backoffMs: readonly number[];
  logger: Logger;
  /** Once aborted, the next failure propagates instead of being retried. */
  signal?: AbortSignal;
}

/** Retries `work` while the database is unreachable; other errors propagate. */
export async function retryWhileUnavailable(
  work: () => Promise<void>,
  retry: UnavailableRetry,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await work();
      return;
    } catch (error) {
      if (!isTransientDatabaseError(error) || retry.signal?.aborted) throw error;
      const delay = retry.backoffMs[Math.min(attempt - 1, retry.backoffMs.length - 1)] ?? 1_000;
      retry.logger.warn('database unavailable; retrying', {
        what: retry.what,
        attempt,
        retryInMs: delay,
        error,
      });
      await sleep(delay);
    }
  }
}
