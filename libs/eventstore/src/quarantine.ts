import { createHash } from 'node:crypto';
import { DomainError, UndecodableEventError, type EventData } from '#contracts';

/**
 * A message of the log that cannot be decoded, with where it is. The log cannot delete it, so the error
 * says how to set it aside: until an admin quarantines it, the record it sits on cannot be read.
 */
export class UndecodableLogEntryError extends DomainError {
  constructor(
    readonly sequence: number,
    readonly subject: string,
    readonly failure: string,
  ) {
    super(
      'internal',
      `the event at sequence ${sequence} on ${subject} cannot be decoded (${failure}); ` +
        `if it is damage, an admin sets it aside: cloudlunacy events quarantine ${sequence} --reason "…" ` +
        `(or POST /api/v1/events/${sequence}/quarantine)`,
    );
    this.name = 'UndecodableLogEntryError';
  }
}

/** The reason a decode failed, in one line. */
export function decodeFailure(error: unknown): string {
  if (error instanceof UndecodableEventError) return error.message;
  if (error instanceof SyntaxError) return `not JSON: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

export interface QuarantineCommand {
  sequence: number;
  reason: string;
}

/** What the store found at the sequence: nothing, a message that decodes, or one that does not. */
export type LogEntryState =
  | { kind: 'missing' }
  | { kind: 'decodable'; subject: string }
  | { kind: 'undecodable'; subject: string; payload: Uint8Array; error: string };

/**
 * Decides a quarantine: only a message that is there and cannot be decoded may be set aside (a good
 * event must never be hidden from the readers), and only once — a second quarantine changes nothing.
 */
export function decideQuarantine(
  alreadyQuarantined: boolean,
  entry: LogEntryState,
  command: QuarantineCommand,
): EventData<'EventQuarantined'> | null {
  if (alreadyQuarantined) return null;
  if (entry.kind === 'missing') {
    throw new DomainError('not_found', `no message at sequence ${command.sequence}`, 'sequence');
  }
  if (entry.kind === 'decodable') {
    throw new DomainError(
      'conflict',
      `the event at sequence ${command.sequence} on ${entry.subject} decodes: only a message that cannot be decoded may be quarantined`,
      'sequence',
    );
  }
  return {
    sequence: command.sequence,
    subject: entry.subject,
    payloadSha256: createHash('sha256').update(entry.payload).digest('hex'),
    error: entry.error.slice(0, 500),
    reason: command.reason,
  };
}
