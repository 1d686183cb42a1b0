import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { ClientProxy, ClientProxyFactory, Transport, type NatsOptions } from '@nestjs/microservices';
import { lastValueFrom, timeout, TimeoutError } from 'rxjs';
import type { z } from 'zod';
import {
  commandEnvelopeSchema,
  DomainError,
  isErrorBody,
  parseOrThrow,
  toErrorBody,
  type Actor,
  type CommandEnvelope,
  type CommandReply,
} from '#contracts';
import { currentCorrelationId, withCorrelation, type Logger } from '#platform';
import { natsAuthenticator, natsServers, type NatsConfig } from './nats.js';

/** Options for a Nest microservice that answers commands: one queue group per service, so replicas share work. */
export function commandServerOptions(config: NatsConfig, service: string): NatsOptions {
  return {
    transport: Transport.NATS,
    options: {
      servers: natsServers(config),
      authenticator: natsAuthenticator(config),
      queue: service,
      name: `${service}-commands`,
      maxReconnectAttempts: -1,
      // A service started before its broker waits for it (the client that sends commands does not:
      // its callers get a 503 at once).
      waitOnFirstConnect: true,
    },
  };
}

/**
 * The body of every @MessagePattern command handler: validates the envelope and the payload (errors name
 * the field), runs the decision, and turns any failure into a reply instead of a transport error.
 */
export async function handleCommand<S extends z.ZodType, R>(
  payloadSchema: S,
  raw: unknown,
  logger: Logger,
  run: (command: CommandEnvelope<z.output<S>>) => Promise<R>,
): Promise<CommandReply<R>> {
  try {
    const envelope = parseOrThrow(commandEnvelopeSchema, raw);
    const payload = parseOrThrow(payloadSchema, envelope.payload, 'payload');
    // What the command causes (events, further commands, log lines) carries its correlation id.
    const result = await withCorrelation(envelope.correlationId, () => run({ ...envelope, payload }));
    return { ok: true, result };
  } catch (error) {
    const body = toErrorBody(error);
    if (body.error === 'internal') logger.error('command failed', { error });
    return { ok: false, error: body };
  }
}

/**
 * A command that could not be delivered as a 503 naming what is missing: the service (nothing subscribes
 * to its subject: the server answers "no responders", which Nest reports as an empty response) or the
 * broker itself (the client lost its connection). Anything else is passed on unchanged.
 */
export function unavailableError(subject: string, error: unknown): unknown {
  // Nest rejects with a bare string while the connection is down.
  const message = error instanceof Error ? error.message : String(error);
  const service = /^cmd\.([^.]+)\./.exec(subject)?.[1] ?? subject;
  if (
    /no responders|no subscribers listening/i.test(message) ||
    (error as { code?: string } | undefined)?.code === '503'
  ) {
    return new DomainError(
      'unavailable',
      `the ${service} service is not running (nothing answers ${subject}); start it, then retry`,
    );
  }
  if (/connection (lost|closed|refused)|CONNECTION_REFUSED|ECONNREFUSED|disconnect/i.test(message)) {
    return new DomainError(
      'unavailable',
      `the message broker (NATS) is not reachable, so ${service} cannot be asked; retry when it is back`,
    );
  }
  return error;
}

export interface CommandMeta {
  actor: Actor;
  /** Stable id of this command: a client's Idempotency-Key, so retries append nothing new. */
  commandId?: string;
  correlationId?: string;
  timeoutMs?: number;
  /**
   * For commands that are idempotent by their command id: sends the same envelope again when no answer
   * came in this long (the replica that took it may have died with it, or the broker restarted), until
   * `timeoutMs` is spent. Unset: one send.
   */
  resendAfterMs?: number;
}

export const COMMAND_CLIENT = Symbol('COMMAND_CLIENT');

/** Sends commands to the services and unwraps their replies: a failed reply is thrown as DomainError. */
@Injectable()
export class CommandBus implements OnApplicationShutdown {
  constructor(@Inject(COMMAND_CLIENT) private readonly client: ClientProxy) {}

  async execute<R>(subject: string, payload: unknown, meta: CommandMeta): Promise<R> {
    const envelope: CommandEnvelope = {
      commandId: meta.commandId ?? randomUUID(),
      actor: meta.actor,
      correlationId: meta.correlationId ?? currentCorrelationId() ?? randomUUID(),
      payload,
    };
    const deadline = Date.now() + (meta.timeoutMs ?? 10_000);
    let reply: CommandReply<R>;
    for (;;) {
      const left = deadline - Date.now();
      const wait = meta.resendAfterMs === undefined ? left : Math.min(meta.resendAfterMs, left);
      try {
        reply = await lastValueFrom(
          this.client.send<CommandReply<R>>(subject, envelope).pipe(timeout(Math.max(wait, 1))),
        );
        break;
      } catch (error) {
        if (error instanceof TimeoutError) {
          if (deadline - Date.now() > 0) continue;
          throw new DomainError(
            'timeout',
            `no answer to ${subject} in time; the service may be down. Retry with the same Idempotency-Key`,
          );
        }
        throw unavailableError(subject, error);
      }
    }
    if (reply.ok) return reply.result;
    throw isErrorBody(reply.error)
      ? DomainError.fromBody(reply.error)
      : new DomainError('internal', 'malformed reply');
  }

  async onApplicationShutdown(): Promise<void> {
    await this.client.close();
  }
}

@Module({})
export class CommandBusModule {
  static forRoot(config: NatsConfig, clientName: string): DynamicModule {
    return {
      module: CommandBusModule,
      global: true,
      providers: [
        {
          provide: COMMAND_CLIENT,
          useFactory: () =>
            ClientProxyFactory.create({
              transport: Transport.NATS,
              options: {
                servers: natsServers(config),
                authenticator: natsAuthenticator(config),
                name: clientName,
                maxReconnectAttempts: -1,
              },
            }),
        },
        CommandBus,
      ],
      exports: [CommandBus],
    };
  }
}
