import { useState, type FormEvent } from 'react';
import { Dialog, ErrorMessage, Freshness, JsonView, Loading, PageHeader } from '../components/common';
import { EventTable } from '../components/event-table';
import { Field } from '../components/field';
import type { EventPage } from '#contracts';
import { ACTOR_KINDS, AGGREGATE_TYPES, api } from '../lib/api';
import { isoToLocalInput, localInputToIso } from '../lib/format';
import { useDocumentTitle, useResource } from '../lib/hooks';
import { useLiveRefresh } from '../lib/live-context';
import { useSearchParams } from '../lib/router';

const LIMIT = 50;
const FILTERS = ['type', 'aggregateType', 'aggregateId', 'actorKind', 'actorId', 'from', 'to'] as const;
type Filters = Record<(typeof FILTERS)[number], string>;

function EventDialog({ sequence, onClose }: { sequence: number | null; onClose: () => void }) {
  const event = useResource(sequence === null ? null : `event:${sequence}`, (signal) =>
    api.get<unknown>(`/events/${sequence}`, undefined, signal),
  );
  return (
    <Dialog open={sequence !== null} title={`Event #${sequence ?? ''}`} onClose={onClose} wide>
      {event.loading && <Loading what="Reading the event from the log" />}
      {event.error !== undefined && <ErrorMessage error={event.error} title="Could not read this event" />}
      {event.data !== undefined && <JsonView value={event.data} label={`Event ${sequence} as JSON`} />}
    </Dialog>
  );
}

export function EventsPage() {
  useDocumentTitle('Event log');
  const [params, setParams] = useSearchParams();
  const filters = Object.fromEntries(FILTERS.map((name) => [name, params[name] ?? ''])) as Filters;
  const [draft, setDraft] = useState<Filters>(filters);
  const [newer, setNewer] = useState<(string | undefined)[]>([]);
  const before = params.before;
  const query = { ...filters, before, limit: LIMIT };
  const key = `events:${JSON.stringify(query)}`;
  const events = useResource(key, (signal) => api.get<EventPage>('/events', query, signal));
  // New events matter only on the first page (newest first); older pages stay put.
  useLiveRefresh(() => before === undefined, events.refresh, 500);
  const open = params.open && /^[0-9]+$/.test(params.open) ? Number(params.open) : null;

  const apply = (event: FormEvent) => {
    event.preventDefault();
    setNewer([]);
    setParams(
      {
        ...draft,
        from: localInputToIso(draft.from) ?? '',
        to: localInputToIso(draft.to) ?? '',
        before: undefined,
      },
      { replace: true },
    );
  };
  const clear = () => {
    const empty = Object.fromEntries(FILTERS.map((name) => [name, ''])) as Filters;
    setDraft(empty);
    setNewer([]);
    setParams({ ...empty, before: undefined }, { replace: true });
  };
  const set = (name: keyof Filters) => (value: string) =>
    setDraft((previous) => ({ ...previous, [name]: value }));

  return (
    <>
      <PageHeader title="Event log">
        <Freshness loadedAt={events.loadedAt} refreshing={events.refreshing} />
      </PageHeader>
      <form className="filters" role="search" onSubmit={apply}>
        <Field label="Type">
          {(props) => (
            <input
              {...props}
              value={draft.type}
              placeholder="RouteRequested"
              spellCheck={false}
              onChange={(event) => set('type')(event.target.value.trim())}
            />
          )}
        </Field>
        <Field label="Aggregate">
          {(props) => (
            <select
              {...props}
              value={draft.aggregateType}
              onChange={(event) => set('aggregateType')(event.target.value)}
            >
              <option value="">any</option>
              {AGGREGATE_TYPES.map((type) => (
                <option key={type} value={type}>
                  {type}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Aggregate id">
          {(props) => (
            <input
              {...props}
              value={draft.aggregateId}
              spellCheck={false}
              onChange={(event) => set('aggregateId')(event.target.value.trim())}
            />
          )}
        </Field>
        <Field label="Actor">
          {(props) => (
            <select
              {...props}
              value={draft.actorKind}
              onChange={(event) => set('actorKind')(event.target.value)}
            >
              <option value="">any</option>
              {ACTOR_KINDS.map((kind) => (
                <option key={kind} value={kind}>
                  {kind}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Actor id">
          {(props) => (
            <input
              {...props}
              value={draft.actorId}
              spellCheck={false}
              onChange={(event) => set('actorId')(event.target.value.trim())}
            />
          )}
        </Field>
        <Field label="From">
          {(props) => (
            <input
              {...props}
              type="datetime-local"
              step={1}
              value={draft.from.includes('Z') ? isoToLocalInput(draft.from) : draft.from}
              onChange={(event) => set('from')(event.target.value)}
            />
          )}
        </Field>
        <Field label="To">
          {(props) => (
            <input
              {...props}
              type="datetime-local"
              step={1}
              value={draft.to.includes('Z') ? isoToLocalInput(draft.to) : draft.to}
              onChange={(event) => set('to')(event.target.value)}
            />
          )}
        </Field>
        <button type="submit" className="button-primary">
          Filter
        </button>
        <button type="button" onClick={clear}>
          Clear
        </button>
      </form>
      {events.error !== undefined && (
        <ErrorMessage error={events.error} title="Could not read the event log" onRetry={events.refresh} />
      )}
      {events.loading && <Loading what="Loading events" />}
      {events.data && (
        <>
          <EventTable
            events={events.data.events}
            caption="Events, newest first"
            onOpen={(sequence) => setParams({ open: sequence })}
          />
          <nav className="pager" aria-label="Event log pages">
            <span>
              {events.data.events.length > 0
                ? `#${events.data.events[0]!.sequence} to #${events.data.events[events.data.events.length - 1]!.sequence}`
                : ''}
            </span>
            <button
              type="button"
              disabled={before === undefined}
              onClick={() => {
                setNewer([]);
                setParams({ before: undefined });
              }}
            >
              Newest
            </button>
            <button
              type="button"
              disabled={before === undefined}
              onClick={() => {
                const previous = newer[newer.length - 1];
                setNewer(newer.slice(0, -1));
                setParams({ before: previous });
              }}
            >
              ← Newer
            </button>
            <button
              type="button"
              disabled={!events.data.next?.before}
              onClick={() => {
                setNewer([...newer, before]);
                setParams({ before: events.data?.next?.before });
              }}
            >
              Older →
            </button>
          </nav>
        </>
      )}
      <EventDialog sequence={open} onClose={() => setParams({ open: undefined }, { replace: true })} />
    </>
  );
}
