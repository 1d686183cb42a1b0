import { z } from 'zod';
import { trustedProxiesConfigSchema } from '#contracts';
import { natsConfigSchema } from '#messaging';
import { databaseConfigSchema } from '#persistence';
import { env } from '#platform';

export const apiConfigSchema = natsConfigSchema
  .extend(databaseConfigSchema.shape)
  .extend(trustedProxiesConfigSchema.shape)
  .extend({
    /** The installation's secrets (cli init --secrets): the API reads the JWT signing key pair. */
    CL_SECRETS_DIR: env.string(),
    CL_API_HOST: env.string('127.0.0.1'),
    CL_API_PORT: env.int(8080),
    /** The port clients reach databases on through the fronts (HAProxy's SNI listener), for connection strings. */
    CL_FRONT_SNI_PORT: env.int(27017),
    /** Agents' access tokens live this long; agents refresh them before. */
    CL_ACCESS_TOKEN_TTL_S: env.int(15 * 60),
    /** A refresh token not used for this long expires (the agent must then enroll again). */
    CL_REFRESH_TOKEN_TTL_S: env.int(30 * 24 * 60 * 60),
    /** Default and longest lifetime of an enrollment token. */
    CL_ENROLLMENT_TOKEN_TTL_S: env.int(60 * 60),
    CL_ENROLLMENT_TOKEN_MAX_TTL_S: env.int(7 * 24 * 60 * 60),
    /** The NATS URL agents are told to connect to (the public address of the broker); defaults to CL_NATS_URL. */
    CL_AGENT_NATS_URL: z.string().min(1).optional(),
    /** The built dashboard (apps/dashboard/dist) served at `/`; found beside the code when not set. */
    CL_DASHBOARD_DIR: z.string().min(1).optional(),
    /** Live updates (`GET /api/v1/live`): most streams open at once, heartbeat interval, longest replay on resume. */
    CL_LIVE_MAX_CLIENTS: env.int(32),
    CL_LIVE_HEARTBEAT_MS: env.int(15_000),
    CL_LIVE_MAX_REPLAY: env.int(1_000),
    /** Deployments' log streams (`GET /api/v1/deployments/{id}/logs` as SSE): most open at once. */
    CL_LOG_STREAMS_MAX: env.int(64),
    /**
     * Uploaded sources (`POST /apps/{name}/deployments` with a tarball): the largest accepted, and how
     * long the bucket keeps one (its agent downloads it within the claim and fetch deadlines).
     */
    CL_DEPLOY_UPLOAD_MAX_BYTES: env.int(200 * 1024 * 1024).pipe(z.number().int().min(1)),
    CL_DEPLOY_UPLOAD_MAX_AGE_S: env.int(86_400).pipe(z.number().int().min(60)),
    /** All uploads together: past it a new one is refused (503) until old ones expire; bounds the disk. */
    CL_DEPLOY_UPLOAD_STORE_MAX_BYTES: env.int(10 * 1024 ** 3).pipe(
      z
        .number()
        .int()
        .min(1024 * 1024),
    ),
  });
export type ApiConfig = z.output<typeof apiConfigSchema>;
