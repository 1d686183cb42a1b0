import type { EventIndexEntry } from '#contracts';
import { Link } from '../lib/router';
import { Time } from './common';

/** Events as a table; each one opens its JSON (in place with `onOpen`, or on the event log page). */
export function EventTable({
  events,
  caption,
  compact = false,
  onOpen,
}: {
  events: EventIndexEntry[];
  caption: string;
  compact?: boolean;
  onOpen?: (sequence: number) => void;
}) {
  if (events.length === 0) return <p className="state state-empty">No events.</p>;
  return (
    <div className="table-wrap">
      <table className={compact ? 'compact' : undefined}>
        <caption className="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Type</th>
            <th scope="col">Aggregate</th>
            {!compact && <th scope="col">Actor</th>}
            <th scope="col">When</th>
          </tr>
        </thead>
        <tbody>
          {events.map((event) => (
            <tr key={event.sequence}>
              <td className="num">
                {onOpen ? (
                  <button
                    type="button"
                    className="button-link"
                    onClick={() => onOpen(event.sequence)}
                    aria-label={`Open event ${event.sequence} (${event.type})`}
                  >
                    {event.sequence}
                  </button>
                ) : (
                  <Link
                    to={`/events?open=${event.sequence}`}
                    aria-label={`Open event ${event.sequence} (${event.type})`}
                  >
                    {event.sequence}
                  </Link>
                )}
              </td>
              <td>
                <code>{event.type}</code>
              </td>
              <td className="wrap">
                <span className="muted">{event.aggregate.type}</span> {event.aggregate.id}
              </td>
              {!compact && (
                <td>
                  <span className="muted">{event.actor.kind}</span> {event.actor.id}
                </td>
              )}
              <td>
                <Time value={event.occurredAt} relative={compact} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
