import type { AppView, DeploymentView } from '#contracts';
import { api, CANCELLABLE_DEPLOYMENT_STATUSES, newIdempotencyKey } from '../lib/api';
import { formatDuration, shortId } from '../lib/format';
import { Link } from '../lib/router';
import { StatusBadge, Time } from './common';
import { DangerDialog } from './danger-dialog';

export function canCancel(deployment: DeploymentView): boolean {
  return CANCELLABLE_DEPLOYMENT_STATUSES.includes(deployment.status) && !deployment.cancelRequested;
}

/** The address of an app's page with one deployment selected. */
export function deploymentPath(appName: string, deploymentId: string): string {
  return `/apps/${encodeURIComponent(appName)}?deployment=${encodeURIComponent(deploymentId)}`;
}

function label(deployment: DeploymentView): string {
  return deployment.number !== null ? `#${deployment.number}` : shortId(deployment.deploymentId);
}

/** An app's deployments, newest first: the selected one marked, Cancel for one that can still stop. */
export function DeploymentTable({
  deployments,
  selectedId,
  onCancel,
}: {
  deployments: DeploymentView[];
  selectedId: string | null;
  onCancel: (deployment: DeploymentView) => void;
}) {
  return (
    <div className="table-wrap">
      <table className="compact">
        <caption className="visually-hidden">Deployments</caption>
        <thead>
          <tr>
            <th scope="col">Deployment</th>
            <th scope="col">Kind</th>
            <th scope="col">Status</th>
            <th scope="col">Commit</th>
            <th scope="col">Requested</th>
            <th scope="col">Took</th>
            <th scope="col">By</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {deployments.map((deployment) => (
            <tr
              key={deployment.deploymentId}
              data-deployment={deployment.deploymentId}
              data-status={deployment.status}
              aria-current={deployment.deploymentId === selectedId ? 'true' : undefined}
              className={deployment.deploymentId === selectedId ? 'selected' : undefined}
            >
              <th scope="row">
                <Link to={deploymentPath(deployment.appName, deployment.deploymentId)}>
                  {label(deployment)}
                </Link>
              </th>
              <td>{deployment.kind}</td>
              <td>
                <StatusBadge status={deployment.status} />
                {deployment.failure && (
                  <div className="reason small wrap">
                    at {deployment.failure.phase}: {deployment.failure.reason}
                  </div>
                )}
              </td>
              <td>{deployment.commit ? <code>{deployment.commit.slice(0, 12)}</code> : '—'}</td>
              <td>
                <Time value={deployment.requestedAt} relative />
              </td>
              <td>
                {deployment.finishedAt
                  ? formatDuration(Date.parse(deployment.finishedAt) - Date.parse(deployment.requestedAt))
                  : '—'}
              </td>
              <td>
                {deployment.requestedBy.kind} {deployment.requestedBy.id}
              </td>
              <td>
                {canCancel(deployment) && (
                  <button
                    type="button"
                    onClick={() => onCancel(deployment)}
                    aria-label={`Cancel deployment ${label(deployment)}`}
                  >
                    Cancel
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function CancelDeploymentDialog({
  deployment,
  onClose,
  onCancelled,
}: {
  deployment: DeploymentView | null;
  onClose: () => void;
  onCancelled: (deployment: DeploymentView) => void;
}) {
  return (
    <DangerDialog
      open={deployment !== null}
      title={`Cancel deployment ${deployment ? label(deployment) : ''}`}
      description={
        deployment?.status === 'requested'
          ? 'It has not been claimed yet: it is cancelled at once.'
          : 'The agent is asked to stop it; the release serving now keeps serving.'
      }
      textLabel="Reason (optional)"
      action="Cancel deployment"
      busyAction="Cancelling…"
      onClose={onClose}
      run={async (reason) => {
        if (!deployment) return;
        const answer = await api.post<DeploymentView>(
          `/deployments/${encodeURIComponent(deployment.deploymentId)}/cancel`,
          reason ? { reason } : {},
          { idempotencyKey: newIdempotencyKey() },
        );
        onCancelled(answer);
      }}
    />
  );
}

type KeptRelease = AppView['keptReleases'][number];

export function RollbackDialog({
  app,
  release,
  onClose,
  onStarted,
}: {
  app: AppView;
  release: KeptRelease | null;
  onClose: () => void;
  onStarted: (deployment: DeploymentView) => void;
}) {
  return (
    <DangerDialog
      open={release !== null}
      title={`Roll ${app.appName} back to release #${release?.number ?? ''}`}
      description={
        <>
          Release <strong>#{release?.number}</strong>
          {release?.commit ? ` (commit ${release.commit.slice(0, 12)})` : ''} is started again and takes the
          traffic of <strong>{app.hostname}</strong> from release #{app.current?.number ?? '—'}, without a
          fetch or a build.
        </>
      }
      action="Roll back"
      busyAction="Starting the rollback…"
      onClose={onClose}
      run={async () => {
        if (!release) return;
        const deployment = await api.post<DeploymentView>(
          `/apps/${encodeURIComponent(app.appName)}/rollback`,
          { release: release.releaseId },
          { idempotencyKey: newIdempotencyKey() },
        );
        onStarted(deployment);
      }}
    />
  );
}
