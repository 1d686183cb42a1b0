import { randomBytes } from 'node:crypto';
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
import { EVENTS_STREAM } from '#contracts';
import { EventStore } from '#eventstore';
import { LOGGER, type Logger } from '#platform';
import { API_CONFIG } from './agents.controller.js';
import type { ApiConfig } from './config.js';
import { API_NATS } from './event-log.js';
import { ProjectionPosition, projectionsOf } from './projection-position.js';
import { OpenStreams, SseChannel, type SseRequest } from './sse.js';

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

export interface LiveStreamRequest extends SseRequest {
  /** The last sequence the client saw (`Last-Event-ID`), to resume after it. */
  after?: number;
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
  private readonly streams = new OpenStreams<LiveStream>();
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
    this.streams.admit(
      this.config.CL_LIVE_MAX_CLIENTS,
      `too many live connections (${this.config.CL_LIVE_MAX_CLIENTS} at most): close a dashboard tab, or raise CL_LIVE_MAX_CLIENTS`,
    );
    const logEnd = await this.store.lastSequence();
    const { after } = request;
    // Resume right after the client's last event when the log still leads there within the replay bound;
    // otherwise start from now and tell the client to read everything again.
    const resumable =
      after !== undefined && after <= logEnd && logEnd - after <= this.config.CL_LIVE_MAX_REPLAY;
    const from = resumable ? after + 1 : logEnd + 1;
    const stream = new LiveStream(request, this.position, this.logger, this.config.CL_LIVE_HEARTBEAT_MS);
    await this.streams.track(stream, () =>
      stream.run(this.js, from, {
        logEnd,
        resumedFrom: resumable ? after : null,
        reset: after !== undefined && !resumable,
        heartbeatMs: this.config.CL_LIVE_HEARTBEAT_MS,
      }),
    );
  }

  /** Ends every stream before the HTTP server closes (which waits for open responses). */
  async beforeApplicationShutdown(): Promise<void> {
    await this.streams.closeAll('shutdown');
  }

  onApplicationShutdown(): void {
    this.streams.clear();
  }
}

class LiveStream {
  private readonly channel: SseChannel;
  private consumer?: Consumer;
  private messages?: ConsumerMessages;
  private lastSequence = 0;

  constructor(
    request: LiveStreamRequest,
    private readonly position: ProjectionPosition,
    private readonly logger: Logger,
    private readonly heartbeatMs: number,
  ) {
    this.channel = new SseChannel(request, {
      heartbeat: () =>
        `event: heartbeat\ndata: ${JSON.stringify({
          time: new Date().toISOString(),
          sequence: this.lastSequence,
          projected: this.position.position(),
        })}\n\n`,
      release: async () => {
        this.messages?.stop();
        await this.deleteConsumer();
      },
    });
  }

  async run(js: ReturnType<typeof jetstream>, from: number, hello: LiveHello): Promise<void> {
    const { channel } = this;
    channel.watchClient();
    this.consumer = await js.consumers.get(EVENTS_STREAM, {
      // The client names an ordered consumer `<prefix>_1`: a prefix of its own per stream, or two streams
      // open at once would ask for the same consumer.
      name_prefix: `${LIVE_CONSUMER_PREFIX}_${randomBytes(6).toString('hex')}`,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: from,
      // A consumer left behind by a crash disappears by itself.
      inactive_threshold: nanos(60_000),
    });
    if (channel.aborted) {
      await this.deleteConsumer();
      return;
    }
    this.messages = await this.consumer.consume({ max_messages: CONSUMER_BUFFER });

    channel.begin();
    this.lastSequence = from - 1;
    await channel.write(`retry: 2000\nid: ${from - 1}\nevent: hello\ndata: ${JSON.stringify(hello)}\n\n`);
    channel.startTimers(this.heartbeatMs);

    try {
      for await (const message of this.messages) {
        if (channel.aborted) break;
        const change = changeOf(message);
        change.projected = await this.position.reached(
          change.sequence,
          projectionsOf(change.aggregate.type),
          deadlineOf(change.occurredAt),
        );
        if (channel.aborted) break;
        this.lastSequence = change.sequence;
        await channel.write(`id: ${change.sequence}\nevent: change\ndata: ${JSON.stringify(change)}\n\n`);
      }
    } catch (error) {
      if (!channel.aborted) {
        this.logger.warn('a live stream lost the event log', { error });
        await channel.end('error', { message: 'the live stream lost the event log; reconnect' });
      }
    } finally {
      await channel.close('done');
    }
  }

  close(reason: string): Promise<void> {
    return this.channel.close(reason);
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
