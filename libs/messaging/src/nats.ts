import { readFileSync } from 'node:fs';
import {
  connect,
  credsAuthenticator,
  type Authenticator,
  type NatsConnection,
} from '@nats-io/transport-node';
import { z } from 'zod';
import { env } from '#platform';

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

/** Connects and reconnects forever: services outlive broker restarts. */
export function connectNats(config: NatsConfig, name: string): Promise<NatsConnection> {
  return connect({
    servers: natsServers(config),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    authenticator: natsAuthenticator(config),
  });
}
