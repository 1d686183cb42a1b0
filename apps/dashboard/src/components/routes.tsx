import { useState, type FormEvent } from 'react';
import type { AgentView, RouteKind, RouteView } from '#contracts';
import { api, ApiError, describeError, newIdempotencyKey } from '../lib/api';
import { formatDuration } from '../lib/format';
import { Link } from '../lib/router';
import { Dialog, StatusBadge, Time } from './common';
import { DangerDialog } from './danger-dialog';
import { Field } from './field';

/** Routes as a table: status with propagation time or failure reason; edit and remove when given. */
export function RouteTable({
  routes,
  caption,
  showAgent = true,
  onEdit,
  onRemove,
}: {
  routes: RouteView[];
  caption: string;
  showAgent?: boolean;
  onEdit?: (route: RouteView) => void;
  onRemove?: (route: RouteView) => void;
}) {
  return (
    <div className="table-wrap">
      <table>
        <caption className="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Hostname</th>
            <th scope="col">Kind</th>
            {showAgent && <th scope="col">Agent</th>}
            <th scope="col">Target</th>
            <th scope="col">Status</th>
            <th scope="col">Propagation</th>
            <th scope="col">Updated</th>
            {(onEdit || onRemove) && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {routes.map((route) => (
            <tr key={route.routeId} data-route={route.hostname} data-status={route.status}>
              <th scope="row" className="wrap">
                {route.hostname}
                <div className="muted small">revision {route.revision}</div>
              </th>
              <td>{route.kind}</td>
              {showAgent && (
                <td>
                  <Link to={`/agents/${encodeURIComponent(route.agentId)}`}>{route.agentId}</Link>
                </td>
              )}
              <td>
                <code>
                  {route.target.host}:{route.target.port}
                </code>
                {route.options.tlsToTarget && <div className="muted small">TLS to target</div>}
              </td>
              <td>
                <StatusBadge status={route.status} />
                {route.statusReason && route.status !== 'active' && (
                  <div className="reason small wrap">{route.statusReason}</div>
                )}
              </td>
              <td title={Object.keys(route.applied).join(', ') || undefined}>
                {route.propagationMs !== null ? formatDuration(route.propagationMs) : '—'}
                {route.configVersion !== null && (
                  <div className="muted small">config v{route.configVersion}</div>
                )}
              </td>
              <td>
                <Time value={route.updatedAt} relative />
              </td>
              {(onEdit || onRemove) && (
                <td>
                  {route.status !== 'removed' && (
                    <div className="row-actions">
                      {onEdit && (
                        <button
                          type="button"
                          onClick={() => onEdit(route)}
                          aria-label={`Edit ${route.hostname}`}
                        >
                          Edit
                        </button>
                      )}
                      {onRemove && (
                        <button
                          type="button"
                          onClick={() => onRemove(route)}
                          aria-label={`Remove ${route.hostname}`}
                        >
                          Remove
                        </button>
                      )}
                    </div>
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

function fieldError(error: unknown, field: string): string | null {
  return error instanceof ApiError && error.field && error.field.split('.')[0] === field
    ? error.message
    : null;
}

/** Create a route (no `route`) or change its target and options (`route`). */
export function RouteFormDialog({
  open,
  route,
  agents,
  defaultAgent,
  onClose,
  onSaved,
}: {
  open: boolean;
  route?: RouteView;
  agents: AgentView[];
  defaultAgent?: string;
  onClose: () => void;
  onSaved: (route: RouteView) => void;
}) {
  return (
    <Dialog open={open} title={route ? `Edit ${route.hostname}` : 'New route'} onClose={onClose}>
      {open && (
        <RouteForm
          route={route}
          agents={agents}
          defaultAgent={defaultAgent}
          onCancel={onClose}
          onSaved={onSaved}
        />
      )}
    </Dialog>
  );
}

function RouteForm({
  route,
  agents,
  defaultAgent,
  onCancel,
  onSaved,
}: {
  route?: RouteView;
  agents: AgentView[];
  defaultAgent?: string;
  onCancel: () => void;
  onSaved: (route: RouteView) => void;
}) {
  const usable = agents.filter((agent) => agent.status !== 'deregistered');
  const [agentId, setAgentId] = useState(route?.agentId ?? defaultAgent ?? usable[0]?.agentId ?? '');
  const [kind, setKind] = useState<RouteKind>(route?.kind ?? 'http');
  const [name, setName] = useState('');
  const [host, setHost] = useState(route?.target.host ?? '');
  const [port, setPort] = useState(route ? String(route.target.port) : '');
  const [tls, setTls] = useState(route?.options.tlsToTarget ?? false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const target = { host: host.trim(), port: Number(port) };
    try {
      let saved: RouteView;
      if (route) {
        saved = await api.patch<RouteView>(`/routes/${route.routeId}`, {
          target,
          options: { tlsToTarget: tls },
        });
      } else {
        const trimmed = name.trim().toLowerCase();
        const where =
          kind === 'http' && !trimmed.includes('.') ? { subdomain: trimmed } : { hostname: trimmed };
        saved = await api.post<RouteView>(
          '/routes',
          { agentId, kind, ...where, target, options: { tlsToTarget: tls } },
          { idempotencyKey: newIdempotencyKey() },
        );
      }
      onSaved(saved);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  const unplaced: boolean =
    error !== null &&
    !['agentId', 'hostname', 'subdomain', 'target', 'options'].some((field) => fieldError(error, field));
  return (
    <form onSubmit={submit} noValidate>
      {unplaced && (
        <p className="notice notice-error" role="alert">
          {describeError(error)}
        </p>
      )}
      {!route && (
        <>
          <Field label="Agent" error={fieldError(error, 'agentId')}>
            {(props) => (
              <select
                {...props}
                value={agentId}
                onChange={(event) => setAgentId(event.target.value)}
                required
              >
                {usable.length === 0 && <option value="">no agent enrolled</option>}
                {usable.map((agent) => (
                  <option key={agent.agentId} value={agent.agentId}>
                    {agent.agentId} ({agent.status})
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field label="Kind">
            {(props) => (
              <select {...props} value={kind} onChange={(event) => setKind(event.target.value as RouteKind)}>
                <option value="http">http (by Host)</option>
                <option value="tls-sni">tls-sni (by SNI)</option>
              </select>
            )}
          </Field>
          <Field
            label={kind === 'http' ? 'Subdomain or hostname' : 'Hostname'}
            hint={
              kind === 'http'
                ? 'A subdomain such as “shop” becomes shop.apps.<domain>.'
                : 'A name such as <agent>.mongodb.<domain>.'
            }
            error={fieldError(error, 'hostname') ?? fieldError(error, 'subdomain')}
          >
            {(props) => (
              <input
                {...props}
                value={name}
                onChange={(event) => setName(event.target.value)}
                autoComplete="off"
                spellCheck={false}
                required
              />
            )}
          </Field>
        </>
      )}
      <div className="form-row">
        <Field
          label="Target address"
          hint="An IP address on the agent's network."
          error={fieldError(error, 'target')}
        >
          {(props) => (
            <input
              {...props}
              value={host}
              onChange={(event) => setHost(event.target.value)}
              placeholder="10.0.0.5"
              autoComplete="off"
              spellCheck={false}
              required
            />
          )}
        </Field>
        <Field label="Port">
          {(props) => (
            <input
              {...props}
              type="number"
              min={1}
              max={65535}
              value={port}
              onChange={(event) => setPort(event.target.value)}
              required
            />
          )}
        </Field>
      </div>
      <label className="checkbox">
        <input type="checkbox" checked={tls} onChange={(event) => setTls(event.target.checked)} />
        Connect to the target with TLS
      </label>
      <div className="form-actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="button-primary" disabled={busy}>
          {busy ? 'Saving…' : route ? 'Save' : 'Create route'}
        </button>
      </div>
    </form>
  );
}

export function RemoveRouteDialog({
  route,
  onClose,
  onRemoved,
}: {
  route: RouteView | null;
  onClose: () => void;
  onRemoved: () => void;
}) {
  return (
    <DangerDialog
      open={route !== null}
      title={`Remove ${route?.hostname ?? ''}`}
      description={
        <>
          HAProxy stops routing <strong>{route?.hostname}</strong> and the host name becomes free again.
        </>
      }
      textLabel="Reason (optional)"
      action="Remove route"
      busyAction="Removing…"
      onClose={onClose}
      run={async (reason) => {
        if (!route) return;
        await api.delete(`/routes/${route.routeId}`, reason ? { reason } : {});
        onRemoved();
      }}
    />
  );
}
