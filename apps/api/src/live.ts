import {
  Inject,
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationShutdown,
} from '@nestjs/common';
import {
  DeliverPolicy,
  jetstream,
  type Consumer,
  type ConsumerMessages,
  type JsMsg,
} from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Response } from 'express';
import { DomainError, EVENTS_STREAM } from '#contracts';
import { EventStore } from '#eventstore';
import { LOGGER, type Logger } from '#platform';
import { API_CONFIG } from './agents.controller.js';
import type { ApiConfig } from './config.js';
import { API_NATS } from './event-log.js';
import { ProjectionPosition, projectionsOf } from './projection-position.js';

/** What a live client is told about one event: enough to know which views to read again. */
export interface LiveChange {
  sequence: number;
  type: string;
  aggregate: { type: string; id: string };
  actor: { kind: string; id: string } | null;
  occurredAt: string | null;
  /** true: the projections the dashboard reads have applied it; false: the projector lags (read anyway). */
  projected: boolean;
}

/** Sent first on every stream. `reset`: the client's resume point is gone or too old, read everything. */
export interface LiveHello {
  logEnd: number;
  resumedFrom: number | null;
  reset: boolean;
  heartbeatMs: number;
}

/** Names of the ordered consumers of live streams (`<prefix>_<n>`), so operators can tell them apart. */
export const LIVE_CONSUMER_PREFIX = 'api_live';
/** How long a change waits for the projector before it is sent anyway (marked `projected: false`). */
const PROJECTION_WAIT_MS = 3_000;
/** Messages the server may push ahead of a slow client. */
const CONSUMER_BUFFER = 64;

export interface LiveStreamRequest {
  response: Response;
  /** The last sequence the client saw (`Last-Event-ID`), to resume after it. */
  after?: number;
  /** Checked again at every heartbeat: a revoked token ends the stream. */
  stillAuthorized: () => Promise<boolean>;
  /** When the token expires (epoch ms): the stream ends then. */
  expiresAt: number;
}

/**
 * Live updates for the dashboard: each client gets its own ordered JetStream consumer following the
 * event log from "now" (or from the sequence after its `Last-Event-ID`), and receives one compact
 * notification per event once the projections it reads have applied it, as Server-Sent Events over a
 * plain streamed response. The number of streams is bounded; a stream's consumer is deleted as soon as
 * its client goes away.
 */
@Injectable()
export class LiveUpdates implements BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly streams = new Set<LiveStream>();
  private readonly js;

  constructor(
    @Inject(API_NATS) connection: NatsConnection,
    @Inject(EventStore) private readonly store: EventStore,
    @Inject(ProjectionPosition) private readonly position: ProjectionPosition,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.js = jetstream(connection);
  }

  get clients(): number {
    return this.streams.size;
  }

  /** Opens a stream on `response` and runs it until the client leaves, the token ends or the API stops. */
  async open(request: LiveStreamRequest): Promise<void> {
    if (this.streams.size >= this.config.CL_LIVE_MAX_CLIENTS) {
      throw new DomainError(
        'unavailable',
        `too many live connections (${this.config.CL_LIVE_MAX_CLIENTS} at most): close a dashboard tab, or raise CL_LIVE_MAX_CLIENTS`,
      );
    }
    const logEnd = await this.store.lastSequence();
    const { after } = request;
    // Resume right after the client's last event when the log still leads there within the replay bound;
    // otherwise start from now and tell the client to read everything again.
    const resumable =
      after !== undefined && after <= logEnd && logEnd - after <= this.config.CL_LIVE_MAX_REPLAY;
    const from = resumable ? after + 1 : logEnd + 1;
    const stream = new LiveStream(request, this.position, this.logger, this.config.CL_LIVE_HEARTBEAT_MS);
    this.streams.add(stream);
    try {
      await stream.run(this.js, from, {
        logEnd,
        resumedFrom: resumable ? after : null,
        reset: after !== undefined && !resumable,
        heartbeatMs: this.config.CL_LIVE_HEARTBEAT_MS,
      });
    } finally {
      this.streams.delete(stream);
    }
  }

  /** Ends every stream before the HTTP server closes (which waits for open responses). */
  async beforeApplicationShutdown(): Promise<void> {
    await Promise.allSettled([...this.streams].map((stream) => stream.close('shutdown')));
  }

  onApplicationShutdown(): void {
    this.streams.clear();
  }
}

class LiveStream {
  private readonly abort = new AbortController();
  private consumer?: Consumer;
  private messages?: ConsumerMessages;
  private heartbeat?: NodeJS.Timeout;
  private expiry?: NodeJS.Timeout;
  private lastSequence = 0;
  private closing?: Promise<void>;

  constructor(
    private readonly request: LiveStreamRequest,
    private readonly position: ProjectionPosition,
    private readonly logger: Logger,
    private readonly heartbeatMs: number,
  ) {}

  private get response(): Response {
    return this.request.response;
  }

  async run(js: ReturnType<typeof jetstream>, from: number, hello: LiveHello): Promise<void> {
    const { response } = this;
    response.on('close', () => void this.close('client left'));
    this.consumer = await js.consumers.get(EVENTS_STREAM, {
      name_prefix: LIVE_CONSUMER_PREFIX,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: from,
      // A consumer left behind by a crash disappears by itself.
      inactive_threshold: nanos(60_000),
    });
    if (this.abort.signal.aborted) {
      await this.deleteConsumer();
      return;
    }
    this.messages = await this.consumer.consume({ max_messages: CONSUMER_BUFFER });

    response.status(200);
    response.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    response.setHeader('Cache-Control', 'no-store, no-transform');
    response.setHeader('X-Accel-Buffering', 'no');
    response.socket?.setNoDelay(true);
    response.flushHeaders();
    this.lastSequence = from - 1;
    await this.write(`retry: 2000\nid: ${from - 1}\nevent: hello\ndata: ${JSON.stringify(hello)}\n\n`);

    this.heartbeat = setInterval(() => void this.beat(), this.heartbeatMs);
    const untilExpiry = this.request.expiresAt - Date.now();
    this.expiry = setTimeout(
      () => void this.end('expired', { message: 'the session expired: sign in again' }),
      Math.max(0, Math.min(untilExpiry, 2 ** 31 - 1)),
    );

    try {
      for await (const message of this.messages) {
        if (this.abort.signal.aborted) break;
        const change = changeOf(message);
        change.projected = await this.position.reached(
          change.sequence,
          projectionsOf(change.aggregate.type),
          deadlineOf(change.occurredAt),
        );
        if (this.abort.signal.aborted) break;
        this.lastSequence = change.sequence;
        await this.write(`id: ${change.sequence}\nevent: change\ndata: ${JSON.stringify(change)}\n\n`);
      }
    } catch (error) {
      if (!this.abort.signal.aborted) {
        this.logger.warn('a live stream lost the event log', { error });
        await this.end('error', { message: 'the live stream lost the event log; reconnect' });
      }
    } finally {
      await this.close('done');
    }
  }

  private async beat(): Promise<void> {
    if (this.abort.signal.aborted) return;
    let authorized = false;
    try {
      authorized = await this.request.stillAuthorized();
    } catch {
      authorized = false;
    }
    if (!authorized) {
      await this.end('unauthorized', { message: 'the token was revoked or expired: sign in again' });
      return;
    }
    await this.write(
      `event: heartbeat\ndata: ${JSON.stringify({
        time: new Date().toISOString(),
        sequence: this.lastSequence,
        projected: this.position.position(),
      })}\n\n`,
    );
  }

  /** A last event telling the client why the stream ends, then the end. */
  private async end(event: string, data: unknown): Promise<void> {
    if (this.abort.signal.aborted) return;
    await this.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    await this.close(event);
  }

  /** Writes, waiting for the socket when the client reads slowly (the consumer then waits too). */
  private async write(chunk: string): Promise<void> {
    const { response } = this;
    if (this.abort.signal.aborted || response.writableEnded || response.destroyed) return;
    if (response.write(chunk)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        response.off('drain', done);
        response.off('close', done);
        resolve();
      };
      response.on('drain', done);
      response.on('close', done);
    });
  }

  close(_reason: string): Promise<void> {
    this.closing ??= (async () => {
      this.abort.abort();
      clearInterval(this.heartbeat);
      clearTimeout(this.expiry);
      this.messages?.stop();
      await this.deleteConsumer();
      if (!this.response.writableEnded) this.response.end();
    })();
    return this.closing;
  }

  private async deleteConsumer(): Promise<void> {
    // Stopping an ordered consumer leaves it on the server until its inactivity threshold: delete it now.
    await this.consumer?.delete().catch(() => undefined);
  }
}

/** An event's notification from its envelope, read leniently: the dashboard only needs to know what moved. */
export function changeOf(message: Pick<JsMsg, 'seq' | 'subject' | 'data'>): LiveChange {
  const [, aggregateType = 'unknown', ...rest] = message.subject.split('.');
  const fallback: LiveChange = {
    sequence: message.seq,
    type: 'Undecodable',
    aggregate: { type: aggregateType, id: rest.join('.') },
    actor: null,
    occurredAt: null,
    projected: false,
  };
  try {
    const envelope = JSON.parse(new TextDecoder().decode(message.data)) as Record<string, unknown>;
    const aggregate = envelope.aggregate as { type?: unknown; id?: unknown } | undefined;
    const actor = envelope.actor as { kind?: unknown; id?: unknown } | undefined;
    if (typeof envelope.type !== 'string' || typeof aggregate?.type !== 'string') return fallback;
    return {
      sequence: message.seq,
      type: envelope.type,
      aggregate: { type: aggregate.type, id: String(aggregate.id) },
      actor:
        typeof actor?.kind === 'string' && typeof actor.id === 'string'
          ? { kind: actor.kind, id: actor.id }
          : null,
      occurredAt: typeof envelope.occurredAt === 'string' ? envelope.occurredAt : null,
      projected: false,
    };
  } catch {
    return fallback;
  }
}

/**
 * How long a change may wait for the projector, counted from when it happened: a burst behind a stalled
 * projector is sent after one wait, not one wait per event; an old event (a resume) is checked once.
 */
function deadlineOf(occurredAt: string | null): number {
  const now = Date.now();
  const happened = occurredAt ? Date.parse(occurredAt) : NaN;
  return Number.isFinite(happened) ? Math.min(now + PROJECTION_WAIT_MS, happened + PROJECTION_WAIT_MS) : now;
}
