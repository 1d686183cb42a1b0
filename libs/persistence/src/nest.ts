import { Inject, Injectable, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { createLogger, retryWhileTransient } from '#platform';
import type { DatabaseConfig } from './data-source.js';
import { createDataSource } from './data-source.js';
import { PostgresDeadLetters } from './dead-letters.js';

/** Opens the data source and refuses to run on a database whose schema is behind the code. */
export async function openDatabase(config: DatabaseConfig, applicationName: string): Promise<DataSource> {
  const dataSource = createDataSource({
    url: config.CL_DATABASE_URL,
    poolSize: config.CL_DATABASE_POOL_SIZE,
    applicationName,
  });
  await retryWhileTransient(
    `the database at ${redactUrl(config.CL_DATABASE_URL)}`,
    () => dataSource.initialize(),
    createLogger(applicationName),
  );
  if (await dataSource.showMigrations()) {
    await dataSource.destroy();
    throw new Error(
      `the database at ${redactUrl(config.CL_DATABASE_URL)} has pending migrations: run \`npm run migrate\` first`,
    );
  }
  return dataSource;
}

export function redactUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

@Injectable()
class DataSourceShutdown implements OnApplicationShutdown {
  constructor(@Inject(DataSource) private readonly dataSource: DataSource) {}
  async onApplicationShutdown(): Promise<void> {
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }
}

/** Gives a Nest app the TypeORM data source and the dead-letter sink. */
@Module({})
export class DatabaseModule {
  static forRoot(config: DatabaseConfig, applicationName: string): DynamicModule {
    return {
      module: DatabaseModule,
      global: true,
      providers: [
        { provide: DataSource, useFactory: () => openDatabase(config, applicationName) },
        {
          provide: PostgresDeadLetters,
          useFactory: (dataSource: DataSource) => new PostgresDeadLetters(dataSource),
          inject: [DataSource],
        },
        DataSourceShutdown,
      ],
      exports: [DataSource, PostgresDeadLetters],
    };
  }
}
