import { ErrorMessage, Loading, PageHeader, Section, StatusBadge, Time } from '../components/common';
import { RouteTable } from '../components/routes';
import type { AgentView, RouteListResult } from '#contracts';
import { api } from '../lib/api';
import { formatNumber } from '../lib/format';
import { useDocumentTitle, useResource } from '../lib/hooks';
import { Link, useSearchParams } from '../lib/router';

const TABS = ['routes', 'agents', 'hostnames'] as const;
type Tab = (typeof TABS)[number];

interface HostnameRow {
  hostname: string;
  routeId: string;
  agentId: string;
  claimedAt: string | null;
}

type ViewAnswer = { schema: string; asOfSequence: number } & (
  RouteListResult | { agents: AgentView[] } | { hostnames: HostnameRow[] }
);

/** A time-travel view: the projections as they were at a sequence of the log, read-only. */
export function TimeTravelPage({ params }: { params: Record<string, string> }) {
  const schema = params.schema ?? '';
  useDocumentTitle(`As of ${schema}`);
  const [query, setQuery] = useSearchParams();
  const tab: Tab = TABS.includes(query.tab as Tab) ? (query.tab as Tab) : 'routes';
  const view = useResource(`view:${schema}:${tab}`, (signal) =>
    api.get<ViewAnswer>(
      `/admin/projections/schemas/${encodeURIComponent(schema)}/${tab}`,
      { limit: 500 },
      signal,
    ),
  );
  const data = view.data;
  return (
    <>
      <PageHeader title={`Time travel: ${schema}`}>
        <Link to="/replay">← Replay</Link>
      </PageHeader>
      <p className="notice notice-info">
        {data
          ? `The projections as they were at event #${formatNumber(data.asOfSequence)} of the log. Nothing here changes with new events.`
          : 'The projections as they were at a point of the log.'}
      </p>
      <div className="page-actions" role="tablist" aria-label="Tables of the view">
        {TABS.map((name) => (
          <button
            key={name}
            type="button"
            role="tab"
            aria-selected={tab === name}
            className={tab === name ? 'button-primary' : undefined}
            onClick={() => setQuery({ tab: name }, { replace: true })}
          >
            {name}
          </button>
        ))}
      </div>
      <Section title={tab}>
        {view.error !== undefined && <ErrorMessage error={view.error} title="Could not read the view" />}
        {view.loading && <Loading what="Reading the view" />}
        {data &&
          'routes' in data &&
          (data.routes.length === 0 ? (
            <p className="state state-empty">No route at that point.</p>
          ) : (
            <RouteTable routes={data.routes} caption={`Routes as of ${schema}`} />
          ))}
        {data &&
          'agents' in data &&
          (data.agents.length === 0 ? (
            <p className="state state-empty">No agent at that point.</p>
          ) : (
            <table>
              <caption className="visually-hidden">Agents as of {schema}</caption>
              <thead>
                <tr>
                  <th scope="col">Agent</th>
                  <th scope="col">Status</th>
                  <th scope="col">Address</th>
                  <th scope="col">Enrolled</th>
                </tr>
              </thead>
              <tbody>
                {data.agents.map((agent) => (
                  <tr key={agent.agentId}>
                    <th scope="row">{agent.agentId}</th>
                    <td>
                      <StatusBadge status={agent.status} />
                    </td>
                    <td>
                      <code>{agent.publicAddress}</code>
                    </td>
                    <td>
                      <Time value={agent.enrolledAt} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ))}
        {data &&
          'hostnames' in data &&
          (data.hostnames.length === 0 ? (
            <p className="state state-empty">No host name claimed at that point.</p>
          ) : (
            <table>
              <caption className="visually-hidden">Host names as of {schema}</caption>
              <thead>
                <tr>
                  <th scope="col">Host name</th>
                  <th scope="col">Agent</th>
                  <th scope="col">Claimed</th>
                </tr>
              </thead>
              <tbody>
                {data.hostnames.map((row) => (
                  <tr key={row.hostname}>
                    <th scope="row">{row.hostname}</th>
                    <td>{row.agentId}</td>
                    <td>
                      <Time value={row.claimedAt} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ))}
      </Section>
    </>
  );
}
