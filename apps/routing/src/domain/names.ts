import { DomainError, dnsLabel, hostname as hostnameSchema, type RouteKind } from '#contracts';

/**
 * Which host names a route may have. Pure: the service passes the installation's domain and zones.
 *
 * - `http`: exactly `<sub>.apps.<domain>` (one label: the front's wildcard certificate `*.apps.<domain>`
 *   covers one label and no more).
 * - `tls-sni`: `<owner>.<zone>.<domain>` or `<service>.<owner>.<zone>.<domain>`, where `<zone>` is one of
 *   the configured zones (`mongodb`, …) and `<owner>` names the agent whose namespace it is. An agent may
 *   only use its own namespace, so `<agentId>.mongodb.<domain>` — the name the CA issues to that agent —
 *   can never be taken by another agent.
 */
export interface NamingRules {
  /** The installation's domain, e.g. `cloudlunacy.localhost`. */
  domain: string;
  /** Zones of TLS (SNI) routes, e.g. `mongodb`. Never `apps`. */
  sniZones: readonly string[];
}

export const HTTP_ZONE = 'apps';

export interface HostRequest {
  kind: RouteKind;
  hostname?: string;
  subdomain?: string;
}

export interface ResolvedHostname {
  hostname: string;
  /** tls-sni: the agent namespace the name is in (its `<owner>` label). */
  namespace?: string;
  zone: string;
}

function invalid(field: string, message: string): DomainError {
  return new DomainError('invalid', message, field);
}

const isLabel = (value: string) => dnsLabel.safeParse(value).success;

/** The full host name a request asks for, checked against the naming rules; errors name the field. */
export function resolveHostname(request: HostRequest, rules: NamingRules): ResolvedHostname {
  const domain = rules.domain;
  if (request.kind === 'http') {
    if (request.subdomain !== undefined) {
      const name = `${request.subdomain}.${HTTP_ZONE}.${domain}`;
      if (!isLabel(request.subdomain) || !hostnameSchema.safeParse(name).success) {
        throw invalid('subdomain', `must be a DNS label making a host name of at most 253 characters`);
      }
      return { hostname: name, zone: HTTP_ZONE };
    }
    const name = request.hostname ?? '';
    const suffix = `.${HTTP_ZONE}.${domain}`;
    const sub = name.endsWith(suffix) ? name.slice(0, -suffix.length) : undefined;
    if (sub === undefined || !isLabel(sub) || !hostnameSchema.safeParse(name).success) {
      throw invalid('hostname', `an http route's host name must be <sub>.${HTTP_ZONE}.${domain}`);
    }
    return { hostname: name, zone: HTTP_ZONE };
  }
  if (request.subdomain !== undefined) {
    throw invalid('subdomain', 'tls-sni routes take a hostname <name>.<zone>.<domain>, not a subdomain');
  }
  const name = request.hostname ?? '';
  for (const zone of rules.sniZones) {
    const suffix = `.${zone}.${domain}`;
    if (!name.endsWith(suffix)) continue;
    const labels = name.slice(0, -suffix.length).split('.');
    if (labels.length > 2 || !labels.every(isLabel) || !hostnameSchema.safeParse(name).success) break;
    return { hostname: name, namespace: labels[labels.length - 1]!, zone };
  }
  throw invalid(
    'hostname',
    `a tls-sni route's host name must be <agentId>.<zone>.${domain} or <name>.<agentId>.<zone>.${domain} ` +
      `with a zone among ${rules.sniZones.join(', ')}`,
  );
}

/**
 * Whether this requester may give this name to the route's agent.
 * - An agent: only names in its own namespace (tls-sni).
 * - An admin: any name, except one in the namespace of another agent that exists (it would hijack the
 *   name the CA issues to that agent).
 * `namespaceAgentExists`: whether an agent with the namespace's id exists (enrolled or deregistered).
 */
export function checkNameAllowed(
  resolved: ResolvedHostname,
  requester: { kind: string; id: string },
  routeAgentId: string,
  namespaceAgentExists: boolean,
): void {
  if (resolved.namespace === undefined || resolved.namespace === routeAgentId) return;
  if (requester.kind === 'agent') {
    throw new DomainError(
      'forbidden',
      `an agent may only use tls-sni names in its own namespace: ${routeAgentId}.${resolved.zone}.<domain> ` +
        `or <name>.${routeAgentId}.${resolved.zone}.<domain>`,
      'hostname',
    );
  }
  if (namespaceAgentExists) {
    throw new DomainError(
      'conflict',
      `${resolved.hostname} is in the namespace of agent ${resolved.namespace}, not of ${routeAgentId}`,
      'hostname',
    );
  }
}
