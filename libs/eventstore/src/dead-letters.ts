/** An event a consumer gave up on; kept so an admin can see why and retry it after a fix. */
export interface DeadLetter {
  /** The durable consumer or projection that failed (`routing`, `projection:agents`, …). */
  consumer: string;
  stream: string;
  sequence: number;
  subject: string;
  eventType: string | null;
  eventId: string | null;
  deliveries: number;
  error: string;
  /** The message as stored (JSON text), so it can be inspected even when it cannot be decoded. */
  payload: string;
}

export interface DeadLetterSink {
  record(letter: DeadLetter): Promise<void>;
  /** The event was handled after all (a retry after a fix). */
  resolve(consumer: string, sequence: number): Promise<void>;
}

/** Request subject on which a consumer retries one of its dead letters: `{ sequence }` → `{ ok }`. */
export function deadLetterRetrySubject(consumer: string): string {
  return `cmd.dead-letters.retry.${consumer}`;
}
