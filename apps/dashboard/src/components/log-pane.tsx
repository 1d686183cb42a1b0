import { useEffect, useLayoutEffect, useRef, useState } from 'react';
import type { LogLine } from '#contracts';
import { currentBearer } from '../lib/api';
import { formatTime } from '../lib/format';
import { DeploymentLogStream, type LogStreamState } from '../lib/log-stream';

/** Lines the pane keeps (the API's largest tail): older ones are dropped as new ones come. */
export const LOG_LINES_KEPT = 5_000;
/** How close to the bottom (px) still counts as "at the end", so autoscroll resumes there. */
const BOTTOM_SLACK_PX = 24;

interface NumberedLine extends LogLine {
  /** A counter over the pane's life: a stable React key as old lines are dropped. */
  key: number;
}

/** The kept lines after `more` arrived: at most LOG_LINES_KEPT, the newest. */
export function keepLast<T>(lines: T[], more: T[], kept = LOG_LINES_KEPT): T[] {
  const all = lines.concat(more);
  return all.length > kept ? all.slice(-kept) : all;
}

const STATUS_TEXT: Record<LogStreamState['status'], string> = {
  connecting: 'Connecting…',
  streaming: 'Live',
  reconnecting: 'Reconnecting…',
  ended: 'Complete',
  refused: 'Unavailable',
};

/**
 * A deployment's output, following it live. Text only: every line is a React text node, so whatever a
 * build prints is shown, never interpreted. Scrolled to the end while new lines come, unless the reader
 * scrolled up (then it waits, and offers to jump back). Give it `key={deploymentId}`: another deployment
 * starts from an empty pane.
 */
export function LogPane({ deploymentId }: { deploymentId: string }) {
  const [lines, setLines] = useState<NumberedLine[]>([]);
  const [state, setState] = useState<LogStreamState>({ status: 'connecting', message: null });
  const [following, setFollowing] = useState(true);
  const box = useRef<HTMLDivElement>(null);
  const followingRef = useRef(true);

  useEffect(() => {
    let counter = 0;
    const stream = new DeploymentLogStream(deploymentId, LOG_LINES_KEPT, {
      token: currentBearer,
      onLines: (batch) =>
        setLines((previous) =>
          keepLast(
            previous,
            batch.map((line) => ({ ...line, key: counter++ })),
          ),
        ),
      onState: setState,
    });
    stream.start();
    return () => stream.stop();
  }, [deploymentId]);

  // After new lines are painted: keep the end in view while following.
  useLayoutEffect(() => {
    const element = box.current;
    if (element && followingRef.current) element.scrollTop = element.scrollHeight;
  }, [lines]);

  const onScroll = () => {
    const element = box.current;
    if (!element) return;
    const atEnd = element.scrollHeight - element.scrollTop - element.clientHeight <= BOTTOM_SLACK_PX;
    followingRef.current = atEnd;
    setFollowing(atEnd);
  };
  const jumpToEnd = () => {
    const element = box.current;
    followingRef.current = true;
    setFollowing(true);
    if (element) element.scrollTop = element.scrollHeight;
  };

  return (
    <div className="log-pane" data-log-status={state.status}>
      <div className="log-pane-bar">
        <span className={`log-status log-status-${state.status}`} title={state.message ?? undefined}>
          {STATUS_TEXT[state.status]}
        </span>
        <span className="muted small">
          {lines.length === LOG_LINES_KEPT
            ? `last ${LOG_LINES_KEPT} lines`
            : `${lines.length} line${lines.length === 1 ? '' : 's'}`}
        </span>
        {!following && (
          <button type="button" className="button-link" onClick={jumpToEnd}>
            Paused: jump to the latest ↓
          </button>
        )}
      </div>
      {state.message && state.status !== 'streaming' && (
        <p className="muted small log-pane-message">{state.message}</p>
      )}
      <div
        ref={box}
        className="log-lines"
        role="log"
        aria-label="Deployment output"
        aria-live="off"
        tabIndex={0}
        onScroll={onScroll}
      >
        {lines.length === 0 && <p className="muted">No output yet.</p>}
        {lines.map((line) => (
          <div key={line.key} className={`log-line log-${line.s}`}>
            <span className="log-time" title={line.t}>
              {line.t ? formatTime(line.t) : ''}
            </span>
            <span className="log-text">{line.x}</span>
          </div>
        ))}
      </div>
    </div>
  );
}
