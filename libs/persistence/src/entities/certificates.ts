import { Column, Entity, PrimaryColumn } from 'typeorm';
import type {
  CertificateStatus,
  CertificateView,
  CertificateViewStatus,
  HookStatus,
  RevocationReasonName,
} from '#contracts';

/**
 * Projection `certificates`: one row per certificate the CA issued (agents' and the front server's). Public
 * data only: the certificate PEM, never a key. `status` is the lifecycle; expiry is computed when read.
 */
@Entity({ name: 'certificates' })
export class CertificateRecord {
  @PrimaryColumn({ type: 'text' })
  serial!: string;

  /** An agent id, or `_front`. */
  @Column({ type: 'text' })
  holder!: string;

  @Column({ name: 'agent_id', type: 'text', nullable: true })
  agentId!: string | null;

  @Column({ type: 'text', array: true })
  names!: string[];

  @Column({ name: 'not_before', type: 'timestamptz' })
  notBefore!: Date;

  @Column({ name: 'not_after', type: 'timestamptz' })
  notAfter!: Date;

  @Column({ type: 'text' })
  fingerprint!: string;

  @Column({ name: 'public_key_fingerprint', type: 'text' })
  publicKeyFingerprint!: string;

  @Column({ name: 'issuer_fingerprint', type: 'text' })
  issuerFingerprint!: string;

  @Column({ type: 'text' })
  status!: CertificateStatus;

  @Column({ type: 'text', nullable: true })
  replaces!: string | null;

  @Column({ name: 'superseded_by', type: 'text', nullable: true })
  supersededBy!: string | null;

  @Column({ name: 'issued_at', type: 'timestamptz' })
  issuedAt!: Date;

  @Column({ name: 'installed_at', type: 'timestamptz', nullable: true })
  installedAt!: Date | null;

  @Column({ name: 'hook_status', type: 'text', nullable: true })
  hookStatus!: HookStatus | null;

  @Column({ name: 'hook_detail', type: 'text', nullable: true })
  hookDetail!: string | null;

  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true })
  revokedAt!: Date | null;

  @Column({ name: 'revocation_reason', type: 'text', nullable: true })
  revocationReason!: RevocationReasonName | null;

  @Column({ name: 'revocation_detail', type: 'text', nullable: true })
  revocationDetail!: string | null;

  @Column({ name: 'certificate_pem', type: 'text' })
  certificatePem!: string;
}

type Queryable = { query(sql: string, parameters?: unknown[]): Promise<any> }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A `certificates` row as the pg driver returns it. */
export interface CertificateRowData {
  serial: string;
  holder: string;
  agent_id: string | null;
  names: string[];
  not_before: Date | string;
  not_after: Date | string;
  fingerprint: string;
  public_key_fingerprint: string;
  issuer_fingerprint: string;
  status: CertificateStatus;
  replaces: string | null;
  superseded_by: string | null;
  issued_at: Date | string;
  installed_at: Date | string | null;
  hook_status: HookStatus | null;
  hook_detail: string | null;
  revoked_at: Date | string | null;
  revocation_reason: RevocationReasonName | null;
  revocation_detail: string | null;
  certificate_pem?: string;
}

const LIST_COLUMNS =
  'serial, holder, agent_id, names, not_before, not_after, fingerprint, public_key_fingerprint, ' +
  'issuer_fingerprint, status, replaces, superseded_by, issued_at, installed_at, hook_status, hook_detail, ' +
  'revoked_at, revocation_reason, revocation_detail';

const iso = (value: Date | string) => new Date(value).toISOString();
const isoOrNull = (value: Date | string | null) => (value === null ? null : iso(value));

/** A row as clients see it; `expired` replaces the status of an unrevoked certificate past its notAfter. */
export function certificateViewOfRow(row: CertificateRowData, now = new Date()): CertificateView {
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
  const rows: CertificateRowData[] = await db.query(
    `SELECT ${LIST_COLUMNS} FROM certificates ${where}
      ORDER BY issued_at DESC, serial LIMIT $5 OFFSET $6`,
    [...values, filters.limit ?? 100, filters.offset ?? 0],
  );
  const [count]: { total: number }[] = await db.query(
    `SELECT count(*)::int AS total FROM certificates ${where}`,
    values,
  );
  const now = new Date();
  return { certificates: rows.map((row) => certificateViewOfRow(row, now)), total: count?.total ?? 0 };
}

/** One certificate with its PEM, or undefined. */
export async function queryCertificate(db: Queryable, serial: string): Promise<CertificateView | undefined> {
  const rows: CertificateRowData[] = await db.query(
    `SELECT ${LIST_COLUMNS}, certificate_pem FROM certificates WHERE serial = $1`,
    [serial],
  );
  return rows[0] ? certificateViewOfRow(rows[0]) : undefined;
}
