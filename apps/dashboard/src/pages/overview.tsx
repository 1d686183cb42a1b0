import type { ReactNode } from 'react';
import {
  Empty,
  ErrorMessage,
  Freshness,
  Loading,
  NotAvailable,
  PageHeader,
  Section,
  StatusBadge,
  Time,
} from '../components/common';
import { EventTable } from '../components/event-table';
import type { EventPage, Overview, ProxyNodeView, RouteListResult } from '#contracts';
import { api } from '../lib/api';
import { ENDPOINTS, useCapability } from '../lib/capabilities';
import { formatDateTime, formatNumber } from '../lib/format';
import { useDocumentTitle, useInterval, useResource } from '../lib/hooks';
import { useLiveRefresh } from '../lib/live-context';
import { Link } from '../lib/router';

function Stat({ label, value, tone, to }: { label: string; value: number; tone?: string; to?: string }) {
  const body = (
    <>
      <span className="stat-value">{formatNumber(value)}</span>
      <span className="stat-label">{label}</span>
    </>
  );
  return (
    <li className={`stat${tone && value > 0 ? ` stat-${tone}` : ''}`}>
      {to ? (
        <Link to={to} className="stat-link">
          {body}
        </Link>
      ) : (
        body
      )}
    </li>
  );
}

/** Events per minute as bars; the numbers are in the label and the table of the summary. */
function EventRate({ perMinute }: { perMinute: Overview['events']['perMinute'] }) {
  const max = Math.max(1, ...perMinute.map((entry) => entry.count));
  const total = perMinute.reduce((sum, entry) => sum + entry.count, 0);
  const lastFive = perMinute.slice(-5).reduce((sum, entry) => sum + entry.count, 0);
  const width = 300;
  const height = 80;
  const bar = width / Math.max(1, perMinute.length);
  return (
    <figure className="rate">
      <svg
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-label={`${total} events in the last ${perMinute.length} minutes, ${(lastFive / 5).toFixed(1)} per minute over the last 5`}
        preserveAspectRatio="none"
      >
        {perMinute.map((entry, index) => {
          const h = entry.count === 0 ? 1 : Math.max(3, (entry.count / max) * (height - 4));
          return (
            <rect
              key={entry.minute}
              x={index * bar + 1}
              y={height - h}
              width={Math.max(1, bar - 2)}
              height={h}
              className={entry.count === 0 ? 'rate-bar rate-bar-zero' : 'rate-bar'}
            >
              <title>{`${formatDateTime(entry.minute)}: ${entry.count} events`}</title>
            </rect>
          );
        })}
      </svg>
      <figcaption>
        <strong>{(lastFive / 5).toFixed(1)}</strong> events/min (last 5 min) · {formatNumber(total)} in the
        last {perMinute.length} min
      </figcaption>
    </figure>
  );
}

function ProxyNodes() {
  const available = useCapability(ENDPOINTS.proxyNodes);
  const nodes = useResource(available ? 'proxy-nodes' : null, (signal) =>
    api.get<{ nodes: ProxyNodeView[] }>('/proxy-nodes', undefined, signal),
  );
  useLiveRefresh((change) => change.aggregate.type === 'proxy-node', nodes.refresh);
  // Last sync is liveness (not an event): read it again now and then.
  useInterval(nodes.refresh, 10_000, available === true);
  if (available === false) return <NotAvailable what="Proxy nodes" endpoint={ENDPOINTS.proxyNodes} />;
  if (nodes.error && !nodes.data) return <ErrorMessage error={nodes.error} onRetry={nodes.refresh} />;
  if (!nodes.data) return <Loading what="Loading proxy nodes" />;
  if (nodes.data.nodes.length === 0) {
    return <Empty>No proxy node has reported yet: start proxy-sync beside HAProxy.</Empty>;
  }
  return (
    <div className="table-wrap">
      <table>
        <caption className="visually-hidden">Proxy nodes</caption>
        <thead>
          <tr>
            <th scope="col">Node</th>
            <th scope="col">Status</th>
            <th scope="col">Applied version</th>
            <th scope="col">Last sync</th>
            <th scope="col">Routes</th>
            <th scope="col">Detail</th>
          </tr>
        </thead>
        <tbody>
          {nodes.data.nodes.map((node) => (
            <tr key={node.node}>
              <th scope="row">{node.node}</th>
              <td>
                <StatusBadge status={node.live?.status ?? node.status} />
              </td>
              <td>{node.live?.appliedVersion ?? node.configVersion ?? '—'}</td>
              <td>
                <Time value={node.live?.lastSyncAt ?? node.changedAt} relative />
              </td>
              <td>
                {node.live ? (
                  <>
                    {formatNumber(node.live.routes)}
                    {node.live.failedRoutes > 0 && (
                      <span className="text-bad"> ({node.live.failedRoutes} failed)</span>
                    )}
                  </>
                ) : (
                  '—'
                )}
              </td>
              <td className="wrap">{node.live?.detail ?? node.detail ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Attention({ overview }: { overview: Overview }) {
  const failed = useResource(
    overview.routes.byStatus.failed ? `failed-${overview.generatedAt}` : null,
    (signal) => api.get<RouteListResult>('/routes', { status: 'failed', limit: 5 }, signal),
  );
  const items: { key: string; node: ReactNode }[] = [];
  const offline = overview.agents.byStatus.offline ?? 0;
  if (offline > 0) {
    items.push({
      key: 'offline',
      node: (
        <Link to="/agents?status=offline">
          {offline} agent{offline === 1 ? ' is' : 's are'} offline
        </Link>
      ),
    });
  }
  if (overview.deadLetters.open > 0) {
    items.push({
      key: 'dead',
      node: (
        <Link to="/replay#dead-letters">
          {overview.deadLetters.open} dead letter{overview.deadLetters.open === 1 ? '' : 's'} waiting for a
          retry
        </Link>
      ),
    });
  }
  if (overview.certificates && overview.certificates.expired > 0) {
    items.push({
      key: 'expired',
      node: <Link to="/certificates">{overview.certificates.expired} installed certificate(s) expired</Link>,
    });
  }
  for (const route of failed.data?.routes ?? []) {
    items.push({
      key: route.routeId,
      node: (
        <>
          <Link to={`/routes?hostname=${encodeURIComponent(route.hostname)}&status=failed`}>
            {route.hostname}
          </Link>{' '}
          failed: <span className="reason">{route.statusReason ?? 'no reason given'}</span>
        </>
      ),
    });
  }
  const lag = overview.events.lastSequence - overview.projector.position;
  if (lag > 100)
    items.push({ key: 'lag', node: <>The projector is {formatNumber(lag)} events behind the log</> });
  if (items.length === 0) return <p className="all-good">Nothing needs attention.</p>;
  return (
    <ul className="attention">
      {items.map((item) => (
        <li key={item.key}>{item.node}</li>
      ))}
    </ul>
  );
}

export function OverviewPage() {
  useDocumentTitle('Overview');
  const overview = useResource('overview', (signal) => api.get<Overview>('/overview', undefined, signal));
  const recent = useResource('recent-events', (signal) =>
    api.get<EventPage>('/events', { limit: 10 }, signal),
  );
  useLiveRefresh(() => true, overview.refresh, 500);
  useLiveRefresh(() => true, recent.refresh, 300);
  // The rate chart moves with the clock even when nothing happens.
  useInterval(overview.refresh, 30_000);

  const data = overview.data;
  return (
    <>
      <PageHeader title="Overview">
        <Freshness loadedAt={overview.loadedAt} refreshing={overview.refreshing} />
      </PageHeader>
      {overview.error !== undefined && (
        <ErrorMessage error={overview.error} title="Could not read the overview" onRetry={overview.refresh} />
      )}
      {!data && !overview.error && <Loading what="Loading the overview" />}
      {data && (
        <>
          <div className="grid-2">
            <Section title="Agents">
              <ul className="stats" aria-label="Agents by status">
                <Stat
                  label="online"
                  value={data.agents.byStatus.online ?? 0}
                  tone="good"
                  to="/agents?status=online"
                />
                <Stat
                  label="offline"
                  value={data.agents.byStatus.offline ?? 0}
                  tone="bad"
                  to="/agents?status=offline"
                />
                <Stat
                  label="never connected"
                  value={data.agents.byStatus.enrolled ?? 0}
                  to="/agents?status=enrolled"
                />
              </ul>
            </Section>
            <Section title="Routes">
              <ul className="stats" aria-label="Routes by status">
                <Stat
                  label="active"
                  value={data.routes.byStatus.active ?? 0}
                  tone="good"
                  to="/routes?status=active"
                />
                <Stat
                  label="pending"
                  value={data.routes.byStatus.pending ?? 0}
                  tone="warn"
                  to="/routes?status=pending"
                />
                <Stat
                  label="failed"
                  value={data.routes.byStatus.failed ?? 0}
                  tone="bad"
                  to="/routes?status=failed"
                />
              </ul>
            </Section>
          </div>
          <div className="grid-2">
            <Section title="Needs attention">
              <Attention overview={data} />
            </Section>
            <Section title="Certificates">
              {data.certificates ? (
                <ul className="stats" aria-label="Certificates">
                  <Stat
                    label={`expiring within ${data.certificates.withinDays} days`}
                    value={data.certificates.expiringSoon}
                    tone="warn"
                    to="/certificates"
                  />
                  <Stat label="expired" value={data.certificates.expired} tone="bad" to="/certificates" />
                  <li className="stat stat-text">
                    <span className="stat-label">next expiry</span>
                    <Time value={data.certificates.nextExpiry} relative />
                  </li>
                </ul>
              ) : (
                <NotAvailable what="Certificates" endpoint="the certificates projection" />
              )}
            </Section>
          </div>
          <Section title="Proxy nodes">
            <ProxyNodes />
          </Section>
          <div className="grid-2">
            <Section title="Event rate">
              <EventRate perMinute={data.events.perMinute} />
              <p className="muted small">
                {formatNumber(data.events.total)} events in the log · projections at #
                {formatNumber(data.projector.position)} of #{formatNumber(data.events.lastSequence)}
              </p>
            </Section>
            <Section title="Recent events" actions={<Link to="/events">All events →</Link>}>
              {recent.error !== undefined && !recent.data && <ErrorMessage error={recent.error} />}
              {!recent.data && !recent.error && <Loading what="Loading events" />}
              {recent.data && <EventTable events={recent.data.events} compact caption="Recent events" />}
            </Section>
          </div>
        </>
      )}
    </>
  );
}
