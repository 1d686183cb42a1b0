import type { NatsConnection } from '@nats-io/transport-node';
import { DEPLOYMENT_TOPICS } from '#contracts';
import { AgentInbox } from '#messaging';
import type { Logger } from '#platform';

/**
 * Pokes to an agent about its deployments (`agents.<id>.in.deployments.*`): ids and states only; the
 * agent asks for the details over its own request subjects.
 */
export class DeploymentAgentChannel {
  private readonly inbox: AgentInbox;

  constructor(connection: NatsConnection, logger: Logger) {
    this.inbox = new AgentInbox(connection, logger);
  }

  /** A deployment waits for the agent to claim it; `window` tells repeated pokes apart. */
  assigned(agentId: string, deploymentId: string, appName: string, window: number): Promise<boolean> {
    return this.inbox.send(
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
    return this.inbox.send(
      agentId,
      DEPLOYMENT_TOPICS.changed,
      change,
      `dep-changed:${change.deploymentId}:${sequence}`,
    );
  }
}
