import type {
  CertificateStatus,
  DomainEvent,
  HookStatus,
  RevocationReasonName,
  StoredEvent,
} from '#contracts';
import { RowProjection } from '#persistence';

export type CertificateRow = {
  serial: string;
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

/**
 * The certificates read model: `issued` when the CA signed it (CertificateIssued or CertificateRenewed,
 * which also records the serial it `replaces`), `installed` when its holder confirmed it, `superseded` once
 * its replacement was installed, `revoked` for good. One row per serial; the holder is the aggregate id.
 */
export function evolveCertificateRow(
  row: CertificateRow | undefined,
  stored: StoredEvent,
): CertificateRow | undefined {
  const event = stored as DomainEvent;
  switch (event.type) {
    case 'CertificateIssued':
    case 'CertificateRenewed':
      if (row) return row;
      return {
        serial: event.data.serial,
        holder: event.aggregate.id,
        agent_id: event.data.agentId,
        names: [...event.data.names],
        not_before: new Date(event.data.notBefore).toISOString(),
        not_after: new Date(event.data.notAfter).toISOString(),
        fingerprint: event.data.fingerprint,
        public_key_fingerprint: event.data.publicKeyFingerprint,
        issuer_fingerprint: event.data.issuerFingerprint,
        status: 'issued',
        replaces: event.type === 'CertificateRenewed' ? event.data.replaces : null,
        superseded_by: null,
        issued_at: event.occurredAt,
        installed_at: null,
        hook_status: null,
        hook_detail: null,
        revoked_at: null,
        revocation_reason: null,
        revocation_detail: null,
        certificate_pem: event.data.certificatePem,
      };
    case 'CertificateInstalled':
      if (!row || row.status !== 'issued') return row;
      return {
        ...row,
        status: 'installed',
        installed_at: event.occurredAt,
        hook_status: event.data.hook,
        hook_detail: event.data.hookDetail,
      };
    case 'CertificateSuperseded':
      if (!row || (row.status !== 'issued' && row.status !== 'installed')) return row;
      return { ...row, status: 'superseded', superseded_by: event.data.by };
    case 'CertificateRevoked':
      if (!row || row.status === 'revoked') return row;
      return {
        ...row,
        status: 'revoked',
        revoked_at: event.occurredAt,
        revocation_reason: event.data.reason,
        revocation_detail: event.data.detail,
      };
    default:
      return row;
  }
}

export const certificatesProjection = new RowProjection<CertificateRow>({
  name: 'certificates',
  table: 'certificates',
  key: 'serial',
  columns: {
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
  },
  eventTypes: [
    'CertificateIssued',
    'CertificateRenewed',
    'CertificateInstalled',
    'CertificateSuperseded',
    'CertificateRevoked',
  ],
  keyOf: (event) =>
    event.aggregate.type === 'certificate' ? (event.data as { serial?: string }).serial : undefined,
  evolve: evolveCertificateRow,
});
