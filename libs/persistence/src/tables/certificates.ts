import type {
  CertificateStatus,
  CertificateView,
  CertificateViewStatus,
  HookStatus,
  RevocationReasonName,
} from '#contracts';
import { iso, isoOrNull, rowsOf, type Columns, type Queryable, type StoredRow } from './columns.js';

/**
 * Projection `certificates` (migrations/1764600000000-certificates.ts): one row per certificate the CA
 * issued (agents' and the front server's). Public data only: the certificate PEM, never a key. `status` is
 * the lifecycle; expiry is computed when read.
 */
export type CertificateRow = {
  serial: string;
  /** An agent id, or `_front`. */
  holder: string;
  agent_id: string | null;
  names: string[];
  not_before: string;
  not_after: string;
  fingerprint: string;
  public_key_fingerprint: string;
  issuer_fingerprint: string;
  status: CertificateStatus;
  replaces: string | null;
  superseded_by: string | null;
  issued_at: string;
  installed_at: string | null;
  hook_status: HookStatus | null;
  hook_detail: string | null;
  revoked_at: string | null;
  revocation_reason: RevocationReasonName | null;
  revocation_detail: string | null;
  certificate_pem: string;
};

const certificateColumns = {
  serial: 'text',
  holder: 'text',
  agent_id: 'text',
  names: 'text[]',
  not_before: 'timestamptz',
  not_after: 'timestamptz',
  fingerprint: 'text',
  public_key_fingerprint: 'text',
  issuer_fingerprint: 'text',
  status: 'text',
  replaces: 'text',
  superseded_by: 'text',
  issued_at: 'timestamptz',
  installed_at: 'timestamptz',
  hook_status: 'text',
  hook_detail: 'text',
  revoked_at: 'timestamptz',
  revocation_reason: 'text',
  revocation_detail: 'text',
  certificate_pem: 'text',
} as const satisfies Columns<CertificateRow>;

export const certificatesTable = {
  table: 'certificates',
  key: 'serial',
  columns: certificateColumns,
} as const;

/** A row as lists read it: the PEM only when one certificate is read. */
type ViewRow = Omit<StoredRow<CertificateRow, typeof certificateColumns>, 'certificate_pem'> & {
  certificate_pem?: string;
};

const LIST_COLUMNS =
  'serial, holder, agent_id, names, not_before, not_after, fingerprint, public_key_fingerprint, ' +
  'issuer_fingerprint, status, replaces, superseded_by, issued_at, installed_at, hook_status, hook_detail, ' +
  'revoked_at, revocation_reason, revocation_detail';

/** A row as clients see it; `expired` replaces the status of an unrevoked certificate past its notAfter. */
function certificateViewOfRow(row: ViewRow, now = new Date()): CertificateView {
  const expired = row.status !== 'revoked' && new Date(row.not_after).getTime() <= now.getTime();
  const view: CertificateView = {
    serial: row.serial,
    holder: row.holder,
    agentId: row.agent_id,
    names: [...row.names],
    notBefore: iso(row.not_before),
    notAfter: iso(row.not_after),
    fingerprint: row.fingerprint,
    publicKeyFingerprint: row.public_key_fingerprint,
    issuerFingerprint: row.issuer_fingerprint,
    status: expired ? 'expired' : row.status,
    lifecycle: row.status,
    replaces: row.replaces,
    supersededBy: row.superseded_by,
    issuedAt: iso(row.issued_at),
    installedAt: isoOrNull(row.installed_at),
    hook: row.hook_status === null ? null : { status: row.hook_status, detail: row.hook_detail },
    revokedAt: isoOrNull(row.revoked_at),
    revocationReason: row.revocation_reason,
    revocationDetail: row.revocation_detail,
  };
  if (row.certificate_pem !== undefined) view.certificatePem = row.certificate_pem;
  return view;
}

export interface CertificateFilters {
  agentId?: string;
  holder?: string;
  status?: CertificateViewStatus;
  /** Certificates naming this DNS name. */
  name?: string;
  limit?: number;
  offset?: number;
}

/** Certificates of the projection, newest first, with the total that matches the filters. */
export async function queryCertificates(
  db: Queryable,
  filters: CertificateFilters,
): Promise<{ certificates: CertificateView[]; total: number }> {
  // `expired` is computed: unrevoked and past notAfter; the stored statuses exclude expired rows.
  const where = `WHERE ($1::text IS NULL OR agent_id = $1)
        AND ($2::text IS NULL OR holder = $2)
        AND ($3::text IS NULL
             OR ($3 = 'expired' AND status <> 'revoked' AND not_after <= now())
             OR ($3 = 'revoked' AND status = 'revoked')
             OR ($3 NOT IN ('expired', 'revoked') AND status = $3 AND not_after > now()))
        AND ($4::text IS NULL OR $4 = ANY(names))`;
  const values = [
    filters.agentId ?? null,
    filters.holder ?? null,
    filters.status ?? null,
    filters.name ?? null,
  ];
  const rows = await rowsOf<ViewRow>(
    db,
    `SELECT ${LIST_COLUMNS} FROM certificates ${where}
      ORDER BY issued_at DESC, serial LIMIT $5 OFFSET $6`,
    [...values, filters.limit ?? 100, filters.offset ?? 0],
  );
  const [count] = await rowsOf<{ total: number }>(
    db,
    `SELECT count(*)::int AS total FROM certificates ${where}`,
    values,
  );
  const now = new Date();
  return { certificates: rows.map((row) => certificateViewOfRow(row, now)), total: count?.total ?? 0 };
}

/** One certificate with its PEM, or undefined. */
export async function queryCertificate(db: Queryable, serial: string): Promise<CertificateView | undefined> {
  const rows = await rowsOf<ViewRow>(
    db,
    `SELECT ${LIST_COLUMNS}, certificate_pem FROM certificates WHERE serial = $1`,
    [serial],
  );
  return rows[0] ? certificateViewOfRow(rows[0]) : undefined;
}

/** Installed certificates expiring within `days` or expired; null until the certificates table exists. */
export async function certificateExpirySummary(
  db: Queryable,
  days: number,
): Promise<{ expiringSoon: number; expired: number; withinDays: number; nextExpiry: string | null } | null> {
  const [exists] = await rowsOf<{ table: string | null }>(
    db,
    `SELECT to_regclass('public.certificates')::text AS table`,
  );
  if (!exists?.table) return null;
  const [row] = await rowsOf<{ expiring: number; expired: number; next: Date | null }>(
    db,
    `SELECT count(*) FILTER (WHERE not_after >= now() AND not_after < now() + make_interval(days => $1))::int AS expiring,
            count(*) FILTER (WHERE not_after < now())::int AS expired,
            min(not_after) FILTER (WHERE not_after >= now()) AS next
       FROM certificates WHERE status IN ('issued', 'installed')`,
    [days],
  );
  return {
    expiringSoon: row?.expiring ?? 0,
    expired: row?.expired ?? 0,
    withinDays: days,
    nextExpiry: row?.next ? iso(row.next) : null,
  };
}

export interface DueCertificate {
  serial: string;
  agentId: string;
  names: string[];
  notAfter: Date;
}

/**
 * Installed certificates of live agents inside their renewal window (`renewBeforeSeconds` before notAfter),
 * not expired at `now`, not ending with the CA (`caNotAfter`) and not yet replaced by an installed renewal;
 * soonest first.
 */
export async function certificatesDueForRenewal(
  db: Queryable,
  window: { now: Date; renewBeforeSeconds: number; caNotAfter: string },
): Promise<DueCertificate[]> {
  const rows = await rowsOf<{ serial: string; agent_id: string; names: string[]; not_after: Date }>(
    db,
    `SELECT c.serial, c.agent_id, c.names, c.not_after
       FROM certificates c JOIN agents a ON a.agent_id = c.agent_id
      WHERE c.status = 'installed' AND a.status <> 'deregistered'
        AND c.not_after > $1 AND c.not_after <= $1::timestamptz + make_interval(secs => $2)
        AND c.not_after < $3::timestamptz - interval '1 second'
        AND NOT EXISTS (SELECT 1 FROM certificates n WHERE n.replaces = c.serial AND n.status = 'installed')
      ORDER BY c.not_after LIMIT 1000`,
    [window.now.toISOString(), window.renewBeforeSeconds, window.caNotAfter],
  );
  return rows.map((row) => ({
    serial: row.serial,
    agentId: row.agent_id,
    names: row.names,
    notAfter: row.not_after,
  }));
}
