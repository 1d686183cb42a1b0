import { randomBytes } from 'node:crypto';
import {
  Inject,
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationShutdown,
} from '@nestjs/common';
import {
  DeliverPolicy,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type Consumer,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { DataSource } from 'typeorm';
import { isTerminalDeploymentStatus, LOGS_STREAM, logsSubject, type LogLine } from '#contracts';
import { appByName, deploymentById, deploymentsOfApp } from '#persistence';
import { LOGGER, type Logger } from '#platform';
import { API_CONFIG } from './agents.controller.js';
import type { ApiConfig } from './config.js';
import { API_NATS } from './event-log.js';
import { OpenStreams, SseChannel, type SseRequest } from './sse.js';

/** One line of a deployment's output, with the stream sequence of the batch it came in. */
export interface DeploymentLogLine extends LogLine {
  seq: number;
}

/** `GET /deployments/{id}/logs` as JSON: the last lines, and the sequence to resume after (`Last-Event-ID`). */
export interface DeploymentLogs {
  deploymentId: string;
  lines: DeploymentLogLine[];
  /** The stream sequence of the deployment's last stored batch (0: none). */
  last: number;
}

export const LOG_TAIL_DEFAULT = 500;
export const LOG_TAIL_MAX = 5_000;
/**
 * Names of the ordered consumers of log reads and streams (`<prefix>_<random>_<n>`): the client names an
 * ordered consumer `<name_prefix>_1`, so a prefix shared by two at once would make them collide.
 */
export const LOG_CONSUMER_PREFIX = 'api_logs';
const HEARTBEAT_MS = 15_000;
/** Batches the server may push ahead of a slow client. */
const CONSUMER_BUFFER = 64;
/** Batches pulled at once while reading a tail. */
const FETCH_BATCH = 256;
const FETCH_EXPIRES_MS = 5_000;
/** A stored batch that cannot be read (never written by the relay) shows as this line. */
const UNREADABLE = 'unreadable log batch';

interface Batch {
  seq: number;
  lines: LogLine[];
}

/** A stored batch, read leniently: the relay wrote `{ lines: [{ t, s, x }] }`. */
export function batchOf(message: Pick<JsMsg, 'seq' | 'data'>): Batch {
  try {
    const body = JSON.parse(new TextDecoder().decode(message.data)) as { lines?: unknown };
    if (!Array.isArray(body.lines)) throw new Error('no lines');
    const lines = (body.lines as Record<string, unknown>[]).map((line) => ({
      t: String(line.t ?? ''),
      s: (['build', 'out', 'err', 'sys'].includes(line.s as string) ? line.s : 'sys') as LogLine['s'],
      x: String(line.x ?? ''),
    }));
    return { seq: message.seq, lines };
  } catch {
    return { seq: message.seq, lines: [{ t: '', s: 'sys', x: UNREADABLE }] };
  }
}

/** The last `lines` lines of the batches, oldest first (the first batch is cut to fit). */
function lastLines(batches: Batch[], lines: number): Batch[] {
  const kept: Batch[] = [];
  let left = lines;
  for (let index = batches.length - 1; index >= 0 && left > 0; index--) {
    const batch = batches[index]!;
    const part = batch.lines.length <= left ? batch : { seq: batch.seq, lines: batch.lines.slice(-left) };
    kept.unshift(part);
    left -= part.lines.length;
  }
  return kept;
}

interface Tail {
  batches: Batch[];
  /** The subject's last sequence when read (0: none). */
  last: number;
  /** The stream's last sequence when read: nothing of the subject up to it is missing from `batches`' range. */
  streamLast: number;
}

export interface LogStreamRequest extends SseRequest {
  deploymentId: string;
  /** Lines to send first when not resuming. */
  tail: number;
  /** The last stream sequence the client saw (`Last-Event-ID`), to resume after it. */
  after?: number;
}

/**
 * A deployment's output from the LOGS stream (`logs.<deploymentId>`): the last lines as JSON, or as
 * Server-Sent Events from the tail (or after `Last-Event-ID`) and then live, one ordered consumer per
 * client, at most CL_LOG_STREAMS_MAX at once. A finished deployment's stream sends what is stored, then
 * `end` — unless it is its app's serving deployment (`servingDeployment`), whose output keeps coming.
 */
@Injectable()
export class DeploymentLogReader implements BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly streams = new OpenStreams<LogStream>();
  private readonly js: JetStreamClient;
  private manager?: Promise<JetStreamManager>;

  constructor(
    @Inject(API_NATS) private readonly connection: NatsConnection,
    @Inject(DataSource) private readonly dataSource: DataSource,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.js = jetstream(connection);
  }

  get clients(): number {
    return this.streams.size;
  }

  private jsm(): Promise<JetStreamManager> {
    this.manager ??= jetstreamManager(this.connection);
    return this.manager;
  }

  /** The last `lines` lines of the deployment's output. */
  async tail(deploymentId: string, lines: number): Promise<DeploymentLogs> {
    const tail = await this.readTail(logsSubject(deploymentId), lines);
    return {
      deploymentId,
      lines: lastLines(tail.batches, lines).flatMap((batch) =>
        batch.lines.map((line) => ({ seq: batch.seq, ...line })),
      ),
      last: tail.last,
    };
  }

  /**
   * The deployment whose output is the app's running release's: its last succeeded one, while the app
   * serves a release (null: none yet). A deploy starts the release it built; a rollback starts a kept
   * release again, and its output goes to the rollback, not to the deployment that built it.
   */
  async servingDeployment(appName: string): Promise<string | null> {
    const app = await appByName(this.dataSource, appName);
    if (!app?.current) return null;
    const { deployments } = await deploymentsOfApp(this.dataSource, appName, {
      status: 'succeeded',
      limit: 1,
    });
    return deployments[0]?.deploymentId ?? null;
  }

  /**
   * The terminal status of a deployment whose output is over (null: more may come — it runs, or it is
   * its app's serving deployment, or the projection does not know it yet).
   */
  async finished(deploymentId: string): Promise<string | null> {
    const deployment = await deploymentById(this.dataSource, deploymentId);
    if (!deployment || !isTerminalDeploymentStatus(deployment.status)) return null;
    if (deployment.status !== 'succeeded') return deployment.status;
    return (await this.servingDeployment(deployment.appName)) === deploymentId ? null : deployment.status;
  }

  /** Streams the deployment's output on `request.response` until it ends, the client leaves or the API stops. */
  async follow(request: LogStreamRequest): Promise<void> {
    const max = this.config.CL_LOG_STREAMS_MAX;
    this.streams.admit(max, `too many log streams (${max} at most): close one, or raise CL_LOG_STREAMS_MAX`);
    const stream = new LogStream(request, this, this.logger);
    await this.streams.track(stream, () => stream.run());
  }

  /** Ends every stream before the HTTP server closes (which waits for open responses). */
  async beforeApplicationShutdown(): Promise<void> {
    await this.streams.closeAll('shutdown');
  }

  onApplicationShutdown(): void {
    this.streams.clear();
  }

  /** Where the subject stands: its batch count, its last sequence and the stream's (all 0: no stream yet). */
  async position(subject: string) {
    const jsm = await this.jsm();
    let info;
    try {
      info = await jsm.streams.info(LOGS_STREAM, { subjects_filter: subject });
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === 10059) {
        return { count: 0, last: 0, first: 0, streamLast: 0 };
      }
      throw error;
    }
    const count = info.state.subjects?.[subject] ?? 0;
    const last =
      count === 0 ? 0 : ((await jsm.streams.getMessage(LOGS_STREAM, { last_by_subj: subject }))?.seq ?? 0);
    return { count, last, first: info.state.first_seq, streamLast: info.state.last_seq };
  }

  /** The last `batches` batches of the subject (each holds at least one line, so they hold the last lines). */
  async readTail(subject: string, batches: number): Promise<Tail> {
    const { count, last, first, streamLast } = await this.position(subject);
    if (count === 0 || last === 0) return { batches: [], last: 0, streamLast };
    // Bounded: no per-subject "last N" read exists, so start where the subject's average density over
    // the stream puts its last N batches (×1.5), and widen ×4 only when that held too few.
    const span = last - first + 1;
    let window = count <= batches ? span : Math.ceil(((batches * span) / count) * 1.5);
    for (;;) {
      const start = Math.max(first, last - window + 1);
      const read = await this.readRange(subject, start, last, batches, start > first);
      if (read) return { batches: read, last, streamLast };
      window *= 4;
    }
  }

  /**
   * The last `keep` batches of the subject from `start` to `until`; null when `mayWiden` and fewer than
   * `keep` are there (known from the first batch's pending count, before reading the rest).
   */
  private async readRange(
    subject: string,
    start: number,
    until: number,
    keep: number,
    mayWiden: boolean,
  ): Promise<Batch[] | null> {
    const consumer = await this.orderedConsumer(subject, start);
    const kept: Batch[] = [];
    let skip = 0;
    let first = true;
    try {
      for (;;) {
        const messages = await consumer.fetch({ max_messages: FETCH_BATCH, expires: FETCH_EXPIRES_MS });
        let received = 0;
        let done = false;
        for await (const message of messages) {
          received++;
          if (first) {
            first = false;
            const available = message.info.pending + 1;
            if (available < keep && mayWiden) {
              messages.stop();
              return null;
            }
            skip = Math.max(0, available - keep);
          }
          if (skip > 0) skip--;
          else kept.push(batchOf(message));
          if (message.seq >= until) {
            done = true;
            messages.stop();
            break;
          }
        }
        // Nothing more came (the stream's limits removed what was left): what was read is the tail.
        if (done || received === 0) break;
      }
    } finally {
      await consumer.delete().catch(() => undefined);
    }
    if (first && mayWiden) return null;
    return kept.slice(-keep);
  }

  orderedConsumer(subject: string, from: number): Promise<Consumer> {
    return this.js.consumers.get(LOGS_STREAM, {
      name_prefix: `${LOG_CONSUMER_PREFIX}_${randomBytes(6).toString('hex')}`,
      filter_subjects: subject,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(1, from),
      // A consumer left behind by a crash disappears by itself.
      inactive_threshold: nanos(60_000),
    });
  }
}

class LogStream {
  private readonly channel: SseChannel;
  private consumer?: Consumer;
  private messages?: ConsumerMessages;
  private readonly subject: string;
  /** The last sequence sent. */
  private sent = 0;
  /** Once the deployment's output is over: the sequence after which the stream ends. */
  private until?: number;
  private status?: string;

  constructor(
    private readonly request: LogStreamRequest,
    private readonly reader: DeploymentLogReader,
    private readonly logger: Logger,
  ) {
    this.subject = logsSubject(request.deploymentId);
    this.channel = new SseChannel(request, {
      heartbeat: () => this.heartbeat(),
      release: async () => {
        this.messages?.stop();
        await this.deleteConsumer();
      },
    });
  }

  close(reason: string): Promise<void> {
    return this.channel.close(reason);
  }

  async run(): Promise<void> {
    const { channel, request } = this;
    channel.watchClient();
    const status = await this.reader.finished(request.deploymentId);
    let backlog: Batch[] = [];
    let from: number;
    let last: number;
    if (request.after === undefined) {
      const tail = await this.reader.readTail(this.subject, request.tail);
      backlog = lastLines(tail.batches, request.tail);
      last = tail.last;
      from = Math.max(tail.last, tail.streamLast) + 1;
    } else {
      last = (await this.reader.position(this.subject)).last;
      from = request.after + 1;
    }
    if (status !== null) {
      this.status = status;
      this.until = last;
    }
    const more = this.until === undefined || this.until >= from;
    if (more && !channel.aborted) this.consumer = await this.reader.orderedConsumer(this.subject, from);
    if (channel.aborted) {
      await this.deleteConsumer();
      return;
    }
    if (this.consumer) this.messages = await this.consumer.consume({ max_messages: CONSUMER_BUFFER });

    channel.begin();
    this.sent = from - 1;
    await channel.write('retry: 2000\n\n');
    for (const batch of backlog) await this.send(batch);
    if (!this.messages) {
      await this.finish();
      return;
    }
    channel.startTimers(HEARTBEAT_MS);

    try {
      for await (const message of this.messages) {
        if (channel.aborted) break;
        await this.send(batchOf(message));
        if (this.until !== undefined && message.seq >= this.until) {
          await this.finish();
          break;
        }
      }
    } catch (error) {
      if (!channel.aborted) {
        this.logger.warn('a log stream lost the LOGS stream', { error });
        await channel.end('error', { message: 'the log stream was interrupted; reconnect' });
      }
    } finally {
      await channel.close('done');
    }
  }

  private async send(batch: Batch): Promise<void> {
    this.sent = batch.seq;
    await this.channel.write(
      `id: ${batch.seq}\nevent: lines\ndata: ${JSON.stringify({ lines: batch.lines })}\n\n`,
    );
  }

  private finish(): Promise<void> {
    return this.channel.end('end', { deploymentId: this.request.deploymentId, status: this.status });
  }

  /**
   * A comment, after the token's check; and when the deployment finished meanwhile (and is not its app's
   * serving deployment, or no longer), the stream ends once what is stored was sent.
   */
  private async heartbeat(): Promise<string | null> {
    if (this.until === undefined) {
      const status = await this.reader.finished(this.request.deploymentId).catch(() => null);
      if (status !== null) {
        const position = await this.reader.position(this.subject).catch(() => null);
        if (position) {
          this.status = status;
          this.until = position.last;
          if (this.sent >= position.last) {
            await this.finish();
            return null;
          }
        }
      }
    }
    return `: heartbeat ${new Date().toISOString()}\n\n`;
  }

  private async deleteConsumer(): Promise<void> {
    // Stopping an ordered consumer leaves it on the server until its inactivity threshold: delete it now.
    await this.consumer?.delete().catch(() => undefined);
  }
}
