import { randomUUID } from 'node:crypto';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  allAgentDatabaseAnswers,
  databaseAnswer,
  DEPLOYMENT_TOPICS,
  DomainError,
  type DatabaseAnswer,
  type DatabaseRequestMessage,
} from '#contracts';
import { AgentInbox } from '#messaging';
import type { Logger } from '#platform';

interface Pending {
  agentId: string;
  resolve: (answer: DatabaseAnswer) => void;
}

/**
 * Passes an admin's request about a database to its agent and the agent's answer back. Every replica of
 * the service hears every answer (no queue group) and keeps the one it waits for; an answer from another
 * agent than the database's, or for no request, is dropped. Sealed answers pass through unread.
 */
export class DatabaseRelay {
  private readonly inbox: AgentInbox;
  private readonly pending = new Map<string, Pending>();
  private subscription?: Subscription;

  constructor(
    private readonly connection: NatsConnection,
    private readonly logger: Logger,
  ) {
    this.inbox = new AgentInbox(connection, logger);
  }

  start(): void {
    this.subscription = this.connection.subscribe(allAgentDatabaseAnswers, {
      callback: (error, message) => {
        if (error) return;
        const agentId = message.subject.split('.')[1]!;
        let json: unknown;
        try {
          json = message.json();
        } catch {
          json = undefined;
        }
        const parsed = databaseAnswer.safeParse(json);
        if (!parsed.success) {
          this.logger.warn('an agent sent a malformed database answer; dropped', { agentId });
          return;
        }
        const waiting = this.pending.get(parsed.data.requestId);
        if (!waiting || waiting.agentId !== agentId) return;
        this.pending.delete(parsed.data.requestId);
        waiting.resolve(parsed.data);
      },
    });
  }

  async stop(): Promise<void> {
    this.subscription?.unsubscribe();
    this.pending.clear();
  }

  /** Asks the agent; resolves with its answer, or throws `timeout` when it does not answer in time. */
  async ask(
    agentId: string,
    request: Omit<DatabaseRequestMessage, 'requestId' | 'expiresAt'>,
    answerMs: number,
  ): Promise<DatabaseAnswer> {
    const requestId = randomUUID();
    const answered = new Promise<DatabaseAnswer>((resolve) =>
      this.pending.set(requestId, { agentId, resolve }),
    );
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), answerMs);
    });
    try {
      const message: DatabaseRequestMessage = {
        ...request,
        requestId,
        expiresAt: new Date(Date.now() + answerMs).toISOString(),
      };
      const sent = await this.inbox.send(agentId, DEPLOYMENT_TOPICS.database, message, `db:${requestId}`);
      if (!sent)
        throw new DomainError('unavailable', 'the request could not be stored for the agent: try again');
      const answer = await Promise.race([answered, timedOut]);
      if (answer === null)
        throw new DomainError(
          'timeout',
          `agent ${agentId} did not answer in ${answerMs / 1000} s: is it online? (a database's credentials and backups live on its VPS)`,
        );
      return answer;
    } finally {
      clearTimeout(timer);
      this.pending.delete(requestId);
    }
  }
}
