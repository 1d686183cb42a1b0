import { rowsOf, type Columns, type Queryable } from './columns.js';

/**
 * Projection `admin_tokens` (migrations/1764100000000-agents.ts): every admin token issued, and whether it
 * was revoked; what the API's admin guard checks.
 */
export type AdminTokenRow = {
  token_id: string;
  name: string;
  issued_at: string;
  expires_at: string;
  revoked_at: string | null;
  revoked_reason: string | null;
};

const adminTokenColumns = {
  token_id: 'text',
  name: 'text',
  issued_at: 'timestamptz',
  expires_at: 'timestamptz',
  revoked_at: 'timestamptz',
  revoked_reason: 'text',
} as const satisfies Columns<AdminTokenRow>;

export const adminTokensTable = {
  table: 'admin_tokens',
  key: 'token_id',
  columns: adminTokenColumns,
} as const;

/** Whether the projection shows this admin token revoked (an unknown token is not). */
export async function isAdminTokenRevoked(db: Queryable, tokenId: string): Promise<boolean> {
  const rows = await rowsOf<{ revoked_at: Date | null }>(
    db,
    'SELECT revoked_at FROM admin_tokens WHERE token_id = $1',
    [tokenId],
  );
  return Boolean(rows[0]?.revoked_at);
}
