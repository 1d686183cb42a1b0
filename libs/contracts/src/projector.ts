import { z } from 'zod';
import { commandSubject } from './commands.js';
import { isoTimestamp, label } from './fields.js';

/**
 * The projector's contract: its admin commands (rebuilds, time travel, status, quarantine and dead
 * letters), what they take, and what they answer. The API, the CLI and the dead-letter admin send them;
 * the projector validates every payload with these schemas.
 */
export const PROJECTOR_SERVICE = 'projector';
export const projectorCommands = {
  rebuild: commandSubject(PROJECTOR_SERVICE, 'rebuild'),
  rebuildStatus: commandSubject(PROJECTOR_SERVICE, 'rebuild-status'),
  rebuilds: commandSubject(PROJECTOR_SERVICE, 'rebuilds'),
  schemas: commandSubject(PROJECTOR_SERVICE, 'schemas'),
  dropSchema: commandSubject(PROJECTOR_SERVICE, 'drop-schema'),
  status: commandSubject(PROJECTOR_SERVICE, 'status'),
  quarantine: commandSubject(PROJECTOR_SERVICE, 'quarantine'),
  dismissDeadLetters: commandSubject(PROJECTOR_SERVICE, 'dismiss-dead-letters'),
} as const;

const projectionName = z.string().regex(/^[a-z_]{1,63}$/, 'must be a projection name or "all"');

export type RebuildMode = 'swap' | 'inspect';

/** `swap`: rebuild from sequence 1 and swap in; `inspect`: stop at `asOf` and keep it as a time-travel view. */
export const rebuildPayload = z
  .strictObject({
    projections: z.array(projectionName).min(1).max(32),
    mode: z.enum(['swap', 'inspect']),
    asOf: z
      .strictObject({ sequence: z.number().int().min(0).optional(), time: isoTimestamp.optional() })
      .refine((value) => (value.sequence === undefined) !== (value.time === undefined), {
        message: 'give either sequence or time',
      })
      .optional(),
    label: z
      .string()
      .regex(/^[a-z0-9_]{1,40}$/, 'must be 1-40 characters of a-z, 0-9 and _')
      .optional(),
  })
  .refine((value) => value.mode === 'inspect' || (value.asOf === undefined && value.label === undefined), {
    message: 'asOf and label apply to inspect rebuilds only; a swap always rebuilds to the end of the log',
    path: ['asOf'],
  });
export type RebuildRequest = z.output<typeof rebuildPayload>;

export const rebuildStatusPayload = z.strictObject({ id: z.string().min(1).max(64) });

export const dropSchemaPayload = z.strictObject({
  schema: z.string().regex(/^asof_[a-z0-9_]+$/, 'must be a time-travel schema (asof_…)'),
});

/** The payload of the commands that take none (status, rebuilds, schemas). */
export const noPayload = z.strictObject({});

export const quarantinePayload = z.strictObject({
  sequence: z.number({ error: 'must be a number' }).int('must be an integer').min(1, 'must be at least 1'),
  reason: label(200),
});
export type QuarantineRequest = z.output<typeof quarantinePayload>;

export const dismissDeadLettersPayload = z.strictObject({
  id: z.string().regex(/^[1-9][0-9]{0,17}$/, 'must be a dead letter id'),
  scope: z.enum(['letter', 'message'], { error: 'must be "letter" or "message"' }),
  reason: label(200),
});
export type DismissDeadLettersRequest = z.output<typeof dismissDeadLettersPayload>;

export type RebuildPhase =
  'preparing' | 'replaying' | 'catching-up' | 'indexing' | 'verifying' | 'swapping' | 'done' | 'failed';

/** Rows that differ between a rebuilt table and the live one at the same sequence. */
export interface TableDifference {
  table: string;
  /** Rows in the rebuilt table that the live one lacks, and the other way round. */
  onlyRebuilt: number;
  onlyLive: number;
}

/** A rebuild's progress: the answer of `rebuild`, `rebuild-status` and (a list) `rebuilds`. */
export interface RebuildStatus {
  id: string;
  projections: string[];
  mode: RebuildMode;
  schema: string;
  phase: RebuildPhase;
  /** Last sequence applied to the rebuilt tables. */
  sequence: number;
  target: number;
  eventsPerSecond: number;
  etaSeconds: number | null;
  startedAt: string;
  finishedAt: string | null;
  error: string | null;
  /** Rows that differ between the rebuilt and the live tables at the same sequence, before a swap. */
  differences: TableDifference[] | null;
}

/** The answer of `status`: how far the live projections are behind the log. */
export interface ProjectorStatus {
  position: number;
  logEnd: number;
  lag: number;
  projections: string[];
}

/** A time-travel view (`asof_…`) or a rebuild in progress (`rebuild_…`), with each projection's checkpoint. */
export interface ProjectionSchema {
  schema: string;
  checkpoints: Record<string, number>;
}
