import { z } from 'zod';
import { eventStoreConfigSchema } from '#eventstore';
import { databaseConfigSchema } from '#persistence';
import { env } from '#platform';

export const projectorConfigSchema = eventStoreConfigSchema.extend(databaseConfigSchema.shape).extend({
  CL_PROJECTOR_BATCH_SIZE: env.int(1_000),
  CL_PROJECTOR_MAX_ATTEMPTS: env.int(5),
});
export type ProjectorConfig = z.output<typeof projectorConfigSchema>;
