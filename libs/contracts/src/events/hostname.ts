import { z } from 'zod';
import { defineEvent } from '../registry.js';
import { dnsLabel, hostname, uuid } from '../fields.js';

/** Appended with expected sequence 0 (first claim) or the release's sequence, so one host name has one owner. */
export const HostnameClaimed = defineEvent({
  type: 'HostnameClaimed',
  aggregate: 'hostname',
  version: 1,
  schema: z.strictObject({ hostname, routeId: uuid, agentId: dnsLabel }),
});

export const HostnameReleased = defineEvent({
  type: 'HostnameReleased',
  aggregate: 'hostname',
  version: 1,
  schema: z.strictObject({ hostname, routeId: uuid }),
});

export const hostnameEvents = [HostnameClaimed, HostnameReleased] as const;
