import { z } from 'zod';
import { defineEvent } from '../registry.js';
import { dnsLabel, label } from '../fields.js';

/** `stale`: the node's proxy-sync stopped reporting (decided by routing, which watches the reports). */
export const PROXY_NODE_STATUSES = ['in-sync', 'degraded', 'unreachable', 'stale'] as const;

/**
 * A proxy node's health changed. Appended on transitions only: the time of every reconcile is liveness,
 * not history, and lives in a KV bucket.
 */
export const ProxyNodeStatusChanged = defineEvent({
  type: 'ProxyNodeStatusChanged',
  aggregate: 'proxy-node',
  version: 1,
  schema: z.strictObject({
    node: dnsLabel,
    status: z.enum(PROXY_NODE_STATUSES),
    configVersion: z.number().int().min(0).nullable(),
    detail: label(500).nullable(),
  }),
});

export const proxyNodeEvents = [ProxyNodeStatusChanged] as const;
