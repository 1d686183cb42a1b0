import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The correlation id of the work in progress: an HTTP request's, or a command's it received. Everything
 * the work does asynchronously sees it — commands it sends, events it appends, lines it logs — without
 * passing it through every call.
 */
const storage = new AsyncLocalStorage<string>();

export function withCorrelation<T>(correlationId: string, work: () => T): T {
  return storage.run(correlationId, work);
}

export function currentCorrelationId(): string | undefined {
  return storage.getStore();
}

/** A correlation id a client or a peer chose is kept if it is short and plain; anything else is not. */
export const ACCEPTABLE_CORRELATION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
