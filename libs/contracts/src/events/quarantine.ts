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

export const quarantineEvents = [EventQuarantined] as const;
