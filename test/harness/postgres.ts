import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import { createDataSource, runMigrations } from '#persistence';
import { repoRoot } from './apps.js';

/**
 * Where the tests create their databases: CL_TEST_POSTGRES_URL (a role with CREATEDB), or else the local
 * stack's role `cloudlunacy` over TCP with its generated password, which `deploy/local/stack.sh db` creates
 * (npm test's pretest runs it), on the port the stack uses: CL_POSTGRES_PORT in .stack/stack.env, or 5432.
 */
function adminUrl(): string {
  if (process.env.CL_TEST_POSTGRES_URL) return process.env.CL_TEST_POSTGRES_URL;
  const stack = join(repoRoot, '.stack');
  const passwordFile = join(stack, 'secrets', 'postgres.password');
  if (!existsSync(passwordFile))
    throw new Error(
      `${passwordFile} is missing: run \`deploy/local/stack.sh db\` (npm test does it in pretest), or set CL_TEST_POSTGRES_URL`,
    );
  const password = encodeURIComponent(readFileSync(passwordFile, 'utf8').trim());
  const stackEnv = join(stack, 'stack.env');
  const overrides = existsSync(stackEnv) ? readFileSync(stackEnv, 'utf8') : '';
  const port = /^CL_POSTGRES_PORT=['"]?(\d+)['"]?\s*$/m.exec(overrides)?.[1] ?? '5432';
  return `postgres://cloudlunacy:${password}@127.0.0.1:${port}/postgres`;
}

export interface TestDatabase {
  name: string;
  url: string;
  /** A migrated data source on the database; closed by `drop`. */
  dataSource: DataSource;
  drop(): Promise<void>;
}

async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl() });
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
  const url = new URL(adminUrl());
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
