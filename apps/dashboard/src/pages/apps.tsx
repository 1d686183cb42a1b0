import {
  Empty,
  ErrorMessage,
  Freshness,
  Loading,
  NotAvailable,
  PageHeader,
  Pager,
  StatusBadge,
  Time,
} from '../components/common';
import { deploymentPath } from '../components/deployments';
import type { AppView, DeploymentView } from '#contracts';
import { api } from '../lib/api';
import { ENDPOINTS, useCapability } from '../lib/capabilities';
import { useDocumentTitle, useResource } from '../lib/hooks';
import { useLiveRefresh } from '../lib/live-context';
import { Link, useSearchParams } from '../lib/router';

const LIMIT = 100;

/** The status of an app's newest deployment (one small read per app, following its live changes). */
function LastDeployment({ app }: { app: AppView }) {
  const last = useResource(`app-last-deployment:${app.appName}`, (signal) =>
    api.get<{ deployments: DeploymentView[] }>(
      `/apps/${encodeURIComponent(app.appName)}/deployments`,
      { limit: 1 },
      signal,
    ),
  );
  const deployment = last.data?.deployments[0];
  useLiveRefresh(
    (change) =>
      (change.aggregate.type === 'app' && change.aggregate.id === app.appName) ||
      (change.aggregate.type === 'deployment' && change.aggregate.id === deployment?.deploymentId),
    last.refresh,
  );
  if (last.error !== undefined) return <span className="text-bad small">could not read</span>;
  if (!deployment) return <span className="muted">{last.loading ? '…' : 'never deployed'}</span>;
  return (
    <>
      <Link to={deploymentPath(app.appName, deployment.deploymentId)}>
        <StatusBadge status={deployment.status} />
      </Link>{' '}
      <span className="muted small">
        {deployment.number !== null ? `#${deployment.number} ` : ''}
        <Time value={deployment.finishedAt ?? deployment.requestedAt} relative />
      </span>
    </>
  );
}

export function AppsPage() {
  useDocumentTitle('Apps');
  const available = useCapability(ENDPOINTS.apps);
  const [params, setParams] = useSearchParams();
  const offset = Number(params.offset ?? 0) || 0;
  const query = { limit: LIMIT, offset };
  const apps = useResource(available ? `apps:${JSON.stringify(query)}` : null, (signal) =>
    api.get<{ apps: AppView[]; total: number }>('/apps', query, signal),
  );
  useLiveRefresh((change) => change.aggregate.type === 'app', apps.refresh);

  if (available === false) {
    return (
      <>
        <PageHeader title="Apps" />
        <NotAvailable what="Apps" endpoint={ENDPOINTS.apps} />
      </>
    );
  }
  return (
    <>
      <PageHeader title="Apps">
        <Freshness loadedAt={apps.loadedAt} refreshing={apps.refreshing} />
      </PageHeader>
      {apps.error !== undefined && (
        <ErrorMessage error={apps.error} title="Could not read the apps" onRetry={apps.refresh} />
      )}
      {apps.loading && <Loading what="Loading apps" />}
      {apps.data && apps.data.apps.length === 0 && (
        <Empty>
          No app yet: create one with <code>cli apps create</code>.
        </Empty>
      )}
      {apps.data && apps.data.apps.length > 0 && (
        <>
          <div className="table-wrap">
            <table>
              <caption className="visually-hidden">Apps</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Agent</th>
                  <th scope="col">Host name</th>
                  <th scope="col">Current release</th>
                  <th scope="col">Last deployment</th>
                </tr>
              </thead>
              <tbody>
                {apps.data.apps.map((app) => (
                  <tr key={app.appName} data-app={app.appName}>
                    <th scope="row">
                      <Link to={`/apps/${encodeURIComponent(app.appName)}`}>{app.appName}</Link>
                    </th>
                    <td>
                      <Link to={`/agents/${encodeURIComponent(app.agentId)}`}>{app.agentId}</Link>
                    </td>
                    <td className="wrap">
                      <a href={`https://${app.hostname}/`} target="_blank" rel="noreferrer">
                        {app.hostname}
                      </a>
                    </td>
                    <td>
                      {app.current ? (
                        <>
                          #{app.current.number}
                          {app.current.commit && (
                            <code className="small"> {app.current.commit.slice(0, 12)}</code>
                          )}
                        </>
                      ) : (
                        <span className="muted">none</span>
                      )}
                    </td>
                    <td>
                      <LastDeployment app={app} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager
            offset={offset}
            limit={LIMIT}
            total={apps.data.total}
            label="Apps"
            onChange={(next) => setParams({ offset: next || undefined })}
          />
        </>
      )}
    </>
  );
}
