import { randomUUID } from 'node:crypto';
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type MsgRequest,
  type OrderedConsumerOptions,
} from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import {
  aggregateSubject,
  EVENTS_STREAM,
  EVENTS_SUBJECT_PREFIX,
  type AggregateType,
  type EventContext,
  type EventEnvelope,
  type EventRegistry,
  type StoredEvent,
  UndecodableEventError,
} from '#contracts';
import { AckedPublisher } from './acked-publisher.js';
import { ConcurrencyError } from './errors.js';
import {
  decideQuarantine,
  decodeFailure,
  UndecodableLogEntryError,
  type LogEntryState,
  type QuarantineCommand,
} from './quarantine.js';

export interface EventStoreOptions {
  registry: EventRegistry;
  stream?: string;
  subjectPrefix?: string;
  /** How long to wait for a publish acknowledgement. */
  publishTimeoutMs?: number;
}

export interface NewEventInput {
  type: string;
  data: unknown;
}

export interface AppendOptions {
  context: EventContext;
  /**
   * The aggregate's last sequence that the decision was based on (0: the aggregate has no events yet).
   * Omit only for events that need no concurrency check.
   */
  expectedSequence?: number;
  /** The command's id: becomes Nats-Msg-Id, so retrying the same command appends nothing new. */
  commandId?: string;
}

export interface AppendResult {
  /** `duplicate`: every event was already stored by an earlier attempt of the same command. */
  outcome: 'appended' | 'duplicate';
  events: StoredEvent[];
  lastSequence: number;
}

export interface AggregateHistory {
  events: StoredEvent[];
  /** Pass this as `expectedSequence` when appending a decision based on these events. */
  lastSequence: number;
}

/** One message of the log before decoding: the projector decides what to do with one it cannot read. */
export interface RawLogEntry {
  sequence: number;
  subject: string;
  data: Uint8Array;
  /** Messages still in the stream after this one when it was delivered. */
  pending: number;
}

export interface ReadLogOptions {
  fromSequence?: number;
  fromTime?: Date;
  /** Stop after this sequence. Without it (and without `follow`) reading stops at the stream's end as of the call. */
  untilSequence?: number;
  /** Keep waiting for new events until `signal` aborts. */
  follow?: boolean;
  signal?: AbortSignal;
  /** Messages buffered from the server at most: bounds memory however long the log is. */
  bufferSize?: number;
  /** Only events of these subjects (one NATS filter; 2.9 allows one per consumer). */
  filterSubject?: string;
}

export interface QuarantineOutcome {
  sequence: number;
  subject: string;
  /** false: it was quarantined already, nothing was appended. */
  changed: boolean;
}

const textEncoder = new TextEncoder();
const SHORT_HISTORY = 16;
const textDecoder = new TextDecoder();

/** The event log on one JetStream stream: append with optimistic concurrency and deduplication, and read. */
/** A following read's pull lifetime; its idle heartbeat is half of it (the client's default). */
const FOLLOW_PULL_EXPIRES_MS = 2_000;

export class EventStore {
  readonly stream: string;
  readonly subjectPrefix: string;
  readonly registry: EventRegistry;
  private readonly js: JetStreamClient;
  private readonly publisher: AckedPublisher;
  /** Quarantine is forever, so a sequence found quarantined once is remembered. */
  private readonly quarantined = new Set<number>();

  constructor(
    nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    options: EventStoreOptions,
  ) {
    this.registry = options.registry;
    this.stream = options.stream ?? EVENTS_STREAM;
    this.subjectPrefix = options.subjectPrefix ?? EVENTS_SUBJECT_PREFIX;
    this.js = jetstream(nc);
    this.publisher = new AckedPublisher(nc, options.publishTimeoutMs ?? 5_000);
  }

  subjectOf(type: AggregateType, id: string): string {
    return aggregateSubject(type, id, this.subjectPrefix);
  }

  /**
   * Appends events to one aggregate. Every event is validated before anything is written, so bad data
   * appends nothing. Throws ConcurrencyError when the aggregate moved past `expectedSequence`.
   */
  async append(
    aggregate: { type: AggregateType; id: string },
    events: readonly NewEventInput[],
    options: AppendOptions,
  ): Promise<AppendResult> {
    if (events.length === 0) throw new Error('append needs at least one event');
    const subject = this.subjectOf(aggregate.type, aggregate.id);
    const occurredAt = new Date().toISOString();
    const envelopes: EventEnvelope[] = events.map((event) => {
      const { version, data } = this.registry.validateNew(event.type, aggregate.type, event.data);
      return {
        id: randomUUID(),
        type: event.type,
        schemaVersion: version,
        aggregate: { type: aggregate.type, id: aggregate.id },
        occurredAt,
        actor: options.context.actor,
        correlationId: options.context.correlationId,
        causationId: options.context.causationId ?? null,
        data,
      };
    });

    const stored: StoredEvent[] = [];
    let duplicates = 0;
    let expected = options.expectedSequence;
    for (const [index, envelope] of envelopes.entries()) {
      // Message ids are deduplicated stream-wide: scope the command id by subject so two aggregates
      // appended under the same client key (e.g. one Idempotency-Key reused) never swallow each other.
      const msgID = options.commandId
        ? `${subject}@${options.commandId}${envelopes.length === 1 ? '' : `#${index}`}`
        : envelope.id;
      let ack;
      try {
        ack = await this.publisher.publish(subject, textEncoder.encode(JSON.stringify(envelope)), {
          msgId: msgID,
          expectedLastSubjectSequence: expected,
        });
      } catch (error) {
        if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamWrongLastSequence) {
          throw new ConcurrencyError(subject, expected ?? 0, parseActualSequence(error.message));
        }
        throw error;
      }
      if (ack.duplicate) {
        duplicates++;
        stored.push(await this.getBySequence(ack.seq));
      } else {
        stored.push({ ...envelope, sequence: ack.seq, subject });
      }
      if (expected !== undefined) expected = ack.seq;
    }
    return {
      outcome: duplicates === envelopes.length ? 'duplicate' : 'appended',
      events: stored,
      lastSequence: stored[stored.length - 1]!.sequence,
    };
  }

  /** All events of one aggregate, and the sequence to expect when appending a decision based on them. */
  async readAggregate(type: AggregateType, id: string): Promise<AggregateHistory> {
    const subject = this.subjectOf(type, id);
    const last = await this.lastSequenceOfSubject(subject);
    if (last === 0) return { events: [], lastSequence: 0 };
    // Aggregates are short: a few "next message on this subject" gets cost less than creating a consumer.
    // A long history switches to an ordered consumer after SHORT_HISTORY messages.
    const events: StoredEvent[] = [];
    let cursor = 1;
    while (events.length < SHORT_HISTORY) {
      // MSG.GET accepts next_by_subj since nats-server 2.9; the client only types it for direct gets.
      const request = { seq: cursor, next_by_subj: subject } as unknown as MsgRequest;
      const message = await this.jsm.streams.getMessage(this.stream, request);
      if (!message) break;
      const event = await this.decodeOrSkip({
        sequence: message.seq,
        subject: message.subject,
        data: message.data,
        pending: 0,
      });
      if (event) events.push(event);
      if (message.seq >= last) return { events, lastSequence: last };
      cursor = message.seq + 1;
    }
    for await (const entry of this.readRaw({
      filterSubject: subject,
      fromSequence: cursor,
      untilSequence: last,
    })) {
      const event = await this.decodeOrSkip(entry);
      if (event) events.push(event);
    }
    return { events, lastSequence: last };
  }

  /** The stream sequence of the newest message on `subject`, 0 when there is none. */
  async lastSequenceOfSubject(subject: string): Promise<number> {
    try {
      const message = await this.jsm.streams.getMessage(this.stream, { last_by_subj: subject });
      return message?.seq ?? 0;
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.NoMessageFound) return 0;
      throw error;
    }
  }

  /**
   * Which log this is: the stream's creation time. A broker whose data was lost and started again has
   * another log under the same name; what was derived from the old one is not about this one.
   */
  async identity(): Promise<{ stream: string; created: string }> {
    const info = await this.jsm.streams.info(this.stream);
    return { stream: this.stream, created: info.created };
  }

  /** The sequence of the newest event in the log (0 when empty). */
  async lastSequence(): Promise<number> {
    const info = await this.jsm.streams.info(this.stream);
    return info.state.last_seq;
  }

  /** The sequence of the last event stored at or before `time` (0 when there is none). */
  async sequenceAt(time: Date): Promise<number> {
    const last = await this.lastSequence();
    if (last === 0) return 0;
    const after = await this.probeStart(1, new Date(time.getTime() + 1), undefined);
    return after.pending === 0 ? last : after.sequence - 1;
  }

  async getBySequence(sequence: number): Promise<StoredEvent> {
    const message = await this.jsm.streams.getMessage(this.stream, { seq: sequence });
    if (!message) throw new Error(`no event at sequence ${sequence}`);
    return this.decode({ sequence: message.seq, subject: message.subject, data: message.data, pending: 0 });
  }

  /**
   * Decodes one raw entry: validates the envelope, upcasts and validates its data. `data` may decide per
   * event type whether the data is needed at all (a reader that never looks at it skips its validation).
   */
  decode(entry: RawLogEntry, options: { data?: boolean | ((type: string) => boolean) } = {}): StoredEvent {
    let raw: unknown;
    try {
      raw = JSON.parse(textDecoder.decode(entry.data));
    } catch (error) {
      throw new UndecodableEventError(decodeFailure(error));
    }
    const type = (raw as { type?: unknown } | null)?.type;
    const data =
      typeof options.data === 'function' ? typeof type !== 'string' || options.data(type) : options.data;
    const event = this.registry.decode(raw, { data }) as StoredEvent;
    event.sequence = entry.sequence;
    event.subject = entry.subject;
    return event;
  }

  /**
   * Decodes one entry, or skips it (undefined) when an admin quarantined it. Any other message that
   * cannot be decoded throws UndecodableLogEntryError, which names its sequence and subject.
   */
  async decodeOrSkip(
    entry: RawLogEntry,
    options: { data?: boolean | ((type: string) => boolean) } = {},
  ): Promise<StoredEvent | undefined> {
    try {
      return this.decode(entry, options);
    } catch (error) {
      if (await this.isQuarantined(entry.sequence)) return undefined;
      throw new UndecodableLogEntryError(entry.sequence, entry.subject, decodeFailure(error));
    }
  }

  /**
   * Whether an admin quarantined the message at `sequence`: a decodable EventQuarantined for it on its
   * quarantine subject (anything else there proves nothing).
   */
  async isQuarantined(sequence: number): Promise<boolean> {
    if (this.quarantined.has(sequence)) return true;
    const subject = this.subjectOf('quarantine', String(sequence));
    for (let cursor = 1; ;) {
      const request = { seq: cursor, next_by_subj: subject } as unknown as MsgRequest;
      const message = await this.jsm.streams.getMessage(this.stream, request).catch((error: unknown) => {
        if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.NoMessageFound)
          return null;
        throw error;
      });
      if (!message) return false;
      cursor = message.seq + 1;
      try {
        const event = this.decode({ sequence: message.seq, subject, data: message.data, pending: 0 });
        if (event.type === 'EventQuarantined' && (event.data as { sequence: number }).sequence === sequence) {
          this.quarantined.add(sequence);
          return true;
        }
      } catch {
        // Not a quarantine record: keep looking.
      }
    }
  }

  /** What is stored at `sequence`, for a quarantine decision. */
  private async entryState(sequence: number): Promise<LogEntryState> {
    const message = await this.jsm.streams
      .getMessage(this.stream, { seq: sequence })
      .catch((error: unknown) => {
        if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.NoMessageFound)
          return null;
        throw error;
      });
    if (!message) return { kind: 'missing' };
    try {
      this.decode({ sequence, subject: message.subject, data: message.data, pending: 0 });
      return { kind: 'decodable', subject: message.subject };
    } catch (error) {
      return {
        kind: 'undecodable',
        subject: message.subject,
        payload: message.data,
        error: decodeFailure(error),
      };
    }
  }

  /**
   * Sets an undecodable message aside (audited: the event names the admin): from then on every reader
   * skips it. Refuses a message that decodes or is not there; quarantining twice changes nothing.
   */
  async quarantine(command: QuarantineCommand, context: EventContext): Promise<QuarantineOutcome> {
    const id = String(command.sequence);
    for (let attempt = 1; ; attempt++) {
      const history = await this.readAggregate('quarantine', id);
      const entry = await this.entryState(command.sequence);
      const subject = entry.kind === 'missing' ? '' : entry.subject;
      const data = decideQuarantine(history.events.length > 0, entry, command);
      if (!data) return { sequence: command.sequence, subject, changed: false };
      try {
        await this.append({ type: 'quarantine', id }, [{ type: 'EventQuarantined', data }], {
          context,
          expectedSequence: history.lastSequence,
        });
      } catch (error) {
        // Two admins at once: the second reads the first one's record and changes nothing.
        if (error instanceof ConcurrencyError && attempt < 3) continue;
        throw error;
      }
      this.quarantined.add(command.sequence);
      return { sequence: command.sequence, subject, changed: true };
    }
  }

  /** Decoded events of the log, streamed in order with bounded memory; quarantined messages are skipped. */
  async *readLog(options: ReadLogOptions = {}): AsyncGenerator<StoredEvent> {
    for await (const entry of this.readRaw(options)) {
      const event = await this.decodeOrSkip(entry);
      if (event) yield event;
    }
  }

  /**
   * Raw messages of the log in order, through an ordered consumer that buffers at most `bufferSize`
   * messages. Stops at `untilSequence` (default: the end of the log when called) unless following.
   */
  async *readRaw(options: ReadLogOptions = {}): AsyncGenerator<RawLogEntry> {
    const follow = options.follow ?? false;
    let until = options.untilSequence;
    if (!follow && until === undefined) until = await this.lastSequence();
    let from = Math.max(options.fromSequence ?? 1, 1);
    if (!follow && (until === 0 || from > until!)) return;
    if (options.signal?.aborted) return;

    // A read by time or by subject may match nothing: ask the server where it starts and how much there is,
    // instead of waiting on a consumer that will never deliver.
    if (options.fromTime || (options.filterSubject && !follow)) {
      const start = await this.probeStart(from, options.fromTime, options.filterSubject);
      if (!follow && (start.pending === 0 || start.sequence > until!)) return;
      from = Math.max(from, start.sequence);
    }

    // A following read starts over after the last message it gave when the client recreates its ordered
    // consumer (a broker restart): @nats-io/jetstream 3.4.0 keeps the lost pull's outstanding count for
    // the new consumer, which then delivers a few messages and stalls until heartbeats are missed.
    for (;;) {
      const consumerOptions: Partial<OrderedConsumerOptions> =
        from > 1
          ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from }
          : { deliver_policy: DeliverPolicy.All };
      if (options.filterSubject) consumerOptions.filter_subjects = options.filterSubject;
      const consumer = await this.js.consumers.get(this.stream, consumerOptions);
      // Following: short pulls, so a broker that restarted is noticed by missed heartbeats within a
      // couple of seconds instead of the default 30 s.
      const messages = await consumer.consume({
        max_messages: options.bufferSize ?? 1_000,
        ...(follow ? { expires: FOLLOW_PULL_EXPIRES_MS } : {}),
      });
      let recreated = false;
      if (follow) {
        void (async () => {
          for await (const status of messages.status()) {
            if (status.type === 'ordered_consumer_recreated') {
              recreated = true;
              messages.stop();
              return;
            }
          }
        })().catch(() => undefined);
      }
      const stop = () => messages.stop();
      options.signal?.addEventListener('abort', stop, { once: true });
      try {
        for await (const message of messages) {
          if (recreated) break;
          const entry: RawLogEntry = {
            sequence: message.seq,
            subject: message.subject,
            data: message.data,
            pending: message.info.pending,
          };
          if (until !== undefined && entry.sequence > until) return;
          from = entry.sequence + 1;
          yield entry;
          if (until !== undefined && entry.sequence >= until) return;
          if (!follow && entry.pending === 0) return;
        }
      } finally {
        options.signal?.removeEventListener('abort', stop);
        stop();
      }
      if (!recreated || options.signal?.aborted) return;
    }
  }

  /** Where a read would start and how many messages it would see, from a short-lived server consumer. */
  private async probeStart(
    fromSequence: number,
    fromTime: Date | undefined,
    filterSubject: string | undefined,
  ): Promise<{ sequence: number; pending: number }> {
    const info = await this.jsm.consumers.add(this.stream, {
      ack_policy: AckPolicy.None,
      inactive_threshold: nanos(30_000),
      filter_subject: filterSubject,
      ...(fromTime
        ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: fromTime.toISOString() }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSequence }),
    });
    await this.jsm.consumers.delete(this.stream, info.name).catch(() => undefined);
    return { sequence: info.delivered.stream_seq + 1, pending: info.num_pending };
  }
}

function parseActualSequence(message: string): number | undefined {
  const match = /wrong last sequence:\s*(\d+)/i.exec(message);
  return match ? Number(match[1]) : undefined;
}
