import { readFileSync } from 'node:fs';
import {
  connect,
  credsAuthenticator,
  type Authenticator,
  type NatsConnection,
} from '@nats-io/transport-node';
import { z } from 'zod';
import { createLogger, env, retryWhileTransient, type Logger } from '#platform';

export const natsConfigSchema = z.object({
  CL_NATS_URL: env.string('nats://127.0.0.1:4222'),
  /** A .creds file (user JWT + seed) when the server uses decentralized auth. */
  CL_NATS_CREDS: z.string().min(1).optional(),
});
export type NatsConfig = z.output<typeof natsConfigSchema>;

export function natsServers(config: NatsConfig): string[] {
  return config.CL_NATS_URL.split(',').map((server) => server.trim());
}

export function natsAuthenticator(config: NatsConfig): Authenticator | undefined {
  return config.CL_NATS_CREDS ? credsAuthenticator(readFileSync(config.CL_NATS_CREDS)) : undefined;
}

/**
 * Connects and reconnects forever: services outlive broker restarts, and one started before its broker
 * waits for it (saying so) instead of exiting.
 */
export function connectNats(
  config: NatsConfig,
  name: string,
  logger: Logger = createLogger(name),
  authenticator: Authenticator | undefined = natsAuthenticator(config),
): Promise<NatsConnection> {
  return retryWhileTransient(
    `the message broker at ${config.CL_NATS_URL}`,
    () =>
      connect({
        servers: natsServers(config),
        name,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        authenticator,
      }),
    logger,
  );
}
