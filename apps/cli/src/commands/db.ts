import pg from 'pg';
import { createDataSource, databaseConfigSchema, redactUrl, runMigrations } from '#persistence';
import { loadConfig } from '#platform';
import type { CliCommand } from '../command.js';

/** Creates the database named in the URL when it does not exist yet (needs CREATEDB on the server). */
async function ensureDatabase(url: string): Promise<boolean> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  if (!/^[a-z_][a-z0-9_]*$/.test(name))
    throw new Error(`database name ${JSON.stringify(name)} must be a plain lower-case identifier`);
  const maintenance = new URL(url);
  maintenance.pathname = '/postgres';
  const client = new pg.Client({ connectionString: maintenance.toString() });
  await client.connect();
  try {
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rowCount) return false;
    await client.query(`CREATE DATABASE ${name}`);
    return true;
  } finally {
    await client.end();
  }
}

export const dbCommands: CliCommand[] = [
  {
    path: ['db', 'migrate'],
    summary: 'create the database if needed and apply pending migrations',
    async run() {
      const config = loadConfig(databaseConfigSchema);
      const created = await ensureDatabase(config.CL_DATABASE_URL);
      const dataSource = createDataSource({ url: config.CL_DATABASE_URL, applicationName: 'cli' });
      await dataSource.initialize();
      try {
        const applied = await runMigrations(dataSource);
        console.log(
          JSON.stringify({
            database: redactUrl(config.CL_DATABASE_URL),
            created,
            applied,
            upToDate: applied.length === 0,
          }),
        );
      } finally {
        await dataSource.destroy();
      }
    },
  },
];
