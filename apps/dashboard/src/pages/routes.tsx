import { useState } from 'react';
import { Empty, ErrorMessage, Freshness, Loading, PageHeader, Pager } from '../components/common';
import { Field } from '../components/field';
import { RemoveRouteDialog, RouteFormDialog, RouteTable } from '../components/routes';
import type { AgentView, RouteListResult, RouteView } from '#contracts';
import { api, ROUTE_KINDS, ROUTE_STATUSES } from '../lib/api';
import { useDocumentTitle, useResource } from '../lib/hooks';
import { useLiveRefresh } from '../lib/live-context';
import { useSearchParams } from '../lib/router';

const LIMIT = 50;
/** The API filters by a whole host name (RFC 1123 labels): checked here rather than sent to fail. */
const HOSTNAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/;

export function RoutesPage() {
  useDocumentTitle('Routes');
  const [params, setParams] = useSearchParams();
  const offset = Number(params.offset ?? 0) || 0;
  const query = {
    agentId: params.agent,
    kind: params.kind,
    status: params.status,
    hostname: params.hostname,
    limit: LIMIT,
    offset,
  };
  const key = `routes:${JSON.stringify(query)}`;
  const routes = useResource(key, (signal) => api.get<RouteListResult>('/routes', query, signal));
  const agents = useResource('agents', (signal) =>
    api.get<{ agents: AgentView[] }>('/agents', undefined, signal),
  );
  useLiveRefresh(
    (change) => change.aggregate.type === 'route' || change.aggregate.type === 'hostname',
    routes.refresh,
  );
  useLiveRefresh((change) => change.aggregate.type === 'agent', agents.refresh);
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<RouteView | null>(null);
  const [removing, setRemoving] = useState<RouteView | null>(null);
  const [hostname, setHostname] = useState(params.hostname ?? '');
  const [hostnameError, setHostnameError] = useState<string | null>(null);

  const filter = (changes: Record<string, string>) =>
    setParams({ ...changes, offset: undefined }, { replace: true });

  return (
    <>
      <PageHeader title="Routes">
        <Freshness loadedAt={routes.loadedAt} refreshing={routes.refreshing} />
        <button type="button" className="button-primary" onClick={() => setCreating(true)}>
          New route
        </button>
      </PageHeader>
      <form
        className="filters"
        role="search"
        onSubmit={(event) => {
          event.preventDefault();
          const wanted = hostname.trim().toLowerCase();
          if (wanted && !HOSTNAME.test(wanted)) {
            setHostnameError('Give a whole host name, such as shop.apps.example.com.');
            return;
          }
          setHostnameError(null);
          filter({ hostname: wanted });
        }}
      >
        <Field label="Agent">
          {(props) => (
            <select
              {...props}
              value={params.agent ?? ''}
              onChange={(event) => filter({ agent: event.target.value })}
            >
              <option value="">any</option>
              {(agents.data?.agents ?? []).map((agent) => (
                <option key={agent.agentId} value={agent.agentId}>
                  {agent.agentId}
                </option>
              ))}
              {params.agent && !agents.data?.agents.some((agent) => agent.agentId === params.agent) && (
                <option value={params.agent}>{params.agent}</option>
              )}
            </select>
          )}
        </Field>
        <Field label="Kind">
          {(props) => (
            <select
              {...props}
              value={params.kind ?? ''}
              onChange={(event) => filter({ kind: event.target.value })}
            >
              <option value="">any</option>
              {ROUTE_KINDS.map((kind) => (
                <option key={kind} value={kind}>
                  {kind}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Status">
          {(props) => (
            <select
              {...props}
              value={params.status ?? ''}
              onChange={(event) => filter({ status: event.target.value })}
            >
              <option value="">any</option>
              {ROUTE_STATUSES.map((status) => (
                <option key={status} value={status}>
                  {status}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Hostname" error={hostnameError}>
          {(props) => (
            <input
              {...props}
              type="search"
              value={hostname}
              placeholder="shop.apps.example.com"
              spellCheck={false}
              onChange={(event) => setHostname(event.target.value)}
            />
          )}
        </Field>
        <button type="submit">Filter</button>
      </form>
      {routes.error !== undefined && (
        <ErrorMessage error={routes.error} title="Could not read the routes" onRetry={routes.refresh} />
      )}
      {routes.loading && <Loading what="Loading routes" />}
      {routes.data && routes.data.routes.length === 0 && (
        <Empty>
          {Object.values(query).filter((value) => value !== undefined && value !== '').length > 2
            ? 'No route matches these filters.'
            : 'No route yet: agents request them, or create one here.'}
        </Empty>
      )}
      {routes.data && routes.data.routes.length > 0 && (
        <>
          <RouteTable
            routes={routes.data.routes}
            caption="Routes"
            onEdit={setEditing}
            onRemove={setRemoving}
          />
          <Pager
            offset={offset}
            limit={LIMIT}
            total={routes.data.total}
            label="Routes"
            onChange={(next) => setParams({ offset: next || undefined })}
          />
        </>
      )}
      <RouteFormDialog
        open={creating || editing !== null}
        route={editing ?? undefined}
        agents={agents.data?.agents ?? []}
        defaultAgent={params.agent}
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
    </>
  );
}
