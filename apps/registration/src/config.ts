import { z } from 'zod';
import { addressPolicyConfigSchema } from '#contracts';
import { eventStoreConfigSchema } from '#eventstore';
import { env } from '#platform';

export const registrationConfigSchema = eventStoreConfigSchema
  .extend(addressPolicyConfigSchema.shape)
  .extend({
    /** The installation's secrets (cli init --secrets): NATS account signing key, operator signing key. */
    CL_SECRETS_DIR: env.string(),
    /** System-account credentials used to push account updates; default `<secrets>/nats/system.creds`. */
    CL_NATS_SYSTEM_CREDS: z.string().min(1).optional(),
    /** Lifetime of an agent's NATS user JWT; the agent gets a new one with every token refresh. */
    CL_AGENT_NATS_JWT_TTL_S: env.int(24 * 60 * 60),
    /** No heartbeat for this long: the agent is marked offline. */
    CL_LIVENESS_TIMEOUT_MS: env.int(90_000),
    /** How often timeouts are checked. */
    CL_LIVENESS_CHECK_MS: env.int(5_000),
    /** How long undelivered messages for agents are kept in the AGENTS stream. */
    CL_AGENTS_MAX_AGE_S: env.int(14 * 24 * 60 * 60),
    CL_AGENTS_REPLICAS: env.int(1),
  });
export type RegistrationConfig = z.output<typeof registrationConfigSchema>;
