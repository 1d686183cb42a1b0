import { useState } from 'react';
import {
  Empty,
  ErrorMessage,
  Freshness,
  Loading,
  NotAvailable,
  PageHeader,
  Pager,
  Section,
} from '../components/common';
import { CertificateTable, ExpiryTimeline, RevokeDialog } from '../components/certificates';
import { Field } from '../components/field';
import type { CertificateListResult, CertificateView } from '#contracts';
import { api } from '../lib/api';
import { ENDPOINTS, useCapability } from '../lib/capabilities';
import { useDocumentTitle, useResource } from '../lib/hooks';
import { useLiveRefresh } from '../lib/live-context';
import { useSearchParams } from '../lib/router';

const LIMIT = 100;
const STATUSES = ['issued', 'installed', 'superseded', 'revoked', 'expired'];

export function CertificatesPage() {
  useDocumentTitle('Certificates');
  const available = useCapability(ENDPOINTS.certificates);
  const [params, setParams] = useSearchParams();
  const offset = Number(params.offset ?? 0) || 0;
  const query = { status: params.status, agentId: params.agent, limit: LIMIT, offset };
  const certificates = useResource(available ? `certificates:${JSON.stringify(query)}` : null, (signal) =>
    api.get<CertificateListResult>('/certificates', query, signal),
  );
  useLiveRefresh((change) => change.aggregate.type === 'certificate', certificates.refresh);
  const [revoking, setRevoking] = useState<CertificateView | null>(null);
  const [agent, setAgent] = useState(params.agent ?? '');

  if (available === false) {
    return (
      <>
        <PageHeader title="Certificates" />
        <NotAvailable what="Certificates" endpoint={ENDPOINTS.certificates} />
      </>
    );
  }
  return (
    <>
      <PageHeader title="Certificates">
        <Freshness loadedAt={certificates.loadedAt} refreshing={certificates.refreshing} />
      </PageHeader>
      <form
        className="filters"
        role="search"
        onSubmit={(event) => {
          event.preventDefault();
          setParams({ agent: agent.trim(), offset: undefined }, { replace: true });
        }}
      >
        <Field label="Status">
          {(props) => (
            <select
              {...props}
              value={params.status ?? ''}
              onChange={(event) =>
                setParams({ status: event.target.value, offset: undefined }, { replace: true })
              }
            >
              <option value="">any</option>
              {STATUSES.map((status) => (
                <option key={status} value={status}>
                  {status}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Agent">
          {(props) => (
            <input
              {...props}
              type="search"
              value={agent}
              onChange={(event) => setAgent(event.target.value)}
            />
          )}
        </Field>
        <button type="submit">Filter</button>
      </form>
      {certificates.error !== undefined && (
        <ErrorMessage
          error={certificates.error}
          title="Could not read the certificates"
          onRetry={certificates.refresh}
        />
      )}
      {(certificates.loading || available === undefined) && <Loading what="Loading certificates" />}
      {certificates.data && certificates.data.certificates.length === 0 && (
        <Empty>No certificate matches. Agents ask for certificates when they enroll and before expiry.</Empty>
      )}
      {certificates.data && certificates.data.certificates.length > 0 && (
        <>
          <Section title="Expiry timeline">
            <ExpiryTimeline certificates={certificates.data.certificates} />
          </Section>
          <Section title="All certificates">
            <CertificateTable
              certificates={certificates.data.certificates}
              caption="Certificates"
              onRevoke={setRevoking}
            />
            <Pager
              offset={offset}
              limit={LIMIT}
              total={certificates.data.total}
              label="Certificates"
              onChange={(next) => setParams({ offset: next || undefined })}
            />
          </Section>
        </>
      )}
      <RevokeDialog
        certificate={revoking}
        onClose={() => setRevoking(null)}
        onRevoked={() => {
          setRevoking(null);
          certificates.refresh();
        }}
      />
    </>
  );
}
