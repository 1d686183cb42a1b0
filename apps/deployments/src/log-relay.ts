import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  AGENTS_SUBJECT_PREFIX,
  allAgentLogs,
  logBatch,
  LOGS_STREAM,
  logsSubject,
  Redactor,
  stripControlCharacters,
  type LogLine,
} from '#contracts';
import type { Logger } from '#platform';

export interface LogRelayOptions {
  maxAgeSeconds: number;
  maxBytes: number;
  maxMessagesPerSubject: number;
  replicas: number;
  /** What one agent may put into the logs per second. */
  bytesPerSecondPerAgent: number;
}

/** What the relay needs to know of a deployment: whose it is, and the values to redact from its lines. */
export interface LogOwner {
  agentId: string;
  secrets: () => Promise<Record<string, string>>;
}

const MAX_BATCH_BYTES = 64 * 1024;
const DROP_NOTICE_EVERY_MS = 5_000;
const SECRETS_TTL_MS = 60_000;
const OWNERS_MAX = 10_000;

/** A token bucket per agent: a second's worth of bytes, refilled continuously. */
class ByteBudget {
  private tokens: number;
  private at = Date.now();
  constructor(private readonly perSecond: number) {
    this.tokens = perSecond;
  }
  take(bytes: number): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.at) / 1000) * this.perSecond);
    this.at = now;
    if (bytes > this.tokens) return false;
    this.tokens -= bytes;
    return true;
  }
}

/**
 * Agents' output, relayed into the LOGS stream after checks: the deployment must be the sender's, the
 * batch within bounds, the agent within its byte rate; control characters are stripped (no terminal
 * escapes into `logs -f`) and secret values removed again, after the agent did. Why a relay and not a
 * stream on the agents' subjects: an agent could then invent subjects and evict everyone's logs.
 */
export class LogRelay {
  private subscription?: Subscription;
  private readonly js: JetStreamClient;
  private readonly budgets = new Map<string, ByteBudget>();
  private readonly dropped = new Map<string, { count: number; noticedAt: number }>();
  private readonly redactors = new Map<string, { redactor: Redactor; at: number }>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Counters of what was refused, by reason (for operators and tests). */
  readonly refused = new Map<string, number>();

  constructor(
    private readonly connection: NatsConnection,
    private readonly ownerOf: (deploymentId: string) => Promise<LogOwner | null>,
    private readonly options: LogRelayOptions,
    private readonly logger: Logger,
  ) {
    this.js = jetstream(connection);
  }

  /** Creates the LOGS stream when it is missing (never changes one that exists). */
  async provision(): Promise<void> {
    const jsm = await jetstreamManager(this.connection);
    try {
      await jsm.streams.info(LOGS_STREAM);
    } catch {
      await jsm.streams.add({
        name: LOGS_STREAM,
        subjects: ['logs.>'],
        max_age: this.options.maxAgeSeconds * 1_000_000_000,
        max_bytes: this.options.maxBytes,
        max_msgs_per_subject: this.options.maxMessagesPerSubject,
        max_msg_size: MAX_BATCH_BYTES + 4096,
        duplicate_window: 120_000_000_000,
        num_replicas: this.options.replicas,
      } as Parameters<typeof jsm.streams.add>[0]);
    }
  }

  start(): void {
    this.subscription = this.connection.subscribe(allAgentLogs, {
      queue: 'deployments-logs',
      callback: (error, message) => {
        if (error) return;
        const work: Promise<void> = this.relay(message)
          .then(() => undefined)
          .catch((failure: unknown) => this.logger.warn('could not relay log lines', { error: failure }))
          .finally(() => this.inFlight.delete(work));
        this.inFlight.add(work);
      },
    });
  }

  async stop(): Promise<void> {
    this.subscription?.unsubscribe();
    await Promise.all(this.inFlight);
  }

  private refuse(reason: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
  }

  /** `agents.<id>.out.logs.<deploymentId>`: the broker lets an agent publish only under its own id. */
  async relay(message: Pick<Msg, 'subject' | 'data'>): Promise<boolean> {
    const tokens = message.subject.split('.');
    if (tokens.length !== 5 || tokens[0] !== AGENTS_SUBJECT_PREFIX || tokens[3] !== 'logs') {
      this.refuse('subject');
      return false;
    }
    const agentId = tokens[1]!;
    const deploymentId = tokens[4]!;
    if (message.data.length > MAX_BATCH_BYTES) {
      this.refuse('size');
      return false;
    }
    let batch;
    try {
      batch = logBatch.parse(JSON.parse(new TextDecoder().decode(message.data)));
    } catch {
      this.refuse('malformed');
      return false;
    }
    const owner = await this.ownerOf(deploymentId).catch(() => null);
    if (!owner || owner.agentId !== agentId) {
      this.refuse('foreign');
      return false;
    }
    let budget = this.budgets.get(agentId);
    if (!budget) this.budgets.set(agentId, (budget = new ByteBudget(this.options.bytesPerSecondPerAgent)));
    const lines: LogLine[] = [];
    if (!budget.take(message.data.length)) {
      this.refuse('rate');
      const drop = this.dropped.get(deploymentId) ?? { count: 0, noticedAt: 0 };
      drop.count += batch.lines.length;
      this.dropped.set(deploymentId, drop);
      if (Date.now() - drop.noticedAt < DROP_NOTICE_EVERY_MS) return false;
      lines.push({ t: new Date().toISOString(), s: 'sys', x: `${drop.count} lines dropped (rate limit)` });
      drop.noticedAt = Date.now();
      drop.count = 0;
    } else {
      const redactor = await this.redactorFor(deploymentId, owner);
      for (const line of batch.lines) {
        lines.push({ t: line.t, s: line.s, x: redactor.redact(stripControlCharacters(line.x)) });
      }
    }
    await this.js.publish(logsSubject(deploymentId), JSON.stringify({ lines }), {
      msgID: `${deploymentId}:${batch.boot}:${batch.seq}${lines[0]?.s === 'sys' && lines.length === 1 ? ':drop' : ''}`,
    });
    return true;
  }

  private async redactorFor(deploymentId: string, owner: LogOwner): Promise<Redactor> {
    const cached = this.redactors.get(deploymentId);
    if (cached && Date.now() - cached.at < SECRETS_TTL_MS) return cached.redactor;
    const redactor = new Redactor(await owner.secrets());
    if (this.redactors.size >= OWNERS_MAX) this.redactors.clear();
    this.redactors.set(deploymentId, { redactor, at: Date.now() });
    return redactor;
  }
}
