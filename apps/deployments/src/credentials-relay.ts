import { randomUUID } from 'node:crypto';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  allAgentCredentials,
  CREDENTIALS_ANSWER_MS,
  credentialsAnswer,
  DEPLOYMENT_TOPICS,
  DomainError,
  type CredentialsAnswer,
  type CredentialsRequestMessage,
} from '#contracts';
import { AgentInbox } from '#messaging';
import type { Logger } from '#platform';

interface Pending {
  agentId: string;
  resolve: (answer: CredentialsAnswer) => void;
}

/**
 * Passes an admin's request for a database's credentials to its agent and the agent's sealed answer
 * back. Every replica of the service hears every answer (no queue group) and keeps the one it waits
 * for; an answer from another agent than the database's, or for no request, is dropped.
 */
export class CredentialsRelay {
  private readonly inbox: AgentInbox;
  private readonly pending = new Map<string, Pending>();
  private subscription?: Subscription;

  constructor(
    private readonly connection: NatsConnection,
    private readonly logger: Logger,
    private readonly answerMs = CREDENTIALS_ANSWER_MS,
  ) {
    this.inbox = new AgentInbox(connection, logger);
  }

  start(): void {
    this.subscription = this.connection.subscribe(allAgentCredentials, {
      callback: (error, message) => {
        if (error) return;
        const agentId = message.subject.split('.')[1]!;
        let json: unknown;
        try {
          json = message.json();
        } catch {
          json = undefined;
        }
        const parsed = credentialsAnswer.safeParse(json);
        if (!parsed.success) {
          this.logger.warn('an agent sent a malformed credentials answer; dropped', { agentId });
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
    for (const [requestId] of this.pending) this.pending.delete(requestId);
  }

  /** Asks the agent; resolves with its answer or throws `unavailable` when it does not answer in time. */
  async ask(
    agentId: string,
    request: Omit<CredentialsRequestMessage, 'requestId' | 'expiresAt'>,
  ): Promise<CredentialsAnswer> {
    const requestId = randomUUID();
    const answered = new Promise<CredentialsAnswer>((resolve) =>
      this.pending.set(requestId, { agentId, resolve }),
    );
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), this.answerMs);
    });
    try {
      const message: CredentialsRequestMessage = {
        ...request,
        requestId,
        expiresAt: new Date(Date.now() + this.answerMs).toISOString(),
      };
      const sent = await this.inbox.send(
        agentId,
        DEPLOYMENT_TOPICS.credentials,
        message,
        `cred:${requestId}`,
      );
      if (!sent)
        throw new DomainError('unavailable', 'the request could not be stored for the agent: try again');
      const answer = await Promise.race([answered, timedOut]);
      if (answer === null)
        throw new DomainError(
          'unavailable',
          `agent ${agentId} did not answer in ${this.answerMs / 1000} s: is it online? (the credentials live on it only)`,
        );
      return answer;
    } finally {
      clearTimeout(timer);
      this.pending.delete(requestId);
    }
  }
}
