import { z } from 'zod';
import { addressPolicyConfigSchema, dnsLabel, hostname } from '#contracts';
import { eventStoreConfigSchema } from '#eventstore';
import { databaseConfigSchema } from '#persistence';
import { env } from '#platform';
import { HTTP_ZONE } from './domain/names.js';

const zoneList = z
  .string()
  .default('mongodb,redis')
  .transform((value) => value.split(',').map((zone) => zone.trim()))
  .pipe(
    z
      .array(dnsLabel)
      .min(1, 'must name at least one zone')
      .refine((zones) => !zones.includes(HTTP_ZONE), {
        message: `must not include "${HTTP_ZONE}": it is the zone of http routes`,
      })
      .refine((zones) => new Set(zones).size === zones.length, { message: 'must not repeat a zone' }),
  );

export const routingConfigSchema = eventStoreConfigSchema
  .extend(databaseConfigSchema.shape)
  .extend(addressPolicyConfigSchema.shape)
  .extend({
    /** The installation's domain: http routes are `<sub>.apps.<domain>`, TLS routes `<name>.<zone>.<domain>`. */
    CL_DOMAIN: hostname.default('cloudlunacy.localhost'),
    /** Zones of tls-sni routes, comma-separated: databases' engines have theirs (`mongodb`, `redis`). */
    CL_ROUTING_SNI_ZONES: zoneList,
    /**
     * A host name claimed by a request whose route never appeared (it stopped between its two appends)
     * can be claimed by another request after this long.
     */
    CL_ROUTING_CLAIM_GRACE_MS: env.int(60_000),
    /** How long the removal of a deregistered agent's routes waits for the routes projection to catch up. */
    CL_ROUTING_PROJECTION_WAIT_MS: env.int(30_000),
    /** How often live routes of deregistered agents are looked for and removed (0: never). */
    CL_ROUTING_SWEEP_MS: env.int(300_000),
    /**
     * A proxy node that has not written its liveness record for this long is recorded `stale` (three of
     * proxy-sync's full passes at its default CL_PROXY_RECONCILE_INTERVAL_MS of 10 s).
     */
    CL_PROXY_STALE_AFTER_MS: env.int(30_000).pipe(z.number().int().min(1_000)),
    /** The KV bucket proxy-sync writes the nodes' liveness records to (its CL_PROXY_KV_BUCKET). */
    CL_PROXY_KV_BUCKET: env.string('proxy-nodes'),
    /** How often the proxy nodes' records are looked at (0: never). */
    CL_PROXY_STALE_CHECK_MS: env.int(5_000).pipe(z.number().int().min(0)),
  });
export type RoutingConfig = z.output<typeof routingConfigSchema>;
