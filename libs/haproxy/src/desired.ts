import {
  BACKENDS,
  MAPS,
  desiredStructure,
  type DynamicBackend,
  type MapName,
  type ProxyLayout,
  type Structure,
} from './layout.js';
import {
  UnsafeValueError,
  assertMapWord,
  routeProblem,
  type RouteRejection,
  type RouteSpec,
} from './routes.js';

/** Where one route lives: its map, key and value. */
export interface RouteBinding {
  route: RouteSpec;
  map: MapName;
  key: string;
  value: string;
}

export type DesiredMaps = Record<MapName, Map<string, string>>;

/** What HAProxy should look like for a set of routes. */
export interface DesiredState {
  structure: Structure;
  maps: DesiredMaps;
  /** Every route that is rendered, with its map entry. */
  bindings: RouteBinding[];
  /** Routes that cannot be rendered (invalid, or a host name another route already has). */
  rejected: RouteRejection[];
}

/** `<backend>|<ip>|<port>`: what the frontends split with word(n,|). */
export function mapValue(backend: DynamicBackend, target: { host: string; port: number }): string {
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
    throw new Error(`target.port ${target.port} is not a port`);
  }
  return `${backend}|${assertMapWord(target.host, 'target.host')}|${target.port}`;
}

export function parseMapValue(value: string): { backend: string; host: string; port: number } | undefined {
  const parts = value.split('|');
  if (parts.length !== 3 || !/^\d+$/.test(parts[2])) return undefined;
  return { backend: parts[0], host: parts[1], port: Number(parts[2]) };
}

export function bindingOf(route: RouteSpec): Omit<RouteBinding, 'route'> {
  const map = route.kind === 'tls-sni' ? MAPS.sni : MAPS.hosts;
  const backend =
    route.kind === 'tls-sni' ? BACKENDS.tcp : route.options.tlsToTarget ? BACKENDS.https : BACKENDS.http;
  return { map, key: assertMapWord(route.hostname, 'hostname'), value: mapValue(backend, route.target) };
}

type Checked =
  { problem: string; binding?: undefined } | { problem?: undefined; binding: Omit<RouteBinding, 'route'> };

interface Fingerprint {
  revision: unknown;
  agentId: unknown;
  kind: unknown;
  hostname: unknown;
  target: unknown;
  host: unknown;
  port: unknown;
  options: unknown;
  tlsToTarget: unknown;
  keys: number;
  targetKeys: number;
  optionKeys: number;
}

const keyCount = (value: unknown) => (value && typeof value === 'object' ? Object.keys(value).length : -1);

/** Every value the verdict on a route depends on. */
function fingerprint(route: RouteSpec): Fingerprint {
  const target = route.target as unknown;
  const options = route.options as unknown;
  const isTarget = target !== null && typeof target === 'object';
  const isOptions = options !== null && typeof options === 'object';
  return {
    revision: route.revision,
    agentId: route.agentId,
    kind: route.kind,
    hostname: route.hostname,
    target: isTarget ? 'object' : target,
    host: isTarget ? (target as RouteSpec['target']).host : undefined,
    port: isTarget ? (target as RouteSpec['target']).port : undefined,
    options: isOptions ? 'object' : options,
    tlsToTarget: isOptions ? (options as RouteSpec['options']).tlsToTarget : undefined,
    keys: keyCount(route),
    targetKeys: keyCount(target),
    optionKeys: keyCount(options),
  };
}

function unchanged(route: RouteSpec, print: Fingerprint): boolean {
  const target = route.target as unknown;
  const options = route.options as unknown;
  return (
    route.revision === print.revision &&
    route.hostname === print.hostname &&
    route.agentId === print.agentId &&
    route.kind === print.kind &&
    print.target === 'object' &&
    target !== null &&
    typeof target === 'object' &&
    (target as RouteSpec['target']).host === print.host &&
    (target as RouteSpec['target']).port === print.port &&
    print.options === 'object' &&
    options !== null &&
    typeof options === 'object' &&
    (options as RouteSpec['options']).tlsToTarget === print.tlsToTarget &&
    keyCount(route) === print.keys &&
    keyCount(target) === print.targetKeys &&
    keyCount(options) === print.optionKeys
  );
}

/**
 * Remembers the verdict on each route between passes, so 10,000 unchanged routes are not validated
 * again on every pass: a route is checked again as soon as any value the verdict depends on differs.
 * Routes that are gone are forgotten at each use.
 */
export class RouteCheckCache {
  private entries = new Map<unknown, { fingerprint: Fingerprint; verdict: Checked }>();
  private next = new Map<unknown, { fingerprint: Fingerprint; verdict: Checked }>();
  /**
   * The binding made for a route object from a verdict, with its owner slot: the same objects pass after
   * pass for an unchanged route, so a pass over 10,000 unchanged routes allocates nothing per route.
   */
  private bound = new WeakMap<object, { from: Checked; binding: RouteBinding; slot: string }>();

  /** The route's binding (with the route) and its slot `<map> <key>`, for a verdict without a problem. */
  bind(route: RouteSpec, verdict: Checked & { binding: Omit<RouteBinding, 'route'> }) {
    const known = this.bound.get(route);
    if (known && known.from === verdict) return known;
    const binding = { route, ...verdict.binding };
    const made = { from: verdict, binding, slot: `${binding.map} ${binding.key}` };
    this.bound.set(route, made);
    return made;
  }

  check(route: RouteSpec): Checked {
    if (!route || typeof route !== 'object') {
      return { problem: routeProblem(route) ?? 'not a route' };
    }
    const known = this.entries.get(route.routeId);
    if (known && unchanged(route, known.fingerprint)) {
      this.next.set(route.routeId, known);
      return known.verdict;
    }
    const problem = routeProblem(route);
    const verdict: Checked = problem ? { problem } : { binding: bindingOf(route) };
    this.next.set(route.routeId, { fingerprint: fingerprint(route), verdict });
    return verdict;
  }

  /** Keeps only what the pass that just ended saw. */
  endPass(): void {
    this.entries = this.next;
    this.next = new Map();
  }

  get size(): number {
    return this.entries.size;
  }
}

/**
 * Desired state from the routes of the projection. Invalid routes are refused (never rendered); when two
 * routes claim one host name in one map, the one with the smaller routeId keeps it (hostname ownership
 * makes this impossible in the projection; this only keeps a broken input from flapping). Pass a
 * RouteCheckCache kept between calls to skip validating unchanged routes again.
 */
export function desiredState(
  routes: readonly RouteSpec[],
  layout: ProxyLayout,
  cache: RouteCheckCache = new RouteCheckCache(),
): DesiredState {
  const owners = new Map<string, RouteBinding>();
  const rejected: RouteRejection[] = [];
  for (const route of routes) {
    const verdict = cache.check(route);
    if (verdict.problem !== undefined) {
      rejected.push({ route, reason: verdict.problem });
      continue;
    }
    const { binding, slot } = cache.bind(route, verdict);
    const owner = owners.get(slot);
    if (!owner) {
      owners.set(slot, binding);
      continue;
    }
    if (owner.route.routeId === route.routeId) continue;
    const [keep, lose] =
      String(route.routeId) < String(owner.route.routeId) ? [binding, owner] : [owner, binding];
    owners.set(slot, keep);
    rejected.push({
      route: lose.route,
      reason: `host name ${lose.route.hostname} is already routed by route ${keep.route.routeId}`,
    });
  }
  const maps: DesiredMaps = { hosts: new Map(), sni: new Map() };
  const bindings: RouteBinding[] = [];
  for (const binding of owners.values()) {
    maps[binding.map].set(binding.key, binding.value);
    bindings.push(binding);
  }
  cache.endPass();
  return { structure: desiredStructure(layout), maps, bindings, rejected };
}

/** A whole map line: `<host> <backend>|<ip>|<port>`, nothing else. */
const MAP_LINE = /^[A-Za-z0-9._:-]{1,253} [A-Za-z0-9._:-]{1,253}\|[A-Za-z0-9._:-]{1,253}\|\d{1,5}$/;

/**
 * The map file for a set of entries: one `<key> <value>` line each, in the map's order (the order of
 * the routes as the source lists them). Every line is checked again: nothing else can be written.
 */
/**
 * The file of a map without entries. Not empty: the Data Plane API requires a body to store a file, so
 * the file of a map whose last route was removed could never be written (every pass failed on it).
 * HAProxy skips lines starting with `#`.
 */
export const EMPTY_MAP_FILE = '# no routes\n';

export function renderMapFile(entries: ReadonlyMap<string, string>): string {
  if (entries.size === 0) return EMPTY_MAP_FILE;
  let text = '';
  for (const [key, value] of entries) {
    const line = `${key} ${value}`;
    if (!MAP_LINE.test(line))
      throw new UnsafeValueError('map line', `${JSON.stringify(line)} is not <host> <backend>|<ip>|<port>`);
    text += line + '\n';
  }
  return text;
}
