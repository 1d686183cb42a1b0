import { Empty, ErrorMessage, Freshness, Loading, PageHeader, StatusBadge, Time } from '../components/common';
import { Field } from '../components/field';
import type { AgentStatus, AgentView, CertificateListResult } from '#contracts';
import { api } from '../lib/api';
import { ENDPOINTS, useCapability } from '../lib/capabilities';
import { useDocumentTitle, useResource } from '../lib/hooks';
import { useLiveRefresh } from '../lib/live-context';
import { Link, useSearchParams } from '../lib/router';

const STATUSES: AgentStatus[] = ['online', 'offline', 'enrolled', 'deregistered'];

/** The latest expiry among each agent's certificates in use (issued or installed). */
export function useCertificateExpiries(): Map<string, string> | undefined {
  const available = useCapability(ENDPOINTS.certificates);
  const certificates = useResource(available ? 'certificates-expiry' : null, (signal) =>
    api.get<CertificateListResult>('/certificates', { limit: 500 }, signal),
  );
  useLiveRefresh((change) => change.aggregate.type === 'certificate', certificates.refresh);
  if (!certificates.data) return undefined;
  const expiries = new Map<string, string>();
  for (const certificate of certificates.data.certificates) {
    if (!certificate.agentId || (certificate.status !== 'issued' && certificate.status !== 'installed'))
      continue;
    const known = expiries.get(certificate.agentId);
    if (!known || known < certificate.notAfter) expiries.set(certificate.agentId, certificate.notAfter);
  }
  return expiries;
}

export function AgentsPage() {
  useDocumentTitle('Agents');
  const [params, setParams] = useSearchParams();
  const agents = useResource('agents', (signal) =>
    api.get<{ agents: AgentView[] }>('/agents', undefined, signal),
  );
  useLiveRefresh((change) => change.aggregate.type === 'agent', agents.refresh);
  const expiries = useCertificateExpiries();

  const status = params.status ?? '';
  const search = (params.q ?? '').toLowerCase();
  const shown = (agents.data?.agents ?? []).filter(
    (agent) =>
      (!status || agent.status === status) &&
      (!search ||
        agent.agentId.includes(search) ||
        agent.publicAddress.includes(search) ||
        Object.entries(agent.labels).some(([key, value]) =>
          `${key}=${value}`.toLowerCase().includes(search),
        )),
  );

  return (
    <>
      <PageHeader title="Agents">
        <Freshness loadedAt={agents.loadedAt} refreshing={agents.refreshing} />
      </PageHeader>
      <form className="filters" role="search" onSubmit={(event) => event.preventDefault()}>
        <Field label="Status">
          {(props) => (
            <select
              {...props}
              value={status}
              onChange={(event) => setParams({ status: event.target.value }, { replace: true })}
            >
              <option value="">any</option>
              {STATUSES.map((value) => (
                <option key={value} value={value}>
                  {value}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Search">
          {(props) => (
            <input
              {...props}
              type="search"
              placeholder="id, address or label"
              value={params.q ?? ''}
              onChange={(event) => setParams({ q: event.target.value }, { replace: true })}
            />
          )}
        </Field>
      </form>
      {agents.error !== undefined && (
        <ErrorMessage error={agents.error} title="Could not read the agents" onRetry={agents.refresh} />
      )}
      {agents.loading && <Loading what="Loading agents" />}
      {agents.data && shown.length === 0 && (
        <Empty>
          {agents.data.agents.length === 0
            ? 'No agent has enrolled yet: create an enrollment token and start the agent on a VPS.'
            : 'No agent matches these filters.'}
        </Empty>
      )}
      {shown.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Agents</caption>
            <thead>
              <tr>
                <th scope="col">Agent</th>
                <th scope="col">Status</th>
                <th scope="col">Address</th>
                <th scope="col">Last seen</th>
                <th scope="col">Certificate expires</th>
                <th scope="col">Labels</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((agent) => (
                <tr key={agent.agentId} data-agent={agent.agentId}>
                  <th scope="row">
                    <Link to={`/agents/${encodeURIComponent(agent.agentId)}`}>{agent.agentId}</Link>
                  </th>
                  <td>
                    <StatusBadge status={agent.status} />
                  </td>
                  <td>
                    <code>{agent.publicAddress}</code>
                  </td>
                  <td>
                    <Time value={agent.lastSeenAt} relative />
                  </td>
                  <td>
                    {expiries === undefined ? (
                      <span className="muted">—</span>
                    ) : (
                      <Time value={expiries.get(agent.agentId)} relative />
                    )}
                  </td>
                  <td className="wrap small">
                    {Object.entries(agent.labels)
                      .map(([key, value]) => `${key}=${value}`)
                      .join(', ')}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
