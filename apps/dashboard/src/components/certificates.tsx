import { useState } from 'react';
import type { CertificateView } from '#contracts';
import { api, REVOCATION_REASONS } from '../lib/api';
import { formatDateTime, formatRelative, shortId } from '../lib/format';
import { useNow } from '../lib/hooks';
import { StatusBadge, Time } from './common';
import { DangerDialog } from './danger-dialog';
import { Field } from './field';

const DAY = 86_400_000;
/** Expiring within this many days shows in amber. */
export const SOON_DAYS = 14;

export function CertificateTable({
  certificates,
  caption,
  onRevoke,
}: {
  certificates: CertificateView[];
  caption: string;
  onRevoke?: (certificate: CertificateView) => void;
}) {
  return (
    <div className="table-wrap">
      <table>
        <caption className="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Serial</th>
            <th scope="col">Holder</th>
            <th scope="col">Names</th>
            <th scope="col">Status</th>
            <th scope="col">Valid until</th>
            {onRevoke && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {certificates.map((certificate) => (
            <tr key={certificate.serial} data-serial={certificate.serial}>
              <th scope="row">
                <code title={certificate.serial}>{shortId(certificate.serial, 12)}</code>
              </th>
              <td>{certificate.holder}</td>
              <td className="wrap small">{certificate.names.join(', ')}</td>
              <td>
                <StatusBadge status={certificate.status} />
                {certificate.revocationReason && (
                  <div className="muted small">{certificate.revocationReason}</div>
                )}
              </td>
              <td>
                <Time value={certificate.notAfter} />
              </td>
              {onRevoke && (
                <td>
                  {certificate.status !== 'revoked' && certificate.status !== 'expired' && (
                    <button
                      type="button"
                      onClick={() => onRevoke(certificate)}
                      aria-label={`Revoke certificate ${certificate.serial}`}
                    >
                      Revoke
                    </button>
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Each certificate's validity as a bar on one time axis, with a line at now. */
export function ExpiryTimeline({ certificates }: { certificates: CertificateView[] }) {
  const now = useNow(60_000);
  const shown = certificates
    .filter((certificate) => certificate.status !== 'superseded')
    .sort((a, b) => a.notAfter.localeCompare(b.notAfter))
    .slice(0, 40);
  if (shown.length === 0) return <p className="state state-empty">No certificate to show.</p>;
  const start = Math.min(now - DAY, ...shown.map((certificate) => Date.parse(certificate.notBefore)));
  const end = Math.max(now + DAY, ...shown.map((certificate) => Date.parse(certificate.notAfter)));
  const span = end - start;
  const at = (time: number) => `${(((time - start) / span) * 100).toFixed(2)}%`;
  return (
    <ol className="timeline" aria-label="Certificate expiry timeline, soonest first">
      {shown.map((certificate) => {
        const from = Date.parse(certificate.notBefore);
        const to = Date.parse(certificate.notAfter);
        const tone =
          certificate.status === 'revoked'
            ? 'muted'
            : to <= now
              ? 'bad'
              : to - now < SOON_DAYS * DAY
                ? 'warn'
                : 'good';
        return (
          <li key={certificate.serial}>
            <span className="wrap">
              {certificate.holder} <span className="muted">{shortId(certificate.serial, 8)}</span>
            </span>
            <span
              className="timeline-track"
              role="img"
              aria-label={`valid ${formatDateTime(from)} to ${formatDateTime(to)}`}
            >
              <span
                className={`timeline-bar tone-${tone}`}
                style={{ left: at(from), width: at(start + (to - from)) }}
              />
              <span className="timeline-now" style={{ left: at(now) }} />
            </span>
            <span className={tone === 'bad' || tone === 'warn' ? `text-${tone}` : 'muted'}>
              {certificate.status === 'revoked' ? 'revoked' : formatRelative(to, now)}
            </span>
          </li>
        );
      })}
    </ol>
  );
}

export function RevokeDialog({
  certificate,
  onClose,
  onRevoked,
}: {
  certificate: CertificateView | null;
  onClose: () => void;
  onRevoked: () => void;
}) {
  const [reason, setReason] = useState('unspecified');
  return (
    <DangerDialog
      open={certificate !== null}
      title="Revoke certificate"
      description={
        <>
          Certificate <code>{certificate?.serial}</code> of <strong>{certificate?.holder}</strong> (
          {certificate?.names.join(', ')}) goes on the next revocation list. This cannot be undone.
        </>
      }
      textLabel="Detail (optional)"
      action="Revoke"
      busyAction="Revoking…"
      onClose={onClose}
      run={async (detail) => {
        if (!certificate) return;
        await api.post(`/certificates/${certificate.serial}/revoke`, {
          reason,
          ...(detail ? { detail } : {}),
        });
        onRevoked();
      }}
    >
      <Field label="Reason">
        {(props) => (
          <select {...props} value={reason} onChange={(event) => setReason(event.target.value)}>
            {REVOCATION_REASONS.map((value) => (
              <option key={value} value={value}>
                {value}
              </option>
            ))}
          </select>
        )}
      </Field>
    </DangerDialog>
  );
}
