import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { agentSubjects } from '#contracts';
import type { Logger } from '#platform';

/**
 * What a service sends an agent, into the AGENTS stream on `agents.<id>.in.<topic>`: the agent reads it
 * through its own durable consumer, so an agent that is offline gets it when it comes back. Message ids
 * make a repeated send (a retried handler, another replica) store one message.
 */
export class AgentInbox {
  private readonly js: JetStreamClient;

  constructor(
    connection: NatsConnection,
    private readonly logger: Logger,
  ) {
    this.js = jetstream(connection);
  }

  /** Whether the stream stored it; a failure is logged (the sender's own loop sends again). */
  async send(agentId: string, topic: string, body: unknown, msgID: string): Promise<boolean> {
    try {
      await this.js.publish(agentSubjects.inbound(agentId, topic), JSON.stringify(body), {
        msgID,
        timeout: 5_000,
      });
      return true;
    } catch (error) {
      this.logger.warn('could not send to the agent', { agentId, topic, error });
      return false;
    }
  }
}
