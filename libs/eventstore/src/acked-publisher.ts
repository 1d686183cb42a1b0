import { JetStreamApiError, type ApiError } from '@nats-io/jetstream';
import {
  createInbox,
  headers,
  NoRespondersError,
  TimeoutError,
  type Msg,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';

export interface PublishAck {
  seq: number;
  duplicate: boolean;
}

export interface AckedPublishOptions {
  /** Nats-Msg-Id: the stream stores one message per id within its duplicate window. */
  msgId: string;
  /** Nats-Expected-Last-Subject-Sequence: refused unless the subject's last message has this sequence. */
  expectedLastSubjectSequence?: number;
}

interface PendingAck {
  resolve(ack: PublishAck): void;
  reject(error: Error): void;
  subject: string;
  deadline: number;
}

const textDecoder = new TextDecoder();

/**
 * Publishes to JetStream and awaits each stream acknowledgement on one reply subscription shared by all
 * appends. `js.publish` pays, per message, for a request object, a timer and two Error objects whose stack
 * traces it captures up front; on a busy 2-core front server those were a third of the appender's CPU.
 * Here a publish is a map entry, and one sweep per interval times out the acks that never came.
 */
export class AckedPublisher {
  private readonly pending = new Map<string, PendingAck>();
  private subscription: Subscription | undefined;
  private inbox = '';
  private nextToken = 0;
  private sweeper: NodeJS.Timeout | undefined;
  private watchingStatus = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs: number,
  ) {}

  publish(subject: string, payload: Uint8Array, options: AckedPublishOptions): Promise<PublishAck> {
    this.start();
    const token = (this.nextToken++).toString(36);
    const messageHeaders = headers();
    messageHeaders.set('Nats-Msg-Id', options.msgId);
    if (options.expectedLastSubjectSequence !== undefined) {
      messageHeaders.set('Nats-Expected-Last-Subject-Sequence', String(options.expectedLastSubjectSequence));
    }
    return new Promise<PublishAck>((resolve, reject) => {
      this.pending.set(token, { resolve, reject, subject, deadline: Date.now() + this.timeoutMs });
      try {
        this.nc.publish(subject, payload, { reply: `${this.inbox}.${token}`, headers: messageHeaders });
      } catch (error) {
        this.pending.delete(token);
        reject(error as Error);
      }
    });
  }

  /** Rejects what is still waiting and stops listening; later publishes subscribe again. */
  close(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    for (const [token, waiting] of this.pending) {
      this.pending.delete(token);
      waiting.reject(new Error(`publish to ${waiting.subject} abandoned: the publisher was closed`));
    }
  }

  private start(): void {
    if (this.subscription && !this.subscription.isClosed()) return;
    // Replies go under the connection's own inbox prefix, the one its permissions allow (as nc.request does).
    const connectionOptions = (this.nc as { options?: { inboxPrefix?: string } }).options;
    this.inbox = createInbox(connectionOptions?.inboxPrefix);
    this.subscription = this.nc.subscribe(`${this.inbox}.*`, {
      callback: (error, message) => (error ? this.failAll(error) : this.settle(message)),
    });
    this.watchStatus();
    if (this.sweeper) return;
    this.sweeper = setInterval(() => this.expire(), Math.max(50, Math.min(1_000, this.timeoutMs / 4)));
    this.sweeper.unref();
  }

  /**
   * A lost connection loses the acks on their way: waiting for the timeout only delays the caller's retry
   * (which the message id makes safe), so what is pending fails at once.
   */
  private watchStatus(): void {
    if (this.watchingStatus) return;
    this.watchingStatus = true;
    void (async () => {
      for await (const status of this.nc.status()) {
        if (status.type !== 'disconnect') continue;
        for (const [token, waiting] of this.pending) {
          this.pending.delete(token);
          waiting.reject(
            new Error(
              `connection lost (to the broker) before the ack of a publish to ${waiting.subject}; retrying is safe`,
            ),
          );
        }
      }
    })().catch(() => undefined);
  }

  private settle(message: Msg): void {
    const token = message.subject.slice(this.inbox.length + 1);
    const waiting = this.pending.get(token);
    if (!waiting) return; // timed out already
    this.pending.delete(token);
    if (message.data.length === 0 && message.headers?.code === 503) {
      waiting.reject(new NoRespondersError(waiting.subject));
      return;
    }
    let reply: { seq?: number; duplicate?: boolean; error?: ApiError };
    try {
      reply = JSON.parse(textDecoder.decode(message.data)) as typeof reply;
    } catch {
      waiting.reject(new Error(`unreadable acknowledgement for a publish to ${waiting.subject}`));
      return;
    }
    if (reply.error) waiting.reject(new JetStreamApiError(reply.error));
    else if (typeof reply.seq !== 'number') {
      waiting.reject(new Error(`acknowledgement without a sequence for a publish to ${waiting.subject}`));
    } else waiting.resolve({ seq: reply.seq, duplicate: reply.duplicate === true });
  }

  private expire(): void {
    // The map keeps publish order and every deadline is publish time + one timeout: stop at the first alive.
    const now = Date.now();
    for (const [token, waiting] of this.pending) {
      if (waiting.deadline > now) break;
      this.pending.delete(token);
      waiting.reject(new TimeoutError());
    }
  }

  private failAll(error: Error): void {
    for (const [token, waiting] of this.pending) {
      this.pending.delete(token);
      waiting.reject(error);
    }
    this.subscription = undefined;
  }
}
