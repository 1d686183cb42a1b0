import type { Logger } from './logger.js';

/**
 * Runs `stop` once on SIGINT or SIGTERM, then exits. A second signal while stopping exits at once, so
 * an operator is never stuck behind a hung shutdown.
 */
export function stopOnSignals(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn('second signal while stopping; exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    logger.info('stopping', { signal });
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error('stop failed', { error });
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', handle);
  process.once('SIGTERM', handle);
}

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'EAI_AGAIN',
  // PostgreSQL: cannot connect now (starting up, shutting down), too many connections.
  '57P03',
  '53300',
  // nats.js
  'TIMEOUT',
  'CONNECTION_REFUSED',
  'DISCONNECT',
  '503',
]);
const TRANSIENT_MESSAGE =
  /timeout|timed out|connection (refused|lost|closed|terminated|reset)|no responders|no subscribers listening|jetstream not enabled|the database system is (starting up|shutting down)|too many clients|econnrefused|etimedout/i;

/**
 * Whether an error is the broker or the database not being there yet (or for a moment), as opposed to a
 * mistake that waiting does not fix (bad config, bad credentials, pending migrations).
 */
export function isTransient(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    const { code, name, message, cause } = current as {
      code?: unknown;
      name?: unknown;
      message?: unknown;
      cause?: unknown;
    };
    if (typeof code === 'string' && TRANSIENT_CODES.has(code.toUpperCase())) return true;
    if (name === 'TimeoutError') return true;
    const text = typeof current === 'string' ? current : typeof message === 'string' ? message : '';
    if (TRANSIENT_MESSAGE.test(text)) return true;
    // An AggregateError (several addresses refused) is transient if its parts are.
    const errors = (current as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.length > 0 && errors.every((part) => isTransient(part))) return true;
    current = cause;
  }
  return false;
}

export interface RetryOptions {
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Gives up after this many attempts (default: never). */
  maxAttempts?: number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Runs a start-up step until it succeeds, while it fails for a transient reason: a service started
 * before its broker or database, or one whose request timed out on a loaded machine, waits and says
 * what it waits for instead of exiting. Any other error is thrown at once.
 */
export async function retryWhileTransient<T>(
  what: string,
  step: () => Promise<T>,
  logger: Logger,
  { initialDelayMs = 250, maxDelayMs = 10_000, maxAttempts = Infinity, sleep }: RetryOptions = {},
): Promise<T> {
  const wait = sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (error) {
      if (!isTransient(error) || attempt >= maxAttempts) throw error;
      const delayMs = Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1));
      const reason = error instanceof Error ? error.message : String(error);
      logger.warn(`waiting for ${what}`, { attempt, retryInMs: delayMs, reason });
      await wait(delayMs);
    }
  }
}
