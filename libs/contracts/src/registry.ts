import { z } from 'zod';
import type { AggregateType } from './subjects.js';
import { envelopeSchema, isWellFormedEnvelope, type EventEnvelope } from './envelope.js';
import { parseOrThrow, ValidationError } from './validation.js';

/** Converts the data of one schema version into the next (`from` → `from + 1`). */
export type Upcaster = (data: unknown) => unknown;

export interface EventDefinition<TType extends string = string, TSchema extends z.ZodType = z.ZodType> {
  type: TType;
  aggregate: AggregateType;
  /** Current schema version: what is written today and what readers receive. */
  version: number;
  schema: TSchema;
  /** upcasters[v] turns version v data into version v + 1. */
  upcasters?: Record<number, Upcaster>;
}

export function defineEvent<TType extends string, TSchema extends z.ZodType>(
  definition: EventDefinition<TType, TSchema>,
): EventDefinition<TType, TSchema> {
  for (let version = 1; version < definition.version; version++) {
    if (!definition.upcasters?.[version]) {
      throw new Error(`${definition.type} v${definition.version} has no upcaster from v${version}`);
    }
  }
  return definition;
}

/** Thrown when stored bytes are not an event this code can read; the consumer dead-letters it. */
export class UndecodableEventError extends Error {
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'UndecodableEventError';
  }
}

/**
 * Knows every event type: validates data when an event is written, and on read validates the envelope,
 * upcasts old schema versions step by step and validates the result against the current schema.
 */
export class EventRegistry {
  private readonly definitions = new Map<string, EventDefinition>();

  constructor(definitions: readonly EventDefinition[] = []) {
    for (const definition of definitions) this.register(definition);
  }

  register(definition: EventDefinition): this {
    if (this.definitions.has(definition.type))
      throw new Error(`event type ${definition.type} registered twice`);
    this.definitions.set(definition.type, definition);
    return this;
  }

  definition(type: string): EventDefinition | undefined {
    return this.definitions.get(type);
  }

  get types(): string[] {
    return [...this.definitions.keys()];
  }

  /** Checks a new event before it is appended; errors name `data.<field>`. */
  validateNew(type: string, aggregate: AggregateType, data: unknown): { version: number; data: unknown } {
    const definition = this.definitions.get(type);
    if (!definition) throw new ValidationError([{ field: 'type', message: `unknown event type ${type}` }]);
    if (definition.aggregate !== aggregate) {
      throw new ValidationError([
        { field: 'aggregate.type', message: `${type} belongs to ${definition.aggregate}, not ${aggregate}` },
      ]);
    }
    return { version: definition.version, data: parseOrThrow(definition.schema, data, 'data') };
  }

  /** The aggregate type an event type belongs to. */
  aggregateOf(type: string): AggregateType | undefined {
    return this.definitions.get(type)?.aggregate;
  }

  /**
   * Reads a stored envelope (already JSON-parsed, and changed in place: the result may be `raw` itself)
   * into its current form. With `data: false` only the envelope is checked and `data` is left out: for
   * readers that never look at it (the event-log index).
   */
  decode(raw: unknown, options: { data?: boolean } = {}): EventEnvelope {
    const envelope = isWellFormedEnvelope(raw) ? raw : this.parseEnvelope(raw);
    const definition = this.definitions.get(envelope.type);
    if (!definition) throw new UndecodableEventError(`unknown event type ${envelope.type}`, 'type');
    if (envelope.schemaVersion > definition.version) {
      throw new UndecodableEventError(
        `${envelope.type} v${envelope.schemaVersion} is newer than this code (v${definition.version}); upgrade the service`,
        'schemaVersion',
      );
    }
    if (options.data === false) {
      envelope.data = undefined;
    } else {
      let data = envelope.data;
      for (let version = envelope.schemaVersion; version < definition.version; version++) {
        data = definition.upcasters![version]!(data);
      }
      const parsed = definition.schema.safeParse(data);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const field = ['data', ...(issue?.path ?? []).map(String)].join('.');
        throw new UndecodableEventError(`${envelope.type}: ${field}: ${issue?.message}`, field);
      }
      envelope.data = parsed.data;
    }
    envelope.schemaVersion = definition.version;
    return envelope;
  }

  /** The schema's verdict on an envelope the fast check did not accept: a copy, or the field at fault. */
  private parseEnvelope(raw: unknown): EventEnvelope {
    try {
      return parseOrThrow(envelopeSchema, raw);
    } catch (error) {
      throw new UndecodableEventError(
        `not an event envelope: ${(error as Error).message}`,
        (error as ValidationError).field,
      );
    }
  }
}
