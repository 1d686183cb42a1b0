import { z } from 'zod';
import { eventStoreConfigSchema } from '#eventstore';
import { databaseConfigSchema } from '#persistence';
import { env } from '#platform';

export const projectorConfigSchema = eventStoreConfigSchema.extend(databaseConfigSchema.shape).extend({
  CL_PROJECTOR_BATCH_SIZE: env.int(1_000),
  CL_PROJECTOR_MAX_ATTEMPTS: env.int(5),
  /** Rows a rebuild holds before writing them; as many fold while a write runs. Bounds its memory. */
  CL_PROJECTOR_REBUILD_ROW_BUDGET: env.int(5_000),
});
export type ProjectorConfig = z.output<typeof projectorConfigSchema>;

/** The Nest token of the projector's parsed configuration. */
export const PROJECTOR_CONFIG = Symbol('PROJECTOR_CONFIG');
