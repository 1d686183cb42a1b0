import { z } from 'zod';
import { addressPolicyConfigSchema, hostname, type PhaseLimits } from '#contracts';
import { eventStoreConfigSchema } from '#eventstore';
import { databaseConfigSchema } from '#persistence';
import { env } from '#platform';

const seconds = (fallback: number, max = 86_400) => env.int(fallback).pipe(z.number().int().min(1).max(max));
const list = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value) =>
      value
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item.length > 0),
    );

export const deploymentsConfigSchema = eventStoreConfigSchema
  .extend(databaseConfigSchema.shape)
  .extend(addressPolicyConfigSchema.shape)
  .extend({
    /** Apps are served as `<name>.apps.<domain>`. */
    CL_DOMAIN: hostname.default('cloudlunacy.localhost'),
    /** Holds `deployments/secret-store.key`, the key of app secret values at rest. */
    CL_SECRETS_DIR: env.string(),
    /** Phase limits (seconds) snapshotted into each deployment when it is requested. */
    CL_DEPLOY_CLAIM_TIMEOUT_S: seconds(1800),
    CL_DEPLOY_FETCH_TIMEOUT_S: seconds(300),
    CL_DEPLOY_BUILD_TIMEOUT_S: seconds(900),
    /** The most an app's own build timeout may ask for. */
    CL_DEPLOY_BUILD_MAX_S: seconds(3600),
    CL_DEPLOY_START_TIMEOUT_S: seconds(60),
    CL_DEPLOY_SWITCH_TIMEOUT_S: seconds(60),
    CL_DEPLOY_VERIFY_TIMEOUT_S: seconds(20),
    CL_DEPLOY_CANCEL_TIMEOUT_S: seconds(60),
    /** Added to every front-side deadline: the agent's own limits are shorter and fire first. */
    CL_DEPLOY_DEADLINE_SLACK_S: env.int(15).pipe(z.number().int().min(0).max(3600)),
    /** A claim lives this long unless the agent renews it. */
    CL_DEPLOY_LEASE_TTL_MS: env.int(20_000).pipe(z.number().int().min(1_000)),
    CL_DEPLOY_LEASE_RENEW_MS: env.int(5_000).pipe(z.number().int().min(100)),
    CL_DEPLOY_LEASES_BUCKET: env.string('deployment-leases'),
    /** How often the supervisor looks at every deployment in flight (0: only on events). */
    CL_DEPLOY_SUPERVISE_MS: env.int(1_000).pipe(z.number().int().min(0)),
    /**
     * The fronts' HTTPS entry points the verifier probes the new release through, with its real host name
     * (comma-separated, e.g. `https://127.0.0.1:443`). Empty: verification is recorded as skipped.
     */
    CL_DEPLOY_VERIFY_URLS: list(''),
    /**
     * The fronts' SNI listeners (`host:port`, comma-separated, e.g. `127.0.0.1:27017`) a new database is
     * verified through: a TLS handshake by its name, checked against CL_DEPLOY_VERIFY_CA_FILE.
     */
    CL_DEPLOY_VERIFY_SNI_ADDRESSES: list(''),
    /**
     * A drain ends early once no front has a request in flight to the old release: the fronts asked are
     * the proxy nodes that synced within this long (as routing's CL_PROXY_STALE_AFTER_MS).
     */
    CL_PROXY_STALE_AFTER_MS: env.int(30_000).pipe(z.number().int().min(1_000)),
    /** The KV bucket proxy-sync writes the nodes' liveness records to (its CL_PROXY_KV_BUCKET). */
    CL_PROXY_KV_BUCKET: env.string('proxy-nodes'),
    /** The CA the fronts' certificates are checked against (PEM file); empty: the system's. */
    CL_DEPLOY_VERIFY_CA_FILE: z.string().default(''),
    /** How often secret versions nothing uses any more are forgotten (0: never). */
    CL_DEPLOY_SECRET_GC_MS: env.int(60_000).pipe(z.number().int().min(0)),
    /** Directories `file://` sources may come from (comma-separated); empty: none. */
    CL_DEPLOY_FILE_ROOTS: list(''),
    /** Hosts the unauthenticated `git://` transport may be used with. */
    CL_DEPLOY_PLAIN_GIT_HOSTS: list('127.0.0.1,::1,localhost'),
    /** The logs stream's limits: logs are expendable, and these bound what agents can make it hold. */
    CL_LOGS_MAX_AGE_S: seconds(14 * 86_400, 365 * 86_400),
    CL_LOGS_MAX_BYTES: env.int(1024 ** 3).pipe(
      z
        .number()
        .int()
        .min(1024 * 1024),
    ),
    CL_LOGS_MAX_MSGS_PER_SUBJECT: env.int(5000).pipe(z.number().int().min(10)),
    CL_LOGS_REPLICAS: env.int(1).pipe(z.number().int().min(1).max(5)),
    /** What one agent may put into the logs per second, in bytes; the rest is dropped and counted. */
    CL_DEPLOY_LOG_BYTES_PER_S: env.int(256 * 1024).pipe(z.number().int().min(1024)),
  });
export type DeploymentsConfig = z.output<typeof deploymentsConfigSchema>;

/** The phase limits a deployment requested now gets, with the app's own build and health settings. */
export function phaseLimitsOf(
  config: DeploymentsConfig,
  app: {
    build: { timeoutSeconds: number | null };
    healthCheck: { graceSeconds: number; timeoutSeconds: number };
    drain: { delaySeconds: number; stopTimeoutSeconds: number };
  },
): PhaseLimits {
  return {
    claim: config.CL_DEPLOY_CLAIM_TIMEOUT_S,
    fetch: config.CL_DEPLOY_FETCH_TIMEOUT_S,
    build: Math.min(
      app.build.timeoutSeconds ?? config.CL_DEPLOY_BUILD_TIMEOUT_S,
      config.CL_DEPLOY_BUILD_MAX_S,
    ),
    start: config.CL_DEPLOY_START_TIMEOUT_S,
    health: app.healthCheck.graceSeconds + app.healthCheck.timeoutSeconds,
    switch: config.CL_DEPLOY_SWITCH_TIMEOUT_S,
    verify: config.CL_DEPLOY_VERIFY_TIMEOUT_S,
    drain: app.drain.delaySeconds + app.drain.stopTimeoutSeconds + 30,
    cancel: config.CL_DEPLOY_CANCEL_TIMEOUT_S,
    slack: config.CL_DEPLOY_DEADLINE_SLACK_S,
  };
}
