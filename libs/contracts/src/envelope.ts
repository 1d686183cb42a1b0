import { z } from 'zod';
import { regexes } from 'zod/v4/core';
import { AGGREGATE_TYPES } from './subjects.js';
import { hasControlCharacter, isoTimestamp, label } from './fields.js';

const ACTOR_KINDS = ['admin', 'agent', 'service', 'system'] as const;
const EVENT_TYPE_NAME = /^[A-Z][A-Za-z0-9]{1,63}$/;

export const actorSchema = z.strictObject({
  kind: z.enum(ACTOR_KINDS),
  id: label(128),
});
export type Actor = z.infer<typeof actorSchema>;

/** The stored form of every event. `data` is checked against the event type's schema separately. */
export const envelopeSchema = z.strictObject({
  id: z.string().min(1).max(64),
  type: z.string().regex(EVENT_TYPE_NAME, 'must be an event type name in PascalCase'),
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

// The fast check below mirrors envelopeSchema field by field; envelope.spec.ts holds them to agreement.
const ENVELOPE_KEYS = new Set(Object.keys(envelopeSchema.shape));
const ISO_TIMESTAMP = regexes.datetime({ offset: true, local: false, precision: undefined });
const aggregateTypes = new Set<string>(AGGREGATE_TYPES);
const actorKinds = new Set<string>(ACTOR_KINDS);

const isText = (value: unknown, max: number): value is string =>
  typeof value === 'string' && value.length >= 1 && value.length <= max;

/** A plain object whose own keys are all in `allowed` (a strict object's rule). */
function isStrictRecord(value: unknown, allowed: ReadonlySet<string>): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  for (const key in value) if (!allowed.has(key)) return false;
  return true;
}
const AGGREGATE_KEYS = new Set(['type', 'id']);
const ACTOR_KEYS = new Set(['kind', 'id']);

/**
 * True when `raw` certainly matches envelopeSchema, checked without building a copy: reading the log
 * decodes every event, and this spares the schema's allocations. False means "let the schema decide",
 * which also names the offending field.
 */
export function isWellFormedEnvelope(raw: unknown): raw is EventEnvelope {
  if (!isStrictRecord(raw, ENVELOPE_KEYS)) return false;
  const { aggregate, actor } = raw;
  return (
    'data' in raw &&
    isText(raw.id, 64) &&
    typeof raw.type === 'string' &&
    EVENT_TYPE_NAME.test(raw.type) &&
    Number.isSafeInteger(raw.schemaVersion) &&
    (raw.schemaVersion as number) >= 1 &&
    isStrictRecord(aggregate, AGGREGATE_KEYS) &&
    typeof aggregate.type === 'string' &&
    aggregateTypes.has(aggregate.type) &&
    isText(aggregate.id, 253) &&
    typeof raw.occurredAt === 'string' &&
    ISO_TIMESTAMP.test(raw.occurredAt) &&
    isStrictRecord(actor, ACTOR_KEYS) &&
    typeof actor.kind === 'string' &&
    actorKinds.has(actor.kind) &&
    isText(actor.id, 128) &&
    !hasControlCharacter(actor.id) &&
    isText(raw.correlationId, 128) &&
    (raw.causationId === null || isText(raw.causationId, 128))
  );
}
