import { existsSync } from 'node:fs';
import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { secretsLayout } from '#auth';
import { createDomainRegistry, type Actor } from '#contracts';
import { EventStore } from '#eventstore';
import {
  CommandBus,
  connectNats,
  natsAuthenticator,
  natsConfigSchema,
  natsServers,
  type NatsConfig,
} from '#messaging';
import { createLogger, env, loadConfig } from '#platform';

/** The CLI's own log lines (and the libraries') go to stderr: stdout carries only a command's output. */
export const cliLogger = createLogger('cli', {
  level: 'warn',
  write: (line) => process.stderr.write(`${line}\n`),
});

/** The CLI acts as this actor in commands it sends; events it causes name the operator running it. */
export const cliActor: Actor = { kind: 'admin', id: `cli:${process.env.USER ?? 'operator'}` };

/** What a command does on the broker: reads run with the read-only credential. */
export type CliAccess = 'read' | 'write';

const cliConfigSchema = natsConfigSchema.extend({ CL_SECRETS_DIR: env.string('') });

/**
 * The broker connection settings for a command: next to the installation's secrets the CLI uses its own
 * users (`nats/cli-read.creds` for reads, `nats/cli.creds` for changes); otherwise CL_NATS_CREDS.
 */
export function cliNatsConfig(access: CliAccess): NatsConfig {
  const config = loadConfig(cliConfigSchema);
  if (config.CL_SECRETS_DIR) {
    const creds = secretsLayout(config.CL_SECRETS_DIR).credsOf(access === 'read' ? 'cli-read' : 'cli');
    if (existsSync(creds)) return { ...config, CL_NATS_CREDS: creds };
  }
  return config;
}

/** Runs `work` with the event log (provisioned by the services; the CLI never changes it), then closes. */
export async function withEventStore<T>(
  access: CliAccess,
  work: (store: EventStore) => Promise<T>,
): Promise<T> {
  const config = cliNatsConfig(access);
  const connection: NatsConnection = await connectNats(config, 'cli', cliLogger);
  try {
    const store = new EventStore(connection, await jetstreamManager(connection), {
      registry: createDomainRegistry(),
    });
    return await work(store);
  } finally {
    await connection.close();
  }
}

/** Runs `work` with a command bus to the services, then closes it. */
export async function withCommandBus<T>(
  access: CliAccess,
  work: (bus: CommandBus) => Promise<T>,
): Promise<T> {
  const config = cliNatsConfig(access);
  const client = ClientProxyFactory.create({
    transport: Transport.NATS,
    options: { servers: natsServers(config), authenticator: natsAuthenticator(config), name: 'cli' },
  });
  const bus = new CommandBus(client);
  try {
    return await work(bus);
  } finally {
    await bus.onApplicationShutdown();
  }
}
