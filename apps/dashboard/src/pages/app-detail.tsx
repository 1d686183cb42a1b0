import { useState, type FormEvent } from 'react';
import {
  Empty,
  ErrorMessage,
  Freshness,
  Loading,
  NotAvailable,
  PageHeader,
  Pager,
  Section,
  StatusBadge,
  Time,
} from '../components/common';
import {
  CancelDeploymentDialog,
  canCancel,
  DeploymentTable,
  RollbackDialog,
} from '../components/deployments';
import { Field } from '../components/field';
import { LogPane } from '../components/log-pane';
import { PhaseTimeline } from '../components/phase-timeline';
import type { AppView, DeploymentView } from '#contracts';
import { api, ApiError, describeError, newIdempotencyKey } from '../lib/api';
import { ENDPOINTS, useCapability } from '../lib/capabilities';
import { shortId } from '../lib/format';
import { useDocumentTitle, useResource } from '../lib/hooks';
import { useLiveRefresh } from '../lib/live-context';
import { Link, useSearchParams } from '../lib/router';

const DEPLOYMENTS_LIMIT = 20;

function sourceText(app: AppView): string {
  const source = app.config.source;
  if (source.type === 'git') return `${source.url}${source.ref ? ` @ ${source.ref}` : ''}`;
  return source.type === 'database' ? `${source.engine} database` : source.type;
}

/** Host name, agent, the serving release, the source, and the secrets by name and version (never values). */
function AppFacts({ app }: { app: AppView }) {
  return (
    <Section title="App">
      <dl className="facts">
        <dt>Host name</dt>
        <dd>
          {app.config.source.type === 'database' ? (
            // A database is reached by TLS with its name (SNI); its password lives on its agent only.
            <>
              <code>{app.hostname}</code>{' '}
              <span className="muted">
                · TLS by SNI · credentials: <code>cli databases credentials {app.appName}</code>
              </span>
            </>
          ) : (
            <a href={`https://${app.hostname}/`} target="_blank" rel="noreferrer">
              {app.hostname}
            </a>
          )}
        </dd>
        <dt>Runtime</dt>
        <dd>{app.config.runtime === 'container' ? 'container' : 'process'}</dd>
        <dt>Agent</dt>
        <dd>
          <Link to={`/agents/${encodeURIComponent(app.agentId)}`}>{app.agentId}</Link>
        </dd>
        <dt>Current release</dt>
        <dd data-current-release={app.current?.number ?? ''}>
          {app.current ? (
            <>
              #{app.current.number}
              {app.current.commit && (
                <>
                  {' '}
                  · commit <code>{app.current.commit.slice(0, 12)}</code>
                </>
              )}{' '}
              <span className="muted">· port {app.current.port}</span>
            </>
          ) : (
            <span className="muted">none yet</span>
          )}
        </dd>
        <dt>Source</dt>
        <dd>
          <code>{sourceText(app)}</code>
        </dd>
        <dt>Secrets</dt>
        <dd>
          {app.secrets.length === 0 ? (
            <span className="muted">none</span>
          ) : (
            <ul className="inline-list" aria-label="Secrets">
              {app.secrets.map((secret) => (
                <li key={secret.name} title={`set ${new Date(secret.setAt).toLocaleString()}`}>
                  <code>{secret.name}</code> <span className="muted">v{secret.version}</span>
                </li>
              ))}
            </ul>
          )}
        </dd>
        <dt>Deployments</dt>
        <dd>
          {app.deploymentsCount}
          {app.queuedDeploymentId && <span className="muted"> · one waiting its turn</span>}
        </dd>
      </dl>
    </Section>
  );
}

/** A new deployment of a ref (empty: the app's configured ref); selects it once accepted. */
function DeployForm({ app, onStarted }: { app: AppView; onStarted: (deployment: DeploymentView) => void }) {
  const [ref, setRef] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const trimmed = ref.trim();
      const deployment = await api.post<DeploymentView>(
        `/apps/${encodeURIComponent(app.appName)}/deployments`,
        trimmed ? { ref: trimmed } : {},
        { idempotencyKey: newIdempotencyKey() },
      );
      setRef('');
      onStarted(deployment);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  const configured = app.config.source.type === 'git' ? app.config.source.ref : null;
  const refError = error instanceof ApiError && error.field === 'ref' ? error.message : null;
  return (
    <form className="filters deploy-form" onSubmit={submit} noValidate aria-label="Deploy">
      <Field
        label="Ref"
        hint={`A branch, tag or commit; empty: ${configured ?? 'the default branch'}.`}
        error={refError}
      >
        {(props) => (
          <input
            {...props}
            value={ref}
            placeholder={configured ?? 'main'}
            maxLength={200}
            spellCheck={false}
            autoComplete="off"
            onChange={(event) => setRef(event.target.value)}
          />
        )}
      </Field>
      <button type="submit" className="button-primary" disabled={busy}>
        {busy ? 'Deploying…' : 'Deploy'}
      </button>
      {error !== null && !refError && (
        <p className="notice notice-error" role="alert">
          {describeError(error)}
        </p>
      )}
    </form>
  );
}

/** The selected deployment: its phases next to its output. */
function SelectedDeployment({
  deploymentId,
  onCancel,
}: {
  deploymentId: string;
  onCancel: (deployment: DeploymentView) => void;
}) {
  const deployment = useResource(`deployment:${deploymentId}`, (signal) =>
    api.get<DeploymentView>(`/deployments/${encodeURIComponent(deploymentId)}`, undefined, signal),
  );
  useLiveRefresh(
    (change) => change.aggregate.type === 'deployment' && change.aggregate.id === deploymentId,
    deployment.refresh,
    150,
  );
  const data = deployment.data;
  const title = data?.number != null ? `Deployment #${data.number}` : `Deployment ${shortId(deploymentId)}`;
  return (
    <div className="grid-2 deployment-detail" data-selected-deployment={deploymentId}>
      <Section
        title={title}
        actions={
          data && (
            <>
              <StatusBadge status={data.status} />
              {canCancel(data) && (
                <button type="button" onClick={() => onCancel(data)}>
                  Cancel…
                </button>
              )}
            </>
          )
        }
      >
        {deployment.error !== undefined && (
          <ErrorMessage error={deployment.error} onRetry={deployment.refresh} />
        )}
        {deployment.loading && <Loading what="Loading the deployment" />}
        {data && (
          <>
            <p className="muted small deployment-summary">
              {data.kind === 'rollback' ? 'Rollback' : 'Deploy'}
              {data.commit && (
                <>
                  {' '}
                  of <code>{data.commit.slice(0, 12)}</code>
                </>
              )}{' '}
              by {data.requestedBy.kind} {data.requestedBy.id}, <Time value={data.requestedAt} relative />
            </p>
            <PhaseTimeline deployment={data} />
          </>
        )}
      </Section>
      <Section title="Output">
        <LogPane key={deploymentId} deploymentId={deploymentId} />
      </Section>
    </div>
  );
}

export function AppDetailPage({ params }: { params: Record<string, string> }) {
  const appName = params.name ?? '';
  useDocumentTitle(`App ${appName}`);
  const available = useCapability(ENDPOINTS.apps);
  const [search, setSearch] = useSearchParams();
  const offset = Number(search.offset ?? 0) || 0;
  const path = `/apps/${encodeURIComponent(appName)}`;
  const app = useResource(available ? `app:${appName}` : null, (signal) =>
    api.get<AppView>(path, undefined, signal),
  );
  const deployments = useResource(available ? `app-deployments:${appName}:${offset}` : null, (signal) =>
    api.get<{ deployments: DeploymentView[]; total: number }>(
      `${path}/deployments`,
      { limit: DEPLOYMENTS_LIMIT, offset },
      signal,
    ),
  );
  useLiveRefresh((change) => change.aggregate.type === 'app' && change.aggregate.id === appName, app.refresh);
  const listed = new Set((deployments.data?.deployments ?? []).map((entry) => entry.deploymentId));
  useLiveRefresh(
    (change) =>
      (change.aggregate.type === 'app' && change.aggregate.id === appName) ||
      (change.aggregate.type === 'deployment' && listed.has(change.aggregate.id)),
    deployments.refresh,
  );
  const [cancelling, setCancelling] = useState<DeploymentView | null>(null);
  const [rollingBackTo, setRollingBackTo] = useState<AppView['keptReleases'][number] | null>(null);

  const data = app.data;
  // The one asked for, else the one running, else the newest.
  const selectedId =
    search.deployment ?? data?.activeDeploymentId ?? deployments.data?.deployments[0]?.deploymentId ?? null;
  const select = (deployment: DeploymentView) => setSearch({ deployment: deployment.deploymentId });

  if (available === false) {
    return (
      <>
        <PageHeader title={`App ${appName}`} />
        <NotAvailable what="Apps" endpoint={ENDPOINTS.apps} />
      </>
    );
  }
  return (
    <>
      <PageHeader title={`App ${appName}`}>
        <Freshness loadedAt={app.loadedAt} refreshing={app.refreshing} />
        <Link to="/apps">← All apps</Link>
      </PageHeader>
      {app.error !== undefined && (
        <ErrorMessage error={app.error} title={`Could not read app ${appName}`} onRetry={app.refresh} />
      )}
      {app.loading && <Loading what="Loading the app" />}
      {data && (
        <>
          <AppFacts app={data} />
          <Section title="Deploy">
            <DeployForm app={data} onStarted={select} />
          </Section>
          {selectedId ? (
            <SelectedDeployment key={selectedId} deploymentId={selectedId} onCancel={setCancelling} />
          ) : (
            <Empty>Not deployed yet: deploy a ref above.</Empty>
          )}
          <Section title="Deployments">
            {deployments.error !== undefined && (
              <ErrorMessage error={deployments.error} onRetry={deployments.refresh} />
            )}
            {deployments.loading && <Loading what="Loading deployments" />}
            {deployments.data && deployments.data.deployments.length === 0 && (
              <p className="state state-empty">No deployment yet.</p>
            )}
            {deployments.data && deployments.data.deployments.length > 0 && (
              <>
                <DeploymentTable
                  deployments={deployments.data.deployments}
                  selectedId={selectedId}
                  onCancel={setCancelling}
                />
                <Pager
                  offset={offset}
                  limit={DEPLOYMENTS_LIMIT}
                  total={deployments.data.total}
                  label="Deployments"
                  onChange={(next) => setSearch({ offset: next || undefined })}
                />
              </>
            )}
          </Section>
          <Section title="Releases kept">
            {data.keptReleases.length === 0 ? (
              <p className="state state-empty">No release yet: a rollback needs one built before.</p>
            ) : (
              <div className="table-wrap">
                <table className="compact">
                  <caption className="visually-hidden">Releases kept for rollback</caption>
                  <thead>
                    <tr>
                      <th scope="col">Release</th>
                      <th scope="col">Commit</th>
                      <th scope="col">Built</th>
                      <th scope="col">Actions</th>
                    </tr>
                  </thead>
                  <tbody>
                    {data.keptReleases.map((release) => (
                      <tr key={release.releaseId} data-release={release.number}>
                        <th scope="row">#{release.number}</th>
                        <td>{release.commit ? <code>{release.commit.slice(0, 12)}</code> : '—'}</td>
                        <td>
                          <Time value={release.builtAt} relative />
                        </td>
                        <td>
                          {release.releaseId === data.current?.releaseId ? (
                            <StatusBadge status="serving" />
                          ) : (
                            <button
                              type="button"
                              onClick={() => setRollingBackTo(release)}
                              aria-label={`Roll back to release #${release.number}`}
                            >
                              Roll back…
                            </button>
                          )}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Section>
          <CancelDeploymentDialog
            deployment={cancelling}
            onClose={() => setCancelling(null)}
            onCancelled={() => {
              setCancelling(null);
              deployments.refresh();
            }}
          />
          <RollbackDialog
            app={data}
            release={rollingBackTo}
            onClose={() => setRollingBackTo(null)}
            onStarted={(deployment) => {
              setRollingBackTo(null);
              select(deployment);
            }}
          />
        </>
      )}
    </>
  );
}
