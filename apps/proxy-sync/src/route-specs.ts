/**
 * A sourced route as libs/haproxy sees it (only the fields of the contract), and back: the change it came
 * from, for its reports.
 */
import type { RouteSpec } from '#haproxy';
import type { SourcedRoute } from './route-source.js';

/** The change a rendered route came from, as its source told (the lib sees only its spec). */
const sources = new WeakMap<RouteSpec, SourcedRoute>();
const specs = new WeakMap<object, RouteSpec>();

export function causeOf(spec: RouteSpec): Pick<SourcedRoute, 'cause'> {
  const cause = sources.get(spec)?.cause;
  return cause ? { cause } : {};
}

/**
 * Only the fields of the contract (the source may add its own); the same object while they are unchanged,
 * so the validation cache sees the same routes pass after pass. Non-objects pass through to be refused.
 */
export function specOf(route: SourcedRoute): RouteSpec {
  if (!route || typeof route !== 'object') return route as RouteSpec;
  const known = specs.get(route);
  if (
    known &&
    known.routeId === route.routeId &&
    known.revision === route.revision &&
    known.agentId === route.agentId &&
    known.kind === route.kind &&
    known.hostname === route.hostname &&
    known.target === route.target &&
    known.options === route.options
  ) {
    return known;
  }
  const { routeId, revision, agentId, kind, hostname, target, options } = route;
  const spec = { routeId, revision, agentId, kind, hostname, target, options };
  specs.set(route, spec);
  sources.set(spec, route);
  return spec;
}
