import type { DeploymentView, PhaseView } from '#contracts';
import { formatDuration, formatTime } from '../lib/format';
import { useNow } from '../lib/hooks';

const STATE_TEXT: Record<PhaseView['state'], string> = {
  done: 'done',
  current: 'in progress',
  pending: 'waiting',
  skipped: 'skipped',
  failed: 'failed',
};

/** "1:05" to a deadline ahead, "passed 12 s ago" after it. */
export function countdown(deadlineAt: string, now: number): string {
  const left = new Date(deadlineAt).getTime() - now;
  if (left <= 0) return `deadline passed ${formatDuration(-left)} ago`;
  const seconds = Math.ceil(left / 1000);
  const minutes = Math.floor(seconds / 60);
  const text =
    minutes >= 60
      ? `${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, '0')}:${String(seconds % 60).padStart(2, '0')}`
      : `${minutes}:${String(seconds % 60).padStart(2, '0')}`;
  return `${text} left`;
}

function Countdown({ deadlineAt }: { deadlineAt: string }) {
  const now = useNow(1_000);
  return (
    <span className="phase-deadline" title={`deadline ${formatTime(deadlineAt)}`}>
      {countdown(deadlineAt, now)}
    </span>
  );
}

/** Why it stopped: the reason, the exit code or signal, and the last lines of output. */
function Failure({ deployment }: { deployment: DeploymentView }) {
  const failure = deployment.failure;
  if (!failure) return null;
  const exit =
    failure.exitCode !== null
      ? `exit code ${failure.exitCode}`
      : failure.signal !== null
        ? `signal ${failure.signal}`
        : null;
  return (
    <div className="phase-failure" role="note">
      <p>
        <strong>
          {deployment.status} at {failure.phase}:
        </strong>{' '}
        <span className="phase-failure-reason">{failure.reason}</span>
        {exit && <span className="muted"> ({exit})</span>}
        {failure.reverted && <span className="muted"> — traffic went back to the previous release</span>}
      </p>
      {failure.lastLines.length > 0 && (
        <pre className="phase-failure-lines" tabIndex={0} aria-label="Last lines of output">
          {failure.lastLines.join('\n')}
        </pre>
      )}
    </div>
  );
}

/**
 * A deployment's phases in order: when each was reached and how long it took; the current one counts
 * down to its deadline; a rollback's fetch and build, and what a finished deployment never reached, are
 * grey; where it failed is red, with the reason and the last lines.
 */
export function PhaseTimeline({ deployment }: { deployment: DeploymentView }) {
  const failedHere = deployment.phases.some((phase) => phase.state === 'failed');
  return (
    <div className="phase-timeline">
      <ol className="phases" aria-label={`Phases of deployment ${deployment.number ?? ''}`.trim()}>
        {deployment.phases.map((phase) => (
          <li
            key={phase.phase}
            className={`phase phase-${phase.state}`}
            data-phase={phase.phase}
            data-state={phase.state}
          >
            <span className="phase-marker" aria-hidden="true" />
            <span className="phase-name">{phase.phase}</span>
            <span className="phase-state">{STATE_TEXT[phase.state]}</span>
            <span className="phase-at">
              {phase.at && (
                <time dateTime={phase.at} title={phase.at}>
                  {formatTime(phase.at)}
                </time>
              )}
            </span>
            <span className="phase-duration">
              {phase.durationMs !== null ? formatDuration(phase.durationMs) : ''}
            </span>
            <span className="phase-extra">
              {phase.state === 'current' && phase.deadlineAt && <Countdown deadlineAt={phase.deadlineAt} />}
              {phase.phase === 'verified' && deployment.verification?.skipped && (
                <span className="muted small">not probed: {deployment.verification.skipped}</span>
              )}
            </span>
            {phase.state === 'failed' && <Failure deployment={deployment} />}
          </li>
        ))}
      </ol>
      {!failedHere && <Failure deployment={deployment} />}
      {deployment.cancelRequested && !deployment.finishedAt && (
        <p className="notice notice-warn">
          Cancel requested at {formatTime(deployment.cancelRequested.at)}
          {deployment.cancelRequested.reason ? `: ${deployment.cancelRequested.reason}` : ''}; waiting for the
          agent to stop it.
        </p>
      )}
    </div>
  );
}
