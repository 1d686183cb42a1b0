import type { DomainEvent, StoredEvent } from '#contracts';
import { certificatesTable, type CertificateRow } from '#persistence';
import { RowProjection } from '../engine/row-projection.js';

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
  ...certificatesTable,
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
