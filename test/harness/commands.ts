import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import { CommandBus } from '#messaging';
import type { Actor } from '#contracts';

/** A CommandBus on a test NATS server, as the API and the CLI use it. */
export function testCommandBus(natsUrl: string): { bus: CommandBus; close(): Promise<void> } {
  const client = ClientProxyFactory.create({
    transport: Transport.NATS,
    options: { servers: [natsUrl], name: 'test-commands' },
  });
  const bus = new CommandBus(client);
  return { bus, close: () => bus.onApplicationShutdown() };
}

export const testAdmin: Actor = { kind: 'admin', id: 'test-admin' };
