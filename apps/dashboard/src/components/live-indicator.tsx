import { useLive } from '../lib/live-context';
import { useNow } from '../lib/hooks';

/** Connected / reconnecting, in words and colour, announced politely to screen readers. */
export function LiveIndicator() {
  const { state, retryNow } = useLive();
  const now = useNow(1_000);
  const seconds = state.retryAt ? Math.max(0, Math.ceil((state.retryAt - now) / 1000)) : null;
  let text: string;
  let tone: string;
  switch (state.status) {
    case 'live':
      text = 'Live';
      tone = 'good';
      break;
    case 'connecting':
      text = 'Connecting…';
      tone = 'info';
      break;
    case 'reconnecting':
      text = seconds === null ? 'Reconnecting…' : `Reconnecting in ${seconds} s`;
      tone = 'warn';
      break;
    default:
      text = 'Offline';
      tone = 'muted';
  }
  const title =
    state.status === 'live'
      ? `Receiving changes as they happen${state.lastSequence !== null ? ` (last event #${state.lastSequence})` : ''}`
      : (state.lastError ?? 'Connecting to the live stream');
  return (
    <div className={`live live-${tone}`} data-live-status={state.status}>
      <span className="live-dot" aria-hidden="true" />
      <span role="status" aria-live="polite" title={title}>
        {text}
        {state.status === 'reconnecting' && state.lastError && (
          <span className="visually-hidden">: {state.lastError}</span>
        )}
      </span>
      {state.status === 'reconnecting' && state.retryAt !== null && (
        <button type="button" className="button-link" onClick={retryNow}>
          Retry now
        </button>
      )}
    </div>
  );
}
