import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { agentSubjects, DEPLOYMENT_TOPICS } from '#contracts';
import type { Logger } from '#platform';

/**
 * Pokes to an agent about its deployments, into the AGENTS stream (`agents.<id>.in.deployments.*`): an
 * agent that is offline finds them when it is back. They carry ids and states only; the agent asks for
 * the details over its own request subjects. Message ids make a repeated poke store one message.
 */
export class DeploymentAgentChannel {
  private readonly js: JetStreamClient;

  constructor(
    connection: NatsConnection,
    private readonly logger: Logger,
  ) {
    this.js = jetstream(connection);
  }

  private async publish(agentId: string, topic: string, body: unknown, msgID: string): Promise<boolean> {
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

  /** A deployment waits for the agent to claim it; `window` tells repeated pokes apart. */
  assigned(agentId: string, deploymentId: string, appName: string, window: number): Promise<boolean> {
    return this.publish(
      agentId,
      DEPLOYMENT_TOPICS.assigned,
      { deploymentId, appName },
      `dep-assigned:${deploymentId}:${window}`,
    );
  }

  /** Something the agent must act on changed: a cancel, the front's verification. */
  changed(
    agentId: string,
    change: {
      deploymentId: string;
      status: string;
      cancelRequested: boolean;
      verification: 'pending' | 'passed' | 'failed' | null;
    },
    sequence: number,
  ): Promise<boolean> {
    return this.publish(
      agentId,
      DEPLOYMENT_TOPICS.changed,
      change,
      `dep-changed:${change.deploymentId}:${sequence}`,
    );
  }
}
