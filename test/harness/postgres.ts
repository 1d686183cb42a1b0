import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import { createDataSource, runMigrations } from '#persistence';

const ADMIN_URL = process.env.CL_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  name: string;
  url: string;
  /** A migrated data source on the database; closed by `drop`. */
  dataSource: DataSource;
  drop(): Promise<void>;
}

async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Creates a fresh database named after the test, applies every migration, and drops it afterwards. */
export async function createTestDatabase(purpose: string): Promise<TestDatabase> {
  const name = `cl_test_${purpose.replace(/[^a-z0-9]/g, '_').slice(0, 30)}_${randomBytes(4).toString('hex')}`;
  await admin((client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const dataSource = createDataSource({
    url: url.toString(),
    poolSize: 5,
    applicationName: `test-${purpose}`,
  });
  await dataSource.initialize();
  await runMigrations(dataSource);
  return {
    name,
    url: url.toString(),
    dataSource,
    drop: async () => {
      if (dataSource.isInitialized) await dataSource.destroy();
      await admin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}
