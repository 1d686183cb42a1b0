import { useState } from 'react';
import {
  ErrorMessage,
  Loading,
  NotAvailable,
  PageHeader,
  Section,
  StatusBadge,
  Time,
} from '../components/common';
import { CertificateTable, RevokeDialog } from '../components/certificates';
import { EventTable } from '../components/event-table';
import { DangerDialog } from '../components/danger-dialog';
import { RemoveRouteDialog, RouteFormDialog, RouteTable } from '../components/routes';
import type {
  AgentView,
  CertificateListResult,
  CertificateView,
  EventPage,
  RouteListResult,
  RouteView,
} from '#contracts';
import { api } from '../lib/api';
import { ENDPOINTS, useCapability } from '../lib/capabilities';
import { useDocumentTitle, useResource } from '../lib/hooks';
import { useLiveRefresh } from '../lib/live-context';
import { Link } from '../lib/router';

function Routes({ agent }: { agent: AgentView }) {
  const routes = useResource(`agent-routes:${agent.agentId}`, (signal) =>
    api.get<RouteListResult>('/routes', { agentId: agent.agentId, limit: 500 }, signal),
  );
  useLiveRefresh((change) => change.aggregate.type === 'route', routes.refresh);
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<RouteView | null>(null);
  const [removing, setRemoving] = useState<RouteView | null>(null);
  return (
    <Section
      title="Routes"
      actions={
        agent.status !== 'deregistered' && (
          <button type="button" onClick={() => setCreating(true)}>
            New route
          </button>
        )
      }
    >
      {routes.error !== undefined && <ErrorMessage error={routes.error} onRetry={routes.refresh} />}
      {routes.loading && <Loading what="Loading routes" />}
      {routes.data && routes.data.routes.length === 0 && <p className="state state-empty">No route.</p>}
      {routes.data && routes.data.routes.length > 0 && (
        <RouteTable
          routes={routes.data.routes}
          caption={`Routes of ${agent.agentId}`}
          showAgent={false}
          onEdit={setEditing}
          onRemove={setRemoving}
        />
      )}
      <RouteFormDialog
        open={creating || editing !== null}
        route={editing ?? undefined}
        agents={[agent]}
        defaultAgent={agent.agentId}
        onClose={() => {
          setCreating(false);
          setEditing(null);
        }}
        onSaved={() => {
          setCreating(false);
          setEditing(null);
          routes.refresh();
        }}
      />
      <RemoveRouteDialog
        route={removing}
        onClose={() => setRemoving(null)}
        onRemoved={() => {
          setRemoving(null);
          routes.refresh();
        }}
      />
    </Section>
  );
}

function Certificates({ agentId }: { agentId: string }) {
  const available = useCapability(ENDPOINTS.agentCertificates);
  const certificates = useResource(available ? `agent-certificates:${agentId}` : null, (signal) =>
    api.get<CertificateListResult>(
      `/agents/${encodeURIComponent(agentId)}/certificates`,
      { limit: 100 },
      signal,
    ),
  );
  useLiveRefresh((change) => change.aggregate.type === 'certificate', certificates.refresh);
  const [revoking, setRevoking] = useState<CertificateView | null>(null);
  return (
    <Section title="Certificates">
      {available === false && <NotAvailable what="Certificates" endpoint={ENDPOINTS.agentCertificates} />}
      {certificates.error !== undefined && (
        <ErrorMessage error={certificates.error} onRetry={certificates.refresh} />
      )}
      {certificates.loading && <Loading what="Loading certificates" />}
      {certificates.data && certificates.data.certificates.length === 0 && (
        <p className="state state-empty">No certificate.</p>
      )}
      {certificates.data && certificates.data.certificates.length > 0 && (
        <CertificateTable
          certificates={certificates.data.certificates}
          caption={`Certificates of ${agentId}`}
          onRevoke={setRevoking}
        />
      )}
      <RevokeDialog
        certificate={revoking}
        onClose={() => setRevoking(null)}
        onRevoked={() => {
          setRevoking(null);
          certificates.refresh();
        }}
      />
    </Section>
  );
}

function Events({ agentId }: { agentId: string }) {
  const events = useResource(`agent-events:${agentId}`, (signal) =>
    api.get<EventPage>(`/agents/${encodeURIComponent(agentId)}/events`, { limit: 50 }, signal),
  );
  useLiveRefresh(() => true, events.refresh, 500);
  return (
    <Section
      title="Events"
      actions={
        <Link to={`/events?aggregateType=agent&aggregateId=${encodeURIComponent(agentId)}`}>
          In the log →
        </Link>
      }
    >
      {events.error !== undefined && <ErrorMessage error={events.error} onRetry={events.refresh} />}
      {events.loading && <Loading what="Loading events" />}
      {events.data && <EventTable events={events.data.events} caption={`Events of ${agentId}`} />}
    </Section>
  );
}

function DeregisterDialog({
  agent,
  open,
  onClose,
}: {
  agent: AgentView;
  open: boolean;
  onClose: () => void;
}) {
  return (
    <DangerDialog
      open={open}
      title={`Deregister ${agent.agentId}`}
      description="The agent loses its credentials, its certificates are revoked and its routes removed. It must enroll again with a new token."
      textLabel="Reason (optional)"
      action="Deregister"
      busyAction="Deregistering…"
      onClose={onClose}
      run={async (reason) => {
        await api.delete(`/agents/${encodeURIComponent(agent.agentId)}`, reason ? { reason } : {});
        onClose();
      }}
    />
  );
}

export function AgentDetailPage({ params }: { params: Record<string, string> }) {
  const agentId = params.id ?? '';
  useDocumentTitle(`Agent ${agentId}`);
  const agent = useResource(`agent:${agentId}`, (signal) =>
    api.get<AgentView>(`/agents/${encodeURIComponent(agentId)}`, undefined, signal),
  );
  useLiveRefresh(
    (change) => change.aggregate.type === 'agent' && change.aggregate.id === agentId,
    agent.refresh,
  );
  const [deregistering, setDeregistering] = useState(false);
  const data = agent.data;
  return (
    <>
      <PageHeader title={`Agent ${agentId}`}>
        <Link to="/agents">← All agents</Link>
        {data && data.status !== 'deregistered' && (
          <button type="button" onClick={() => setDeregistering(true)}>
            Deregister…
          </button>
        )}
      </PageHeader>
      {agent.error !== undefined && (
        <ErrorMessage error={agent.error} title={`Could not read agent ${agentId}`} onRetry={agent.refresh} />
      )}
      {agent.loading && <Loading what="Loading the agent" />}
      {data && (
        <>
          <Section title="Agent">
            <dl className="facts">
              <dt>Status</dt>
              <dd>
                <StatusBadge status={data.status} />
              </dd>
              <dt>Public address</dt>
              <dd>
                <code>{data.publicAddress}</code>
              </dd>
              <dt>Enrolled</dt>
              <dd>
                <Time value={data.enrolledAt} />
              </dd>
              <dt>Last seen</dt>
              <dd>
                <Time value={data.lastSeenAt} relative />
              </dd>
              {data.deregisteredAt && (
                <>
                  <dt>Deregistered</dt>
                  <dd>
                    <Time value={data.deregisteredAt} />
                  </dd>
                </>
              )}
              <dt>Labels</dt>
              <dd>
                {Object.entries(data.labels)
                  .map(([key, value]) => `${key}=${value}`)
                  .join(', ') || <span className="muted">none</span>}
              </dd>
            </dl>
          </Section>
          <Routes agent={data} />
          <Certificates agentId={agentId} />
          <Events agentId={agentId} />
          <DeregisterDialog agent={data} open={deregistering} onClose={() => setDeregistering(false)} />
        </>
      )}
    </>
  );
}
