import type { DataSource } from 'typeorm';
import type { ProjectionSchema, TableDifference } from '#contracts';
import { qualifiedTable, quoteIdentifier, type Projection } from './projection.js';

/** The tables of these projections, checking that no table belongs to two of them. */
export function ownedTables(projections: readonly Projection[]): string[] {
  const owner = new Map<string, string>();
  for (const projection of projections) {
    for (const table of projection.tables) {
      const other = owner.get(table);
      if (other && other !== projection.name)
        throw new Error(`table ${table} belongs to both ${other} and ${projection.name}`);
      owner.set(table, projection.name);
    }
  }
  return [...owner.keys()];
}

interface TableShape {
  constraints: { name: string; definition: string }[];
  /** Indexes that do not back a constraint, as CREATE INDEX statements. */
  indexes: { name: string; definition: string }[];
}

type Queryable = { query(sql: string, parameters?: unknown[]): Promise<any> }; // eslint-disable-line @typescript-eslint/no-explicit-any

async function describeTable(runner: Queryable, schema: string, table: string): Promise<TableShape> {
  const relation = qualifiedTable(schema, table);
  const constraints: { name: string; definition: string }[] = await runner.query(
    `SELECT conname AS name, pg_get_constraintdef(oid) AS definition
       FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'x') ORDER BY conname`,
    [relation],
  );
  const indexes: { name: string; definition: string }[] = await runner.query(
    `SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = $1::regclass
        AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
      ORDER BY c.relname`,
    [relation],
  );
  return { constraints, indexes };
}

/**
 * Creates `schema` with empty copies of the live tables (same columns, defaults, checks, keys and index
 * names) and its own checkpoint table. Secondary indexes are left out until `finishShadowTables`: loading
 * first and indexing once is much faster than maintaining indexes row by row. The copies are UNLOGGED
 * while they load (no WAL per row; a crash empties them, and a rebuild starts over anyway) and made
 * logged by `finishShadowTables`, before anyone reads them.
 */
export async function createShadowTables(
  dataSource: DataSource,
  schema: string,
  tables: readonly string[],
  liveSchema = 'public',
): Promise<void> {
  await dataSource.transaction(async (manager) => {
    await manager.query(`CREATE SCHEMA ${quoteIdentifier(schema)}`);
    for (const table of [...tables, 'projection_checkpoints']) {
      const live = qualifiedTable(liveSchema, table);
      const shadow = qualifiedTable(schema, table);
      await manager.query(
        `CREATE UNLOGGED TABLE ${shadow} (LIKE ${live} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING IDENTITY INCLUDING STORAGE)`,
      );
      const shape = await describeTable(manager, liveSchema, table);
      for (const constraint of shape.constraints) {
        await manager.query(
          `ALTER TABLE ${shadow} ADD CONSTRAINT ${quoteIdentifier(constraint.name)} ${constraint.definition}`,
        );
      }
    }
  });
}

/**
 * Makes the loaded shadow tables durable (one WAL write of each table instead of one record per row) and
 * adds the live tables' secondary indexes, under the same names. Tables (and then each table's
 * indexes) are finished concurrently on their own connections, so Postgres uses every core it has.
 */
export async function finishShadowTables(
  dataSource: DataSource,
  schema: string,
  tables: readonly string[],
  liveSchema = 'public',
): Promise<void> {
  const finishTable = async (table: string, indexed: boolean) => {
    await dataSource.query(`ALTER TABLE ${qualifiedTable(schema, table)} SET LOGGED`);
    if (!indexed) return;
    const shape = await describeTable(dataSource, liveSchema, table);
    // Index builds share the table's lock, so one table's indexes build side by side too.
    await Promise.all(
      shape.indexes.map(async (index) => {
        const statement = retarget(index.definition, liveSchema, schema, table);
        if (statement === index.definition)
          throw new Error(`cannot retarget index ${index.name}: ${index.definition}`);
        await dataSource.query(statement);
      }),
    );
  };
  await Promise.all([
    ...tables.map((table) => finishTable(table, true)),
    finishTable('projection_checkpoints', false),
  ]);
}

/** `CREATE INDEX x ON public.t USING …` → `CREATE INDEX x ON shadow.t USING …`. */
export function retarget(definition: string, fromSchema: string, toSchema: string, table: string): string {
  const from = new RegExp(` ON (ONLY )?(${fromSchema}|"${fromSchema}")\\.(${table}|"${table}") USING `);
  return definition.replace(
    from,
    (_match, only: string | undefined) => ` ON ${only ?? ''}${qualifiedTable(toSchema, table)} USING `,
  );
}

/** Compares every row of two copies of each table (multiset difference both ways). */
export async function compareTables(
  dataSource: DataSource,
  rebuiltSchema: string,
  tables: readonly string[],
  liveSchema = 'public',
): Promise<TableDifference[]> {
  const differences: TableDifference[] = [];
  for (const table of tables) {
    const rebuilt = qualifiedTable(rebuiltSchema, table);
    const live = qualifiedTable(liveSchema, table);
    const [row] = await dataSource.query(
      `SELECT (SELECT count(*) FROM (SELECT * FROM ${rebuilt} EXCEPT ALL SELECT * FROM ${live}) a)::int AS only_rebuilt,
              (SELECT count(*) FROM (SELECT * FROM ${live} EXCEPT ALL SELECT * FROM ${rebuilt}) b)::int AS only_live`,
    );
    differences.push({ table, onlyRebuilt: row.only_rebuilt, onlyLive: row.only_live });
  }
  return differences;
}

/**
 * Replaces the live tables of these projections with the rebuilt ones and moves their checkpoints, in one
 * transaction: readers see the old rows until the commit and the new ones after. The retired tables are
 * dropped afterwards. The caller stops the live projector for the duration.
 */
export async function swapIntoLive(
  dataSource: DataSource,
  rebuiltSchema: string,
  projections: readonly Projection[],
  liveSchema = 'public',
): Promise<void> {
  const tables = ownedTables(projections);
  const retired = `${rebuiltSchema}_retired`;
  await dataSource.transaction(async (manager) => {
    await manager.query(`SET LOCAL lock_timeout = '30s'`);
    await manager.query(`CREATE SCHEMA ${quoteIdentifier(retired)}`);
    for (const table of tables) {
      await manager.query(`LOCK TABLE ${qualifiedTable(liveSchema, table)} IN ACCESS EXCLUSIVE MODE`);
    }
    for (const table of tables) {
      await manager.query(
        `ALTER TABLE ${qualifiedTable(liveSchema, table)} SET SCHEMA ${quoteIdentifier(retired)}`,
      );
      await manager.query(
        `ALTER TABLE ${qualifiedTable(rebuiltSchema, table)} SET SCHEMA ${quoteIdentifier(liveSchema)}`,
      );
    }
    await manager.query(
      `INSERT INTO ${qualifiedTable(liveSchema, 'projection_checkpoints')} (projection, last_sequence, updated_at)
       SELECT projection, last_sequence, now() FROM ${qualifiedTable(rebuiltSchema, 'projection_checkpoints')}
        WHERE projection = ANY($1)
       ON CONFLICT (projection) DO UPDATE SET last_sequence = EXCLUDED.last_sequence, updated_at = now()`,
      [projections.map((projection) => projection.name)],
    );
  });
  await dropSchema(dataSource, retired);
  await dropSchema(dataSource, rebuiltSchema);
}

export async function dropSchema(dataSource: DataSource, schema: string): Promise<void> {
  if (schema === 'public') throw new Error('refusing to drop the live schema');
  await dataSource.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(schema)} CASCADE`);
}

/** Schemas holding rebuilds (`rebuild_…`) and time-travel views (`asof_…`), with their checkpoints. */
export async function listProjectionSchemas(dataSource: DataSource): Promise<ProjectionSchema[]> {
  const schemas: { schema: string }[] = await dataSource.query(
    `SELECT nspname AS schema FROM pg_namespace WHERE nspname LIKE 'asof\\_%' OR nspname LIKE 'rebuild\\_%' ORDER BY nspname`,
  );
  const result = [];
  for (const { schema } of schemas) {
    const rows: { projection: string; last_sequence: string }[] = await dataSource
      .query(`SELECT projection, last_sequence FROM ${qualifiedTable(schema, 'projection_checkpoints')}`)
      .catch(() => []);
    result.push({
      schema,
      checkpoints: Object.fromEntries(rows.map((row) => [row.projection, Number(row.last_sequence)])),
    });
  }
  return result;
}
