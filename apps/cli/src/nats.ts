import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import type { NatsConnection } from '@nats-io/transport-node';
import { eventStoreConfigSchema, openEventStore, type EventStore } from '#eventstore';
import { CommandBus, connectNats, natsAuthenticator, natsServers } from '#messaging';
import { loadConfig } from '#platform';
import type { Actor } from '#contracts';

/** The CLI acts as this actor in commands it sends; events it causes name the operator running it. */
export const cliActor: Actor = { kind: 'admin', id: `cli:${process.env.USER ?? 'operator'}` };

/** Runs `work` with the event store, then closes the connection. */
export async function withEventStore<T>(work: (store: EventStore) => Promise<T>): Promise<T> {
  const config = loadConfig(eventStoreConfigSchema);
  const connection: NatsConnection = await connectNats(config, 'cli');
  try {
    return await work(await openEventStore(connection, config));
  } finally {
    await connection.close();
  }
}

/** Runs `work` with a command bus to the services, then closes it. */
export async function withCommandBus<T>(work: (bus: CommandBus) => Promise<T>): Promise<T> {
  const config = loadConfig(eventStoreConfigSchema);
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
