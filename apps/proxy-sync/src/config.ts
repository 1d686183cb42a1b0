import { z } from 'zod';
import { dnsLabel } from '#contracts';
import { eventStoreConfigSchema } from '#eventstore';
import type { ProxyLayout } from '#haproxy';
import { databaseConfigSchema } from '#persistence';
import { env } from '#platform';

const absolutePath = (fallback: string) =>
  z
    .string()
    .regex(/^\/[A-Za-z0-9._/-]*$/, 'must be an absolute path of letters, digits, ".", "_", "-" and "/"')
    .default(fallback);

/** `[address:]port` of a listener; the address is optional (every address). */
const endpoint = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value, context) => {
      const match = /^(?:(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(\d{1,5})$/.exec(value);
      const port = match ? Number(match[2]) : NaN;
      if (!match || port < 1 || port > 65535) {
        context.addIssue({ code: 'custom', message: 'must be [<ipv4>|[<ipv6>]:]<port>' });
        return z.NEVER;
      }
      const address = match[1]?.replace(/^\[|\]$/g, '');
      return address === undefined ? { port } : { address, port };
    });

export const proxySyncConfigSchema = eventStoreConfigSchema.extend(databaseConfigSchema.shape).extend({
  /** Its reports are appended again by the next pass: a lost ack should not hold a pass for long. */
  CL_EVENTS_PUBLISH_TIMEOUT_MS: env.int(1_500).pipe(z.number().int().min(100)),
  /** This proxy node's id (one proxy-sync per HAProxy): a DNS label, e.g. front-1. */
  CL_PROXY_NODE_ID: dnsLabel,
  /** The Data Plane API (`http://127.0.0.1:5555/v3`) and its Basic-auth user. */
  CL_DATAPLANE_URL: env.url(),
  CL_DATAPLANE_USER: env.string(),
  CL_DATAPLANE_PASSWORD: env.string(),
  /** Listeners written into haproxy.cfg: `[address:]port`. */
  CL_PROXY_HTTP_BIND: endpoint('80'),
  CL_PROXY_HTTPS_BIND: endpoint('443'),
  CL_PROXY_TLS_SNI_BIND: endpoint('27017'),
  /** The HTTPS port clients see (redirects name it when it is not 443). */
  CL_PROXY_PUBLIC_HTTPS_PORT: env.int(443).pipe(z.number().int().min(1).max(65535)),
  /** Paths on the HAProxy host: maps_dir and ssl_certs_dir of the Data Plane API, and the CA file. */
  CL_PROXY_MAPS_DIR: absolutePath('/etc/haproxy/maps'),
  CL_PROXY_CERTS_DIR: absolutePath('/etc/haproxy/ssl/'),
  CL_PROXY_CA_FILE: absolutePath('/etc/haproxy/ca/cloudlunacy-ca.pem'),
  /** The Data Plane API's general_storage_dir as HAProxy sees it: the CA's CRL is stored there. */
  CL_PROXY_GENERAL_DIR: absolutePath('/etc/haproxy/general'),
  /** The CRL's file name in it; TLS-to-target servers check targets against it (crl-file). */
  CL_PROXY_CRL_NAME: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, 'must be a file name (letters, digits, . _ -)')
    .default('cloudlunacy-crl.pem'),
  /** Off: targets are checked against the CA only (an installation without the certificates service). */
  CL_PROXY_CHECK_CRL: env.bool(true),
  /** A PEM (certificate chain + key) on this machine: the front's certificate, uploaded as CL_FRONT_CERT_NAME. */
  CL_FRONT_CERT_FILE: z.string().min(1).optional(),
  CL_FRONT_CERT_NAME: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]*\.pem$/, 'must be a file name ending in .pem')
    .default('front.pem'),
  /** A full reconcile (re-read everything, repair drift) this often. */
  CL_PROXY_RECONCILE_INTERVAL_MS: env.int(10_000).pipe(z.number().int().min(100)),
  /** Retries after a failure: exponential from the minimum to the maximum, with jitter. */
  CL_PROXY_BACKOFF_MIN_MS: env.int(200).pipe(z.number().int().min(10)),
  CL_PROXY_BACKOFF_MAX_MS: env.int(10_000).pipe(z.number().int().min(10)),
  /** NATS KV bucket holding each node's liveness (last sync, applied version). */
  CL_PROXY_KV_BUCKET: env.string('proxy-nodes'),
  /**
   * Event-log subjects followed (ordered consumer) to reconcile soon after a route changes; each pass waits
   * until the routes projection has the event. Empty: none (the timer only).
   */
  CL_PROXY_TRIGGER_SUBJECT: z.string().default('events.route.>'),
  /** How long a triggered pass waits for the routes projection to reach the event before going on. */
  CL_PROXY_PROJECTION_WAIT_MS: env.int(5_000).pipe(z.number().int().min(0)),
});
export type ProxySyncConfig = z.output<typeof proxySyncConfigSchema>;

export function layoutOf(config: ProxySyncConfig): ProxyLayout {
  return {
    mapsDir: config.CL_PROXY_MAPS_DIR,
    certsDir: config.CL_PROXY_CERTS_DIR,
    caFile: config.CL_PROXY_CA_FILE,
    http: config.CL_PROXY_HTTP_BIND,
    https: config.CL_PROXY_HTTPS_BIND,
    tlsSni: config.CL_PROXY_TLS_SNI_BIND,
    publicHttpsPort: config.CL_PROXY_PUBLIC_HTTPS_PORT,
  };
}
