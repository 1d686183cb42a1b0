import { z } from 'zod';
import { defineEvent } from '../registry.js';
import { label } from '../fields.js';

/**
 * A message of the log that cannot be decoded was set aside by an admin (aggregate `quarantine`, id = its
 * stream sequence). The log cannot delete it; from now on every reader skips that sequence, so the record
 * it sits on works again. The digest says which bytes were judged, the reason why.
 */
export const EventQuarantined = defineEvent({
  type: 'EventQuarantined',
  aggregate: 'quarantine',
  version: 1,
  schema: z.strictObject({
    sequence: z.number().int().min(1),
    subject: z.string().min(1).max(512),
    payloadSha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be a hex SHA-256 digest'),
    /** Why it could not be decoded, as the reader said it. */
    error: z.string().max(500),
    reason: label(200),
  }),
});

/**
 * An admin dismissed dead letters of one message (aggregate `dead-letter`, id = its stream sequence): the
 * consumers named will not handle it, and nobody is asked to look at it again. The message stays in the
 * log; only the waiting ends, with a name and a reason.
 */
export const DeadLettersDismissed = defineEvent({
  type: 'DeadLettersDismissed',
  aggregate: 'dead-letter',
  version: 1,
  schema: z.strictObject({
    stream: z.string().min(1).max(64),
    sequence: z.number().int().min(1),
    /** The consumers whose dead letters of this message were dismissed. */
    consumers: z.array(z.string().min(1).max(200)).min(1).max(100),
    reason: label(200),
  }),
});

export const quarantineEvents = [EventQuarantined, DeadLettersDismissed] as const;
