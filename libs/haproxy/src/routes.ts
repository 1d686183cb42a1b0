import { z } from 'zod';
import { dnsLabel, hostname, ipAddress, port, ROUTE_KINDS, uuid } from '#contracts';

/** A route as proxy-sync needs it: what the routes projection holds for one route. */
export interface RouteSpec {
  routeId: string;
  /** Counts the route's definition events (requested = 1, each update + 1). */
  revision: number;
  agentId: string;
  kind: 'http' | 'tls-sni';
  /** Lower-case RFC 1123 host name: the Host of an HTTP request or the SNI of a TLS ClientHello. */
  hostname: string;
  /** Where traffic goes: an IP literal and a port. */
  target: { host: string; port: number };
  options: { tlsToTarget: boolean };
}

/** The same schema the route events use (#contracts), so nothing the API refuses can get through here. */
export const routeSpecSchema = z.strictObject({
  routeId: uuid,
  revision: z.number().int().min(1),
  agentId: dnsLabel,
  kind: z.enum(ROUTE_KINDS),
  hostname,
  target: z.strictObject({ host: ipAddress, port }),
  options: z.strictObject({ tlsToTarget: z.boolean() }),
});

/**
 * Characters a map key or value may hold. A map line is `<key> <value>` and the value is split on `|`
 * by the frontends, so whitespace, control characters, `#` (a comment), `%` and `[` (sample-expression
 * syntax), quotes and backslashes must never reach it, whatever the schemas above let through.
 */
const MAP_WORD = /^[A-Za-z0-9._:-]+$/;

/** Thrown when something would render an unsafe map line or configuration word. */
export class UnsafeValueError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'UnsafeValueError';
  }
}

/** Defence in depth: a word that goes into a map file or haproxy.cfg. */
export function assertMapWord(value: string, field: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 253) {
    throw new UnsafeValueError(field, 'must be 1 to 253 characters');
  }
  if (!MAP_WORD.test(value)) {
    throw new UnsafeValueError(
      field,
      'must contain only letters, digits, ".", ":", "_" and "-" (no whitespace, control characters, "#", "|", "%", "[")',
    );
  }
  return value;
}

/** Why a route cannot be routed; reported as RouteFailed. */
export interface RouteRejection {
  route: RouteSpec;
  reason: string;
}

/**
 * Checks one route against the contract schemas and the map-word rules. Returns the reason it is
 * refused, or undefined when it is safe to render.
 */
export function routeProblem(route: RouteSpec): string | undefined {
  const parsed = routeSpecSchema.safeParse(route);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = (issue?.path ?? []).map(String).join('.') || 'route';
    return `invalid ${field}: ${issue?.message ?? 'invalid value'}`;
  }
  try {
    assertMapWord(route.hostname, 'hostname');
    assertMapWord(route.target.host, 'target.host');
  } catch (error) {
    return (error as Error).message;
  }
  return undefined;
}
