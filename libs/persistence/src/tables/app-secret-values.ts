import { rowsOf, type Queryable } from './columns.js';

/**
 * The deployments service's secret store (migrations/1765000000000-deployments.ts, docs/plans/
 * deployments.md §6.2): one AES-256-GCM sealed value per app, name and version. Not a projection: no
 * projection owns the table, so rebuilds and time travel never touch it, and a deleted row is gone.
 * Values are sealed and opened by the service; this module only stores bytes.
 */
export interface SealedSecretValue {
  appName: string;
  name: string;
  version: number;
  nonce: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

export interface StoredSecretValue extends SealedSecretValue {
  createdAt: string;
}

/**
 * Stores a sealed version; a version stored already is left as it is (a retried command seals the same
 * version again, with another nonce). True when this call stored it.
 */
export async function insertSecretValue(db: Queryable, value: SealedSecretValue): Promise<boolean> {
  const rows = await rowsOf<{ version: number }>(
    db,
    `INSERT INTO app_secret_values (app_name, name, version, nonce, ciphertext, tag)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (app_name, name, version) DO NOTHING RETURNING version`,
    [value.appName, value.name, value.version, value.nonce, value.ciphertext, value.tag],
  );
  return rows.length > 0;
}

interface ValueRow {
  app_name: string;
  name: string;
  version: number;
  nonce: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
  created_at: Date | string;
}

const valueOfRow = (row: ValueRow): StoredSecretValue => ({
  appName: row.app_name,
  name: row.name,
  version: row.version,
  nonce: row.nonce,
  ciphertext: row.ciphertext,
  tag: row.tag,
  createdAt: new Date(row.created_at).toISOString(),
});

/** The stored versions of an app's secrets named in `wanted` (those the store holds), by name. */
export async function readSecretValues(
  db: Queryable,
  appName: string,
  wanted: readonly { name: string; version: number }[],
): Promise<StoredSecretValue[]> {
  if (wanted.length === 0) return [];
  const rows = await rowsOf<ValueRow>(
    db,
    `SELECT v.app_name, v.name, v.version, v.nonce, v.ciphertext, v.tag, v.created_at
       FROM app_secret_values v
       JOIN unnest($2::text[], $3::int[]) AS w(name, version) ON w.name = v.name AND w.version = v.version
      WHERE v.app_name = $1 ORDER BY v.name, v.version`,
    [appName, wanted.map((entry) => entry.name), wanted.map((entry) => entry.version)],
  );
  return rows.map(valueOfRow);
}

/** Which versions the store holds, of one app or every app (the garbage collector's input), without values. */
export async function listSecretVersions(
  db: Queryable,
  appName?: string,
): Promise<{ appName: string; name: string; version: number; createdAt: string }[]> {
  const rows = await rowsOf<{ app_name: string; name: string; version: number; created_at: Date | string }>(
    db,
    `SELECT app_name, name, version, created_at FROM app_secret_values
      WHERE ($1::text IS NULL OR app_name = $1) ORDER BY app_name, name, version`,
    [appName ?? null],
  );
  return rows.map((row) => ({
    appName: row.app_name,
    name: row.name,
    version: row.version,
    createdAt: new Date(row.created_at).toISOString(),
  }));
}

/** Forgets these versions of an app's secrets; returns how many rows went. */
export async function deleteSecretValues(
  db: Queryable,
  appName: string,
  versions: readonly { name: string; version: number }[],
): Promise<number> {
  if (versions.length === 0) return 0;
  // A SELECT around the DELETE: drivers answer a bare DELETE differently (TypeORM adds the row count).
  const [gone] = await rowsOf<{ n: number }>(
    db,
    `WITH gone AS (
       DELETE FROM app_secret_values v USING unnest($2::text[], $3::int[]) AS w(name, version)
        WHERE v.app_name = $1 AND v.name = w.name AND v.version = w.version RETURNING 1)
     SELECT count(*)::int AS n FROM gone`,
    [appName, versions.map((entry) => entry.name), versions.map((entry) => entry.version)],
  );
  return gone?.n ?? 0;
}
