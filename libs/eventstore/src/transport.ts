import {
  applyDecorators,
  Catch,
  UseFilters,
  type INestApplication,
  type INestMicroservice,
  type RpcExceptionFilter,
} from '@nestjs/common';
import { BaseRpcContext, CustomTransportStrategy, EventPattern, Server } from '@nestjs/microservices';
import { jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { lastValueFrom, throwError, type Observable } from 'rxjs';
import type { EventType, StoredEvent } from '#contracts';
import type { Logger } from '#platform';
import type { EventStore } from './event-store.js';
import { deadLetterRetrySubject, type DeadLetterSink } from './dead-letters.js';
import { UndecodableLogEntryError } from './quarantine.js';
import { provisionDurableConsumer } from './streams.js';

/**
 * Nest's default RPC filter replaces unknown errors with "Internal server error"; event handlers need the
 * real error, for the retry decision, the log line and the dead letter an admin will read.
 */
@Catch()
export class EventHandlerErrors implements RpcExceptionFilter {
  catch(exception: unknown): Observable<never> {
    return throwError(() => exception);
  }
}

/** Attaches the JetStream event consumer to an app (HTTP or not). Handlers marked with OnEvent keep their errors. */
export function connectEventConsumer(
  app: INestApplication | INestMicroservice,
  options: JetStreamTransportOptions,
): INestMicroservice {
  const consumer = (app as INestApplication).connectMicroservice<Record<string, unknown>>(
    { strategy: new JetStreamEventsServer(options) },
    { inheritAppConfig: false },
  );
  return consumer;
}

/** Transport id of JetStreamEventsServer; OnEvent handlers are bound to it. */
export const JETSTREAM_EVENTS = Symbol('jetstream-events');

/** Handler pattern that receives every event without a handler of its own type. */
export const ANY_EVENT = '*';

export interface JetStreamTransportOptions {
  connection: NatsConnection;
  store: EventStore;
  /** Durable consumer name; one per service (`routing`, `certificates`, `proxy-sync-<node>`, …). */
  durable: string;
  /** Defaults to every event (`events.>`). NATS 2.9 allows one filter subject per consumer. */
  filterSubject?: string;
  deliverFrom?: 'all' | 'new';
  deadLetters: DeadLetterSink;
  logger: Logger;
  /** Attempts before an event is dead-lettered. */
  maxDeliver?: number;
  /** Delay before the n-th redelivery (the last value repeats). */
  backoffMs?: number[];
  ackWaitMs?: number;
  maxAckPending?: number;
}

/**
 * Marks a handler for one event type (or ANY_EVENT). Use this rather than @EventPattern: Nest's typed
 * overload would reject the JetStreamEventContext parameter.
 */
export function OnEvent(type: EventType | typeof ANY_EVENT | (string & {})): MethodDecorator {
  // The filter is attached to the handler itself: a global filter registered on a hybrid app arrives
  // after Nest has bound the listeners, and would be silently skipped.
  // Bound to this transport only, so an app that also answers NATS commands never routes events there.
  return applyDecorators(EventPattern<string>(type, JETSTREAM_EVENTS), UseFilters(new EventHandlerErrors()));
}

/** Passed to handlers as the second argument: which delivery this is, for logs and idempotency. */
export class JetStreamEventContext extends BaseRpcContext<[JsMsg | undefined, StoredEvent]> {
  /** The JetStream delivery; undefined when a dead letter is retried on request. */
  get message(): JsMsg | undefined {
    return this.args[0];
  }
  get event(): StoredEvent {
    return this.args[1];
  }
  /** 1 for a first delivery; a retry of a dead letter counts as one more than any delivery. */
  get deliveryCount(): number {
    return this.args[0]?.info.deliveryCount ?? Number.MAX_SAFE_INTEGER;
  }
}

/**
 * NestJS transport that feeds `@EventPattern('<EventType>')` handlers from a durable JetStream pull
 * consumer. A message is acked only after its handler resolved; a failure is redelivered after a backoff;
 * after `maxDeliver` attempts (or at once, if it cannot be decoded) it becomes a dead letter and the
 * consumer moves on, so one poison event never blocks the others.
 */
export class JetStreamEventsServer extends Server implements CustomTransportStrategy {
  private messages?: ConsumerMessages;
  private loop?: Promise<void>;
  private retries?: Subscription;
  private readonly maxDeliver: number;
  private readonly backoffMs: number[];
  private readonly ackWaitMs: number;
  private readonly log: Logger;

  constructor(private readonly options: JetStreamTransportOptions) {
    super();
    this.transportId = JETSTREAM_EVENTS;
    this.maxDeliver = options.maxDeliver ?? 5;
    this.backoffMs = options.backoffMs ?? [250, 1_000, 5_000, 15_000, 60_000];
    this.ackWaitMs = options.ackWaitMs ?? 30_000;
    this.log = options.logger.child({ consumer: options.durable });
  }

  async listen(callback: (...optionalParams: unknown[]) => void): Promise<void> {
    try {
      const { connection, store, durable } = this.options;
      const jsm = await jetstreamManager(connection);
      await provisionDurableConsumer(jsm, {
        stream: store.stream,
        durable,
        filterSubject: this.options.filterSubject ?? `${store.subjectPrefix}.>`,
        ackWaitMs: this.ackWaitMs,
        maxAckPending: this.options.maxAckPending ?? 256,
        deliverFrom: this.options.deliverFrom ?? 'all',
      });
      const consumer = await jetstream(connection).consumers.get(store.stream, durable);
      this.messages = await consumer.consume({ max_messages: 64 });
      this.loop = this.consumeAll(this.messages);
      this.retries = this.answerRetries();
      this.log.info('consuming events', { stream: store.stream, handlers: [...this.messageHandlers.keys()] });
      callback();
    } catch (error) {
      callback(error);
    }
  }

  private async consumeAll(messages: ConsumerMessages): Promise<void> {
    for await (const message of messages) {
      await this.process(message);
    }
  }

  /**
   * Retries dead letters on request (after a fix was deployed): reads the event by sequence, runs its
   * handler once, and on success marks the dead letter resolved. Replies `{ ok, error? }`.
   */
  private answerRetries(): Subscription {
    const subscription = this.options.connection.subscribe(deadLetterRetrySubject(this.options.durable), {
      queue: this.options.durable,
      callback: (_error, request) => {
        void (async () => {
          let reply: { ok: boolean; error?: string };
          try {
            const { sequence } = request.json<{ sequence: number }>();
            if (!Number.isInteger(sequence) || sequence < 1)
              throw new Error('sequence must be a positive integer');
            const event = await this.options.store.getBySequence(sequence);
            const handler = this.getHandlerByPattern(event.type) ?? this.getHandlerByPattern(ANY_EVENT);
            if (handler) {
              const context = new JetStreamEventContext([undefined, event]);
              await lastValueFrom(this.transformToObservable(await handler(event, context)), {
                defaultValue: undefined,
              });
            }
            await this.options.deadLetters.resolve(this.options.durable, sequence);
            this.log.info('dead letter retried', { sequence, eventType: event.type });
            reply = { ok: true };
          } catch (error) {
            reply = { ok: false, error: describeError(error) };
          }
          request.respond(new TextEncoder().encode(JSON.stringify(reply)));
        })();
      },
    });
    return subscription;
  }

  /** Handles one delivery; never throws, so the loop keeps going. */
  async process(message: JsMsg): Promise<void> {
    let event: StoredEvent | undefined;
    try {
      event = await this.options.store.decodeOrSkip({
        sequence: message.seq,
        subject: message.subject,
        data: message.data,
        pending: 0,
      });
    } catch (error) {
      // Undecodable (and not quarantined): a dead letter at once; a failed quarantine lookup: later.
      if (error instanceof UndecodableLogEntryError) await this.deadLetter(message, null, error);
      else message.nak(this.backoffMs[0] ?? 1_000);
      return;
    }
    if (!event) {
      // An admin quarantined it: nothing to handle, and a dead letter of it is settled.
      await this.options.deadLetters.resolve(this.options.durable, message.seq).catch(() => undefined);
      message.ack();
      return;
    }
    const handler = this.getHandlerByPattern(event.type) ?? this.getHandlerByPattern(ANY_EVENT);
    if (!handler) {
      message.ack();
      return;
    }
    const keepAlive = setInterval(() => message.working(), Math.max(1_000, this.ackWaitMs / 3));
    try {
      const result = await handler(event, new JetStreamEventContext([message, event]));
      await lastValueFrom(this.transformToObservable(result), { defaultValue: undefined });
      message.ack();
    } catch (error) {
      const attempt = message.info.deliveryCount;
      if (attempt >= this.maxDeliver) {
        await this.deadLetter(message, event, error);
      } else {
        const delay = this.backoffMs[Math.min(attempt - 1, this.backoffMs.length - 1)] ?? 1_000;
        this.log.warn('handler failed; will retry', {
          eventType: event.type,
          sequence: event.sequence,
          attempt,
          retryInMs: delay,
          error,
        });
        message.nak(delay);
      }
    } finally {
      clearInterval(keepAlive);
    }
  }

  private async deadLetter(message: JsMsg, event: StoredEvent | null, error: unknown): Promise<void> {
    const reason = describeError(error);
    try {
      await this.options.deadLetters.record({
        consumer: this.options.durable,
        stream: this.options.store.stream,
        sequence: message.seq,
        subject: message.subject,
        eventType: event?.type ?? null,
        eventId: event?.id ?? null,
        deliveries: message.info.deliveryCount,
        error: reason,
        payload: new TextDecoder().decode(message.data),
      });
      this.log.error('event dead-lettered', { sequence: message.seq, eventType: event?.type, error: reason });
      // No reason: nats-server 2.9 does not parse `+TERM <reason>` and treats it as no ack at all, so the
      // message came back every ack wait, forever. The reason is in the dead letter.
      message.term();
    } catch (recordError) {
      // Without a record the event must not disappear: let it come back later.
      this.log.error('could not record a dead letter; will retry', {
        sequence: message.seq,
        error: recordError,
      });
      message.nak(this.backoffMs[this.backoffMs.length - 1]);
    }
  }

  async close(): Promise<void> {
    this.retries?.unsubscribe();
    this.messages?.stop();
    await this.loop?.catch(() => undefined);
  }

  on(): never {
    throw new Error('JetStreamEventsServer does not emit transport events');
  }

  unwrap<T>(): T {
    return this.options.connection as T;
  }
}

function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { message?: unknown }).message === 'string'
  ) {
    return (error as { message: string }).message;
  }
  return String(error);
}
