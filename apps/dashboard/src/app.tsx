import { useEffect, useMemo, useState, type ComponentType } from 'react';
import { Dialog } from './components/common';
import { LiveIndicator } from './components/live-indicator';
import { CapabilitiesProvider, ENDPOINTS, useCapabilities } from './lib/capabilities';
import { formatRelative } from './lib/format';
import { useNow } from './lib/hooks';
import { LiveProvider } from './lib/live-context';
import { Link, matchPath, RouterProvider, useRouter } from './lib/router';
import { SessionProvider, useSession } from './lib/session-context';
import { AgentDetailPage } from './pages/agent-detail';
import { AppDetailPage } from './pages/app-detail';
import { AppsPage } from './pages/apps';
import { AgentsPage } from './pages/agents';
import { CertificatesPage } from './pages/certificates';
import { EventsPage } from './pages/events';
import { NotFoundPage } from './pages/not-found';
import { OverviewPage } from './pages/overview';
import { ReplayPage } from './pages/replay';
import { RoutesPage } from './pages/routes';
import { SignInPage } from './pages/sign-in';
import { TimeTravelPage } from './pages/time-travel';
import { DASHBOARD_PAGES } from '../../../libs/contracts/src/dashboard-pages';

type Page = ComponentType<{ params: Record<string, string> }>;

const PAGES: { path: string; page: Page }[] = [
  { path: DASHBOARD_PAGES.overview, page: OverviewPage },
  { path: DASHBOARD_PAGES.agents, page: AgentsPage },
  { path: DASHBOARD_PAGES.agent, page: AgentDetailPage },
  { path: DASHBOARD_PAGES.apps, page: AppsPage },
  { path: DASHBOARD_PAGES.app, page: AppDetailPage },
  { path: DASHBOARD_PAGES.routes, page: RoutesPage },
  { path: DASHBOARD_PAGES.certificates, page: CertificatesPage },
  { path: DASHBOARD_PAGES.events, page: EventsPage },
  { path: DASHBOARD_PAGES.replay, page: ReplayPage },
  { path: DASHBOARD_PAGES.timeTravel, page: TimeTravelPage },
];

/** `needs`: the endpoint without which the page is not listed (an API that does not serve it yet). */
const NAV: { to: string; label: string; key: string; needs?: string }[] = [
  { to: '/', label: 'Overview', key: 'o' },
  { to: '/agents', label: 'Agents', key: 'a' },
  { to: '/apps', label: 'Apps', key: 'd', needs: ENDPOINTS.apps },
  { to: '/routes', label: 'Routes', key: 'r' },
  { to: '/certificates', label: 'Certificates', key: 'c' },
  { to: '/events', label: 'Event log', key: 'e' },
  { to: '/replay', label: 'Replay', key: 'p' },
];

export function App() {
  return (
    <RouterProvider>
      <SessionProvider>
        <Gate />
      </SessionProvider>
    </RouterProvider>
  );
}

/** Signed out: the sign-in page, whatever the address (which is kept to come back to). */
function Gate() {
  const { session } = useSession();
  const { pathname, search, navigate } = useRouter();

  useEffect(() => {
    if (!session && pathname !== '/sign-in') {
      const next = pathname === '/' && !search ? '' : `?next=${encodeURIComponent(pathname + search)}`;
      navigate(`/sign-in${next}`, { replace: true });
    }
    if (session && pathname === '/sign-in') {
      const next = new URLSearchParams(search).get('next');
      navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/', { replace: true });
    }
  }, [session, pathname, search, navigate]);

  if (!session) return <SignInPage />;
  return (
    <CapabilitiesProvider>
      <LiveProvider>
        <Shell />
      </LiveProvider>
    </CapabilitiesProvider>
  );
}

function isActive(to: string, pathname: string): boolean {
  return to === '/' ? pathname === '/' : pathname === to || pathname.startsWith(`${to}/`);
}

function Shell() {
  const { pathname, navigate } = useRouter();
  const { session, signOut } = useSession();
  const now = useNow(30_000);
  const [help, setHelp] = useState(false);
  const { has } = useCapabilities();
  const nav = useMemo(() => NAV.filter((item) => !item.needs || has(item.needs) === true), [has]);

  // Keyboard: "g" then a letter goes to a page; "?" lists the shortcuts.
  useEffect(() => {
    let pendingG = false;
    let timer: number | undefined;
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement | null;
      if (
        event.ctrlKey ||
        event.metaKey ||
        event.altKey ||
        target?.closest('input, textarea, select, [contenteditable="true"], dialog')
      ) {
        return;
      }
      if (event.key === '?') {
        setHelp(true);
        return;
      }
      if (pendingG) {
        pendingG = false;
        const item = nav.find((entry) => entry.key === event.key);
        if (item) {
          event.preventDefault();
          navigate(item.to);
        }
        return;
      }
      if (event.key === 'g') {
        pendingG = true;
        window.clearTimeout(timer);
        timer = window.setTimeout(() => (pendingG = false), 1_500);
      }
    };
    window.addEventListener('keydown', onKey);
    return () => {
      window.removeEventListener('keydown', onKey);
      window.clearTimeout(timer);
    };
  }, [navigate, nav]);

  const match = PAGES.map((entry) => ({ entry, params: matchPath(entry.path, pathname) })).find(
    (candidate) => candidate.params !== null,
  );
  const Page = match?.entry.page ?? NotFoundPage;

  return (
    <div className="layout">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/" className="brand" aria-label="CloudLunacy overview">
          <img src="/favicon.svg" alt="" width="24" height="24" />
          <span>CloudLunacy</span>
        </Link>
        <LiveIndicator />
        <div className="topbar-user">
          <span title={session ? new Date(session.expiresAt).toLocaleString() : undefined}>
            {session?.name} · session ends {session ? formatRelative(session.expiresAt, now) : ''}
          </span>
          <button type="button" onClick={() => signOut('signed-out')}>
            Sign out
          </button>
        </div>
      </header>
      <nav className="sidebar" aria-label="Main">
        <ul>
          {nav.map((item) => (
            <li key={item.to}>
              <Link
                to={item.to}
                aria-current={isActive(item.to, pathname) ? 'page' : undefined}
                aria-keyshortcuts={`g ${item.key}`}
              >
                {item.label}
              </Link>
            </li>
          ))}
        </ul>
        <button type="button" className="button-link shortcuts-hint" onClick={() => setHelp(true)}>
          Keyboard shortcuts (?)
        </button>
      </nav>
      <main id="main" className="content" tabIndex={-1}>
        <Page key={pathname} params={match?.params ?? {}} />
      </main>
      <Dialog open={help} title="Keyboard shortcuts" onClose={() => setHelp(false)}>
        <dl className="shortcuts">
          {nav.map((item) => (
            <div key={item.key}>
              <dt>
                <kbd>g</kbd> <kbd>{item.key}</kbd>
              </dt>
              <dd>{item.label}</dd>
            </div>
          ))}
          <div>
            <dt>
              <kbd>Tab</kbd> / <kbd>Shift</kbd>+<kbd>Tab</kbd>
            </dt>
            <dd>Move between links, buttons and fields</dd>
          </div>
          <div>
            <dt>
              <kbd>Esc</kbd>
            </dt>
            <dd>Close a dialog</dd>
          </div>
        </dl>
      </Dialog>
    </div>
  );
}
