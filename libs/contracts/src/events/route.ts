import { z } from 'zod';
import { defineEvent } from '../registry.js';
import { dnsLabel, hostname, ipAddress, label, port, uuid } from '../fields.js';

export const ROUTE_KINDS = ['http', 'tls-sni'] as const;
export type RouteKind = (typeof ROUTE_KINDS)[number];

/**
 * Where traffic goes. An IP literal, not a name: HAProxy forwards to it directly, and ownership of an
 * address can be checked against the agent's enrolled address.
 */
export const routeTarget = z.strictObject({ host: ipAddress, port });

export const routeOptions = z.strictObject({
  /** http routes: speak TLS to the target and verify its certificate against the CloudLunacy CA. */
  tlsToTarget: z.boolean().default(false),
});

export const RouteRequested = defineEvent({
  type: 'RouteRequested',
  aggregate: 'route',
  version: 1,
  schema: z.strictObject({
    routeId: uuid,
    agentId: dnsLabel,
    kind: z.enum(ROUTE_KINDS),
    hostname,
    target: routeTarget,
    options: routeOptions,
  }),
});

export const RouteUpdated = defineEvent({
  type: 'RouteUpdated',
  aggregate: 'route',
  version: 1,
  schema: z.strictObject({ routeId: uuid, target: routeTarget, options: routeOptions }),
});

export const RouteRemoved = defineEvent({
  type: 'RouteRemoved',
  aggregate: 'route',
  version: 1,
  schema: z.strictObject({ routeId: uuid, reason: label(200) }),
});

/**
 * A proxy node routes this revision of the route. `revision` counts the route's definition events
 * (requested = 1, each update + 1), so an old confirmation never marks a newer definition active.
 */
export const RouteApplied = defineEvent({
  type: 'RouteApplied',
  aggregate: 'route',
  version: 1,
  schema: z.strictObject({
    routeId: uuid,
    revision: z.number().int().min(1),
    node: dnsLabel,
    configVersion: z.number().int().min(0),
    propagationMs: z.number().min(0),
  }),
});

export const RouteFailed = defineEvent({
  type: 'RouteFailed',
  aggregate: 'route',
  version: 1,
  schema: z.strictObject({
    routeId: uuid,
    revision: z.number().int().min(1),
    node: dnsLabel,
    reason: label(500),
  }),
});

/**
 * A proxy node no longer routes a removed route: its map entry is gone and HAProxy was read back without
 * it. `revision` is the last revision the node had applied.
 */
export const RouteDropped = defineEvent({
  type: 'RouteDropped',
  aggregate: 'route',
  version: 1,
  schema: z.strictObject({
    routeId: uuid,
    revision: z.number().int().min(1),
    node: dnsLabel,
    configVersion: z.number().int().min(0),
  }),
});

export const routeEvents = [
  RouteRequested,
  RouteUpdated,
  RouteRemoved,
  RouteApplied,
  RouteFailed,
  RouteDropped,
] as const;
