import { randomUUID } from 'node:crypto';
import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  agentSubjects,
  DomainError,
  dnsLabel,
  toErrorBody,
  ValidationError,
  type Actor,
  type CommandReply,
} from '#contracts';
import { ACCEPTABLE_CORRELATION_ID, withCorrelation, type Logger } from '#platform';

/**
 * Whether an answer on `reply` can only reach the agent that sent the request: the server's one-off
 * response subject (the request crossed from the agent's own account, so the answer goes back there and
 * nowhere else), or the agent's own inbox prefix.
 */
export function replyLeadsBackTo(agentId: string, reply: string): boolean {
  return (
    reply.startsWith(agentSubjects.crossAccountReplyPrefix) ||
    reply.startsWith(`${agentSubjects.inboxPrefix(agentId)}.`)
  );
}

/** One agent request, as the handler of its command sees it. */
export interface AgentRequest {
  /** The sender: the broker lets an agent publish only under its own prefix, so the subject names it. */
  agentId: string;
  actor: Actor;
  /** The JSON body (`{}` when empty), not yet validated: each command parses its own. */
  body: unknown;
  headers?: MsgHdrs;
  /** The agent's `X-Correlation-Id` header when short and plain, else a new id: what it causes carries it. */
  correlationId: string;
}

/** The NATS header an agent names its own correlation id in (as X-Correlation-Id over HTTP). */
export const CORRELATION_HEADER = 'X-Correlation-Id';

export interface AgentRequestServerOptions {
  /** The wildcard subject of every agent's requests, e.g. `agents.*.out.req.routes.*`. */
  subject: string;
  /** Queue group: one instance of the service answers each request. */
  queue: string;
  /** What the requests are about, for messages ("route", "certificate"). */
  topic: string;
  maxBodyBytes: number;
  /** Requests of one agent handled at once; more are refused (`unavailable`) instead of queued. */
  maxInFlightPerAgent: number;
  /** The handlers by command: the subject's last token. */
  commands: Record<string, (request: AgentRequest) => Promise<unknown>>;
}

/**
 * Answers requests agents publish on their own prefix, `agents.<id>.out.req.<topic>.<command>`, with a
 * CommandReply (`{ ok, result | error }`) on the agent's inbox: the same rules as over HTTP, a bounded
 * body, and a bound per agent so that one agent's backlog never holds up the others.
 */
export class AgentRequestServer {
  private subscription?: Subscription;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly perAgent = new Map<string, number>();

  constructor(
    private readonly connection: NatsConnection,
    private readonly options: AgentRequestServerOptions,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.subscription = this.connection.subscribe(this.options.subject, {
      queue: this.options.queue,
      callback: (error, message) => {
        if (error) {
          this.logger.warn('agent request subscription error', { error });
          return;
        }
        const work = this.handle(message).finally(() => this.inFlight.delete(work));
        this.inFlight.add(work);
      },
    });
  }

  async stop(): Promise<void> {
    this.subscription?.unsubscribe();
    await Promise.allSettled([...this.inFlight]);
  }

  /** Answers one request (public for unit tests of the per-agent bound). */
  async handle(message: Pick<Msg, 'subject' | 'data' | 'headers' | 'reply' | 'respond'>): Promise<void> {
    const agentId = message.subject.split('.')[1] ?? '';
    if (message.reply && !replyLeadsBackTo(agentId, message.reply)) {
      // Answering would publish, with this service's rights, wherever the sender pointed: refuse it
      // without running the command (there is no safe place to say so).
      this.logger.warn('agent request refused: its reply subject is not the sender’s own', {
        subject: message.subject,
        reply: message.reply.slice(0, 120),
      });
      return;
    }
    const busy = this.perAgent.get(agentId) ?? 0;
    this.perAgent.set(agentId, busy + 1);
    let reply: CommandReply;
    try {
      reply =
        busy >= this.options.maxInFlightPerAgent
          ? {
              ok: false,
              error: {
                error: 'unavailable',
                message: `more than ${this.options.maxInFlightPerAgent} ${this.options.topic} requests at once; wait for answers and retry`,
              },
            }
          : await this.answer(message);
    } finally {
      const left = (this.perAgent.get(agentId) ?? 1) - 1;
      if (left > 0) this.perAgent.set(agentId, left);
      else this.perAgent.delete(agentId);
    }
    if (!message.reply) return;
    try {
      message.respond(JSON.stringify(reply));
    } catch (error) {
      this.logger.warn('could not answer an agent request', { subject: message.subject, error });
    }
  }

  /** `agents.<id>.out.req.<topic>.<command>` → the command's reply. */
  async answer(message: Pick<Msg, 'subject' | 'data' | 'headers'>): Promise<CommandReply> {
    try {
      const tokens = message.subject.split('.');
      const agentId = tokens[1] ?? '';
      if (tokens.length !== 6 || !dnsLabel.safeParse(agentId).success) {
        throw new DomainError('invalid', 'not an agent request subject', '(subject)');
      }
      const name = tokens[5] ?? '';
      const command = Object.hasOwn(this.options.commands, name) ? this.options.commands[name] : undefined;
      if (!command) {
        throw new DomainError(
          'not_found',
          `unknown ${this.options.topic} command ${JSON.stringify(name.slice(0, 40))}; use ${Object.keys(this.options.commands).join(', ')}`,
          '(subject)',
        );
      }
      const given = message.headers?.get(CORRELATION_HEADER);
      const correlationId = given && ACCEPTABLE_CORRELATION_ID.test(given) ? given : randomUUID();
      const result = await withCorrelation(correlationId, () =>
        command({
          agentId,
          actor: { kind: 'agent', id: agentId },
          body: this.body(message.data),
          headers: message.headers,
          correlationId,
        }),
      );
      return { ok: true, result };
    } catch (error) {
      const body = toErrorBody(error);
      if (body.error === 'internal')
        this.logger.error(`agent ${this.options.topic} request failed`, { error });
      return { ok: false, error: body };
    }
  }

  private body(data: Uint8Array): unknown {
    const limit = this.options.maxBodyBytes;
    if (data.length > limit) {
      throw new ValidationError([{ field: '(body)', message: `must be at most ${limit} bytes` }]);
    }
    if (data.length === 0) return {};
    try {
      return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
    } catch {
      throw new ValidationError([{ field: '(body)', message: 'must be a JSON object' }]);
    }
  }
}
