import { DataSource } from 'typeorm';
import { z } from 'zod';
import { migrations } from '#migrations';
import { env } from '#platform';

export const databaseConfigSchema = z.object({
  CL_DATABASE_URL: env.url('postgres://postgres@127.0.0.1:5432/cloudlunacy'),
  CL_DATABASE_POOL_SIZE: env.int(10),
});
export type DatabaseConfig = z.output<typeof databaseConfigSchema>;

/**
 * The project's TypeORM data source. Schema changes go through migrations only; synchronize stays off. No
 * entities: tables are read and written with SQL through their modules in `tables/`.
 */
export function createDataSource(config: {
  url: string;
  poolSize?: number;
  applicationName?: string;
}): DataSource {
  return new DataSource({
    type: 'postgres',
    url: config.url,
    entities: [],
    migrations,
    migrationsTableName: 'typeorm_migrations',
    synchronize: false,
    migrationsRun: false,
    logging: false,
    applicationName: config.applicationName,
    extra: { max: config.poolSize ?? 10 },
  });
}

/** Applies pending migrations; returns the names applied. */
export async function runMigrations(dataSource: DataSource): Promise<string[]> {
  const applied = await dataSource.runMigrations({ transaction: 'each' });
  return applied.map((migration) => migration.name);
}
