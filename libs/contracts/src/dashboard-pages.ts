/**
 * The dashboard's pages, for the dashboard's router and for the API, which serves the dashboard's page
 * at these paths only (any other path is a 404, not the dashboard). No imports: the dashboard's bundle
 * includes this file as it is.
 */
export const DASHBOARD_PAGES = {
  overview: '/',
  agents: '/agents',
  agent: '/agents/:id',
  apps: '/apps',
  app: '/apps/:name',
  routes: '/routes',
  certificates: '/certificates',
  events: '/events',
  replay: '/replay',
  timeTravel: '/replay/views/:schema',
} as const;
export type DashboardPage = keyof typeof DASHBOARD_PAGES;

/** `/agents/:id` against a path: the parameters, or null. */
export function matchPath(pattern: string, pathname: string): Record<string, string> | null {
  const patternParts = pattern.split('/').filter(Boolean);
  const pathParts = pathname.split('/').filter(Boolean);
  if (patternParts.length !== pathParts.length) return null;
  const params: Record<string, string> = {};
  for (const [index, part] of patternParts.entries()) {
    const actual = pathParts[index]!;
    if (part.startsWith(':')) {
      try {
        params[part.slice(1)] = decodeURIComponent(actual);
      } catch {
        return null;
      }
    } else if (part !== actual) return null;
  }
  return params;
}

/** Whether `pathname` is one of the dashboard's pages. */
export function isDashboardPage(pathname: string): boolean {
  return Object.values(DASHBOARD_PAGES).some((pattern) => matchPath(pattern, pathname) !== null);
}
