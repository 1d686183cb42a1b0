import { z } from 'zod';
import { AGGREGATE_TYPES } from './subjects.js';
import { isoTimestamp, label } from './fields.js';

export const actorSchema = z.strictObject({
  kind: z.enum(['admin', 'agent', 'service', 'system']),
  id: label(128),
});
export type Actor = z.infer<typeof actorSchema>;

/** The stored form of every event. `data` is checked against the event type's schema separately. */
export const envelopeSchema = z.strictObject({
  id: z.string().min(1).max(64),
  type: z.string().regex(/^[A-Z][A-Za-z0-9]{1,63}$/, 'must be an event type name in PascalCase'),
  schemaVersion: z.number().int().min(1),
  aggregate: z.strictObject({ type: z.enum(AGGREGATE_TYPES), id: z.string().min(1).max(253) }),
  occurredAt: isoTimestamp,
  actor: actorSchema,
  correlationId: z.string().min(1).max(128),
  causationId: z.string().min(1).max(128).nullable(),
  data: z.unknown(),
});

export interface EventEnvelope<TType extends string = string, TData = unknown> {
  id: string;
  type: TType;
  schemaVersion: number;
  aggregate: { type: z.infer<typeof envelopeSchema>['aggregate']['type']; id: string };
  occurredAt: string;
  actor: Actor;
  correlationId: string;
  causationId: string | null;
  data: TData;
}

/** An envelope as read back from the log, with its position. */
export interface StoredEvent<TType extends string = string, TData = unknown> extends EventEnvelope<
  TType,
  TData
> {
  /** Stream sequence: the global position in the log. */
  sequence: number;
  subject: string;
}

/** Who and why: the metadata every append carries. */
export interface EventContext {
  actor: Actor;
  correlationId: string;
  causationId?: string | null;
}
