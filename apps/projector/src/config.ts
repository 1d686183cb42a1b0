import { z } from 'zod';
import { eventStoreConfigSchema } from '#eventstore';
import { databaseConfigSchema } from '#persistence';
import { env } from '#platform';

export const projectorConfigSchema = eventStoreConfigSchema.extend(databaseConfigSchema.shape).extend({
  CL_PROJECTOR_BATCH_SIZE: env.int(1_000),
  CL_PROJECTOR_MAX_ATTEMPTS: env.int(5),
  /** Rows a rebuild folds in memory before writing them: bounds its memory (about 300 MB at 10,000). */
  CL_PROJECTOR_REBUILD_ROW_BUDGET: env.int(10_000),
});
export type ProjectorConfig = z.output<typeof projectorConfigSchema>;
