import { useState, type FormEvent } from 'react';
import {
  Dialog,
  Empty,
  ErrorMessage,
  JsonView,
  Loading,
  PageHeader,
  Section,
  StatusBadge,
  Time,
} from '../components/common';
import { Field } from '../components/field';
import type {
  DeadLetterMessage,
  DeadLetterView,
  DismissOutcome,
  ProjectionSchema,
  ProjectorStatus,
  RebuildStatus,
  RetryOutcome,
} from '#contracts';
import { api, ApiError, describeError } from '../lib/api';
import { formatDuration, formatNumber, localInputToIso } from '../lib/format';
import { useDocumentTitle, useInterval, useResource } from '../lib/hooks';
import { useLiveRefresh } from '../lib/live-context';
import { Link, useSearchParams } from '../lib/router';

const FINISHED = new Set(['done', 'failed']);

/** Long error texts (a schema's every complaint) cut for tables and notices; the whole text is one click away. */
function shorten(text: string, length = 200): string {
  return text.length > length ? `${text.slice(0, length)}…` : text;
}

function percentOf(rebuild: RebuildStatus): number {
  if (rebuild.phase === 'done') return 100;
  if (rebuild.target <= 0) return rebuild.phase === 'preparing' ? 0 : 100;
  return Math.min(100, Math.floor((rebuild.sequence / rebuild.target) * 100));
}

/** A rebuild's progress: bar, phase, events/s and ETA; the verification's differences when it has them. */
export function RebuildProgress({ rebuild }: { rebuild: RebuildStatus }) {
  const percent = percentOf(rebuild);
  const tone =
    rebuild.phase === 'done' ? ' progress-done' : rebuild.phase === 'failed' ? ' progress-failed' : '';
  return (
    <div className={`progress${tone}`} data-rebuild={rebuild.id} data-phase={rebuild.phase}>
      <div
        className="progress-track"
        role="progressbar"
        aria-label={`Rebuild of ${rebuild.projections.join(', ')}`}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent}
        aria-valuetext={`${rebuild.phase}, ${percent}%`}
      >
        <div className="progress-fill" style={{ width: `${percent}%` }} />
      </div>
      <div className="progress-facts">
        <span>
          <StatusBadge status={rebuild.phase} /> {percent}%
        </span>
        <span>
          event {formatNumber(rebuild.sequence)} of {formatNumber(rebuild.target)}
        </span>
        <span>{formatNumber(Math.round(rebuild.eventsPerSecond))} events/s</span>
        <span>
          ETA{' '}
          {FINISHED.has(rebuild.phase)
            ? '—'
            : rebuild.etaSeconds === null
              ? 'unknown'
              : formatDuration(rebuild.etaSeconds * 1000)}
        </span>
        <span>
          {rebuild.mode === 'swap' ? 'swap into the live tables' : `time-travel view ${rebuild.schema}`}
        </span>
      </div>
      {rebuild.error && (
        <p className="notice notice-error" role="alert">
          The rebuild failed: {rebuild.error}
        </p>
      )}
      {rebuild.phase === 'done' && rebuild.mode === 'inspect' && (
        <p className="notice notice-good">
          Done. <Link to={`/replay/views/${rebuild.schema}`}>Open the time-travel view {rebuild.schema}</Link>
        </p>
      )}
      {rebuild.differences && rebuild.differences.some((d) => d.onlyLive + d.onlyRebuilt > 0) && (
        <p className="notice notice-warn">
          The rebuilt tables differed from the live ones:{' '}
          {rebuild.differences
            .filter((d) => d.onlyLive + d.onlyRebuilt > 0)
            .map((d) => `${d.table} (${d.onlyRebuilt} only rebuilt, ${d.onlyLive} only live)`)
            .join('; ')}
        </p>
      )}
    </div>
  );
}

function CurrentRebuild({ id }: { id: string }) {
  const rebuild = useResource(`rebuild:${id}`, (signal) =>
    api.get<RebuildStatus>(`/admin/projections/rebuilds/${id}`, undefined, signal),
  );
  const running = !rebuild.data || !FINISHED.has(rebuild.data.phase);
  useInterval(rebuild.refresh, 500, running && rebuild.error === undefined);
  if (rebuild.error !== undefined && !rebuild.data) {
    return (
      <ErrorMessage error={rebuild.error} title="Could not read the rebuild" onRetry={rebuild.refresh} />
    );
  }
  if (!rebuild.data) return <Loading what="Starting" />;
  return <RebuildProgress rebuild={rebuild.data} />;
}

function StartRebuild({
  projections,
  onStarted,
}: {
  projections: string[];
  onStarted: (rebuild: RebuildStatus) => void;
}) {
  const [projection, setProjection] = useState('all');
  const [mode, setMode] = useState<'swap' | 'inspect'>('swap');
  const [asOf, setAsOf] = useState<'end' | 'sequence' | 'time'>('end');
  const [sequence, setSequence] = useState('');
  const [time, setTime] = useState('');
  const [label, setLabel] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const body: Record<string, unknown> = { mode };
    if (mode === 'inspect') {
      if (asOf === 'sequence') body.asOf = { sequence: Number(sequence) };
      if (asOf === 'time') body.asOf = { time: localInputToIso(time) ?? time };
      if (label.trim()) body.label = label.trim();
    }
    try {
      onStarted(
        await api.post<RebuildStatus>(`/admin/projections/${encodeURIComponent(projection)}/rebuild`, body),
      );
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  const fieldError = (field: string) =>
    error instanceof ApiError && error.field?.startsWith(field) ? error.message : null;
  return (
    <form onSubmit={submit} aria-label="Start a rebuild">
      {error !== null && (
        <p className="notice notice-error" role="alert">
          {describeError(error)}
        </p>
      )}
      <div className="form-row">
        <Field label="Projection">
          {(props) => (
            <select {...props} value={projection} onChange={(event) => setProjection(event.target.value)}>
              <option value="all">all projections</option>
              {projections.map((name) => (
                <option key={name} value={name}>
                  {name}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field
          label="Mode"
          hint={
            mode === 'swap'
              ? 'Rebuild from the first event beside the live tables, then swap them in.'
              : 'Rebuild into a separate view you can browse, as of a point in the log.'
          }
        >
          {(props) => (
            <select
              {...props}
              value={mode}
              onChange={(event) => setMode(event.target.value as 'swap' | 'inspect')}
            >
              <option value="swap">rebuild and swap</option>
              <option value="inspect">time travel (view as of…)</option>
            </select>
          )}
        </Field>
      </div>
      {mode === 'inspect' && (
        <div className="form-row">
          <Field label="As of">
            {(props) => (
              <select
                {...props}
                value={asOf}
                onChange={(event) => setAsOf(event.target.value as typeof asOf)}
              >
                <option value="end">the end of the log</option>
                <option value="sequence">a sequence</option>
                <option value="time">a time</option>
              </select>
            )}
          </Field>
          {asOf === 'sequence' && (
            <Field label="Sequence" error={fieldError('asOf')}>
              {(props) => (
                <input
                  {...props}
                  type="number"
                  min={0}
                  value={sequence}
                  onChange={(event) => setSequence(event.target.value)}
                  required
                />
              )}
            </Field>
          )}
          {asOf === 'time' && (
            <Field label="Time" error={fieldError('asOf')}>
              {(props) => (
                <input
                  {...props}
                  type="datetime-local"
                  step={1}
                  value={time}
                  onChange={(event) => setTime(event.target.value)}
                  required
                />
              )}
            </Field>
          )}
          <Field
            label="View name (optional)"
            hint="a-z, 0-9 and _; the view is asof_<name>"
            error={fieldError('label')}
          >
            {(props) => (
              <input
                {...props}
                value={label}
                spellCheck={false}
                onChange={(event) => setLabel(event.target.value)}
              />
            )}
          </Field>
        </div>
      )}
      <div className="form-actions">
        <button type="submit" className="button-primary" disabled={busy}>
          {busy ? 'Starting…' : 'Start rebuild'}
        </button>
      </div>
    </form>
  );
}

function Views() {
  const schemas = useResource('schemas', (signal) =>
    api.get<{ schemas: ProjectionSchema[] }>('/admin/projections/schemas', undefined, signal),
  );
  useInterval(schemas.refresh, 5_000);
  const [error, setError] = useState<unknown>(null);
  const views = (schemas.data?.schemas ?? []).filter((schema) => schema.schema.startsWith('asof_'));
  const drop = async (schema: string) => {
    setError(null);
    try {
      await api.delete(`/admin/projections/schemas/${schema}`);
      schemas.refresh();
    } catch (caught) {
      setError(caught);
    }
  };
  return (
    <Section title="Time-travel views">
      {error !== null && <ErrorMessage error={error} title="Could not drop the view" />}
      {schemas.error !== undefined && !schemas.data && (
        <ErrorMessage error={schemas.error} onRetry={schemas.refresh} />
      )}
      {schemas.loading && <Loading what="Loading views" />}
      {schemas.data && views.length === 0 && (
        <Empty>No time-travel view. Start a rebuild in “time travel” mode to open one.</Empty>
      )}
      {views.length > 0 && (
        <table>
          <caption className="visually-hidden">Time-travel views</caption>
          <thead>
            <tr>
              <th scope="col">View</th>
              <th scope="col">As of sequence</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {views.map((view) => (
              <tr key={view.schema}>
                <th scope="row">
                  <Link to={`/replay/views/${view.schema}`}>{view.schema}</Link>
                </th>
                <td>{formatNumber(Math.min(...Object.values(view.checkpoints)))}</td>
                <td>
                  <button
                    type="button"
                    onClick={() => void drop(view.schema)}
                    aria-label={`Drop ${view.schema}`}
                  >
                    Drop
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}

/** Open and retrying letters still wait for someone; resolved and dismissed ones do not. */
function waitingStatus(status: DeadLetterView['status']): boolean {
  return status === 'open' || status === 'retrying';
}

function DeadLetters() {
  const [status, setStatus] = useState('open');
  const letters = useResource(`dead-letters:${status}`, (signal) =>
    api.get<{ deadLetters: DeadLetterView[] }>('/admin/dead-letters', { status, limit: 100 }, signal),
  );
  useInterval(letters.refresh, 10_000);
  const [outcome, setOutcome] = useState<{ id: string; text: string; good: boolean } | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [opened, setOpened] = useState<DeadLetterView | null>(null);
  const [quarantining, setQuarantining] = useState<DeadLetterView | null>(null);
  const [reason, setReason] = useState('');
  const [byMessage, setByMessage] = useState(false);
  const messages = useResource(`dead-letter-messages:${status}:${byMessage}`, (signal) =>
    byMessage
      ? api.get<{ messages: DeadLetterMessage[] }>(
          '/admin/dead-letters/messages',
          { status, limit: 50 },
          signal,
        )
      : Promise.resolve({ messages: [] }),
  );
  useInterval(messages.refresh, 10_000);
  const [dismissing, setDismissing] = useState<{ id: string; sequence: number; whole: boolean } | null>(null);
  const dismiss = async (target: { id: string; sequence: number; whole: boolean }) => {
    setBusy(target.id);
    setOutcome(null);
    try {
      const result = await api.post<DismissOutcome>(`/admin/dead-letters/${target.id}/dismiss`, {
        reason,
        scope: target.whole ? 'message' : 'letter',
      });
      setOutcome({
        id: target.id,
        good: true,
        text: result.changed
          ? `Dismissed ${result.dismissed.length} dead letter(s) of event #${result.sequence}: ${result.dismissed
              .map((letter) => letter.consumer)
              .join(', ')}.`
          : `Nothing of event #${result.sequence} was waiting any more.`,
      });
      setDismissing(null);
      setReason('');
    } catch (caught) {
      setOutcome({ id: target.id, good: false, text: describeError(caught) });
    } finally {
      setBusy(null);
      letters.refresh();
      messages.refresh();
    }
  };
  const quarantine = async (letter: DeadLetterView) => {
    setBusy(letter.id);
    setOutcome(null);
    try {
      const result = await api.post<{ changed: boolean; deadLettersResolved: number }>(
        `/events/${letter.sequence}/quarantine`,
        { reason },
      );
      setOutcome({
        id: letter.id,
        good: true,
        text: result.changed
          ? `Event #${letter.sequence} is quarantined: readers skip it; ${result.deadLettersResolved} dead letter(s) settled.`
          : `Event #${letter.sequence} was quarantined already.`,
      });
      setQuarantining(null);
      setReason('');
    } catch (caught) {
      setOutcome({ id: letter.id, good: false, text: describeError(caught) });
    } finally {
      setBusy(null);
      letters.refresh();
    }
  };
  const retry = async (letter: DeadLetterView) => {
    setBusy(letter.id);
    setOutcome(null);
    try {
      const result = await api.post<RetryOutcome>(`/admin/dead-letters/${letter.id}/retry`);
      setOutcome({
        id: letter.id,
        good: result.outcome !== 'failed',
        text:
          result.outcome === 'resolved'
            ? `Dead letter ${letter.id} was handled this time.`
            : result.outcome === 'rebuilding'
              ? `Dead letter ${letter.id}: its projection is being rebuilt (${result.rebuild?.id ?? ''}).`
              : `Dead letter ${letter.id} failed again: ${shorten(result.error ?? 'no reason given')}`,
      });
    } catch (caught) {
      setOutcome({ id: letter.id, good: false, text: describeError(caught) });
    } finally {
      setBusy(null);
      letters.refresh();
    }
  };
  return (
    <Section
      title="Dead letters"
      id="dead-letters"
      actions={
        <>
          <Field label="Status" className="inline">
            {(props) => (
              <select {...props} value={status} onChange={(event) => setStatus(event.target.value)}>
                <option value="open">open</option>
                <option value="retrying">retrying</option>
                <option value="resolved">resolved</option>
                <option value="dismissed">dismissed</option>
              </select>
            )}
          </Field>
          <label className="inline">
            <input
              type="checkbox"
              checked={byMessage}
              onChange={(event) => setByMessage(event.target.checked)}
            />{' '}
            Group by message
          </label>
        </>
      }
    >
      {outcome && (
        <p className={`notice ${outcome.good ? 'notice-good' : 'notice-error'}`} role="status">
          {outcome.text}
        </p>
      )}
      {letters.error !== undefined && <ErrorMessage error={letters.error} onRetry={letters.refresh} />}
      {letters.loading && <Loading what="Loading dead letters" />}
      {letters.data && letters.data.deadLetters.length === 0 && (
        <Empty>No {status} dead letter: every consumer handled every event.</Empty>
      )}
      {byMessage && messages.data && messages.data.messages.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Dead letters by message</caption>
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Consumers</th>
                <th scope="col">Waiting</th>
                <th scope="col">Since</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {messages.data.messages.map((message) => {
                const waiting = message.letters.find(
                  (letter) => letter.status === 'open' || letter.status === 'retrying',
                );
                return (
                  <tr key={`${message.stream}:${message.sequence}`} data-sequence={message.sequence}>
                    <th scope="row">
                      <code>{message.eventType ?? 'undecodable'}</code>
                      <div className="muted small">
                        {message.stream} #{message.sequence} · <code>{message.subject}</code>
                      </div>
                    </th>
                    <td className="wrap small">
                      {message.letters.map((letter) => (
                        <span key={letter.id} className="badge" title={`${letter.status}: ${letter.error}`}>
                          {letter.consumer} ({letter.status})
                        </span>
                      ))}
                    </td>
                    <td className="num">
                      {message.waiting} of {message.letters.length}
                    </td>
                    <td>
                      <Time value={message.firstAt} relative />
                    </td>
                    <td>
                      {waiting && (
                        <button
                          type="button"
                          disabled={busy !== null}
                          onClick={() =>
                            setDismissing({ id: waiting.id, sequence: message.sequence, whole: true })
                          }
                          aria-label={`Dismiss the dead letters of event ${message.sequence}`}
                        >
                          Dismiss all…
                        </button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {!byMessage && letters.data && letters.data.deadLetters.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Dead letters</caption>
            <thead>
              <tr>
                <th scope="col">Id</th>
                <th scope="col">Consumer</th>
                <th scope="col">Event</th>
                <th scope="col">Error</th>
                <th scope="col">Deliveries</th>
                <th scope="col">Since</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {letters.data.deadLetters.map((letter) => (
                <tr
                  key={letter.id}
                  data-consumer={letter.consumer}
                  data-sequence={letter.sequence}
                  data-status={letter.status}
                >
                  <th scope="row">{letter.id}</th>
                  <td>{letter.consumer}</td>
                  <td>
                    <code>{letter.eventType ?? 'undecodable'}</code>
                    {letter.eventType === null && waitingStatus(letter.status) && (
                      <span
                        className="badge badge-warn"
                        title="The record it sits on cannot be read until it is quarantined"
                      >
                        needs quarantine
                      </span>
                    )}
                    <div className="muted small">
                      {letter.stream} #{letter.sequence}
                    </div>
                  </td>
                  <td className="wrap reason small" title={letter.error}>
                    {shorten(letter.error, 160)}
                  </td>
                  <td className="num">{letter.deliveries}</td>
                  <td>
                    <Time value={letter.createdAt} relative />
                  </td>
                  <td>
                    <div className="row-actions">
                      <button type="button" onClick={() => setOpened(letter)}>
                        Open
                      </button>
                      {waitingStatus(letter.status) && (
                        <button
                          type="button"
                          disabled={busy !== null}
                          onClick={() => void retry(letter)}
                          aria-label={`Retry dead letter ${letter.id}`}
                        >
                          {busy === letter.id ? 'Retrying…' : 'Retry'}
                        </button>
                      )}
                      {(letter.status === 'open' || letter.status === 'retrying') && (
                        <button
                          type="button"
                          disabled={busy !== null}
                          onClick={() =>
                            setDismissing({ id: letter.id, sequence: letter.sequence, whole: false })
                          }
                          aria-label={`Dismiss dead letter ${letter.id}`}
                        >
                          Dismiss…
                        </button>
                      )}
                      {waitingStatus(letter.status) && letter.eventType === null && (
                        <button
                          type="button"
                          disabled={busy !== null}
                          onClick={() => setQuarantining(letter)}
                          aria-label={`Quarantine event ${letter.sequence}`}
                        >
                          Quarantine…
                        </button>
                      )}
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Dialog
        open={opened !== null}
        title={`Dead letter ${opened?.id ?? ''}`}
        onClose={() => setOpened(null)}
        wide
      >
        {opened && <JsonView value={opened} label={`Dead letter ${opened.id} as JSON`} />}
      </Dialog>
      <Dialog
        open={dismissing !== null}
        title={`Dismiss dead letters of event #${dismissing?.sequence ?? ''}`}
        onClose={() => setDismissing(null)}
      >
        {dismissing && (
          <form
            onSubmit={(event) => {
              event.preventDefault();
              void dismiss(dismissing);
            }}
          >
            <p>
              A dismissed dead letter is not handled and nobody is asked about it again. The event stays in
              the log; your name and reason are kept with the dismissal.
            </p>
            <label>
              <input
                type="checkbox"
                checked={dismissing.whole}
                onChange={(event) => setDismissing({ ...dismissing, whole: event.target.checked })}
              />{' '}
              Every waiting dead letter of this event (one per consumer)
            </label>
            <Field label="Reason">
              {(props) => (
                <input
                  {...props}
                  required
                  maxLength={200}
                  value={reason}
                  onChange={(event) => setReason(event.target.value)}
                />
              )}
            </Field>
            <button type="submit" disabled={busy !== null || reason.trim() === ''}>
              {busy === dismissing.id ? 'Dismissing…' : 'Dismiss'}
            </button>
          </form>
        )}
      </Dialog>
      <Dialog
        open={quarantining !== null}
        title={`Quarantine event #${quarantining?.sequence ?? ''}`}
        onClose={() => setQuarantining(null)}
      >
        {quarantining && (
          <form
            onSubmit={(event) => {
              event.preventDefault();
              void quarantine(quarantining);
            }}
          >
            <p>
              The message at #{quarantining.sequence} on <code>{quarantining.subject}</code> cannot be
              decoded. Quarantined, every reader skips it and the record works again. The log keeps it, and
              your name and reason with it.
            </p>
            <Field label="Reason">
              {(props) => (
                <input
                  {...props}
                  required
                  maxLength={200}
                  value={reason}
                  onChange={(event) => setReason(event.target.value)}
                />
              )}
            </Field>
            <button type="submit" disabled={busy !== null || reason.trim() === ''}>
              {busy === quarantining.id ? 'Quarantining…' : 'Quarantine'}
            </button>
          </form>
        )}
      </Dialog>
    </Section>
  );
}

export function ReplayPage() {
  useDocumentTitle('Replay');
  const [params, setParams] = useSearchParams();
  const status = useResource('projector-status', (signal) =>
    api.get<ProjectorStatus>('/admin/projections/status', undefined, signal),
  );
  useLiveRefresh(() => true, status.refresh, 1_000);
  const rebuilds = useResource('rebuilds', (signal) =>
    api.get<{ rebuilds: RebuildStatus[] }>('/admin/projections/rebuilds', undefined, signal),
  );
  const anyRunning = (rebuilds.data?.rebuilds ?? []).some((rebuild) => !FINISHED.has(rebuild.phase));
  useInterval(rebuilds.refresh, anyRunning || params.rebuild ? 1_000 : 10_000);
  const others = (rebuilds.data?.rebuilds ?? []).filter((rebuild) => rebuild.id !== params.rebuild);

  return (
    <>
      <PageHeader title="Replay" />
      <Section title="Projector">
        {status.error !== undefined && (
          <ErrorMessage error={status.error} title="Could not ask the projector" onRetry={status.refresh} />
        )}
        {status.loading && <Loading what="Asking the projector" />}
        {status.data && (
          <dl className="facts">
            <dt>Position</dt>
            <dd>#{formatNumber(status.data.position)}</dd>
            <dt>End of the log</dt>
            <dd>#{formatNumber(status.data.logEnd)}</dd>
            <dt>Lag</dt>
            <dd>{formatNumber(status.data.lag)} events</dd>
            <dt>Projections</dt>
            <dd>{status.data.projections.join(', ')}</dd>
          </dl>
        )}
      </Section>
      <Section title="Rebuild">
        <StartRebuild
          projections={status.data?.projections ?? []}
          onStarted={(rebuild) => {
            setParams({ rebuild: rebuild.id }, { replace: true });
            rebuilds.refresh();
          }}
        />
        {params.rebuild && <CurrentRebuild id={params.rebuild} />}
      </Section>
      {others.length > 0 && (
        <Section title="Other rebuilds">
          {others.slice(0, 10).map((rebuild) => (
            <div key={rebuild.id}>
              <p className="small muted">
                {rebuild.id} · {rebuild.projections.join(', ')} · started{' '}
                <Time value={rebuild.startedAt} relative />
              </p>
              <RebuildProgress rebuild={rebuild} />
            </div>
          ))}
        </Section>
      )}
      <Views />
      <DeadLetters />
    </>
  );
}
