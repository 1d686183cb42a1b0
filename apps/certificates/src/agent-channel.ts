import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  agentSubjects,
  CERTIFICATE_TOPICS,
  type DeliveryMessage,
  type IssuedCertificateView,
  type RenewalRequestMessage,
  type RevokedNoticeMessage,
} from '#contracts';
import type { Logger } from '#platform';

/**
 * What the service sends an agent, into the AGENTS stream on `agents.<id>.in.certificates.*`: the agent
 * reads it through its own durable consumer, so an agent that is offline gets it when it comes back.
 * Message ids make a repeated send (a retried handler, another replica) store one message.
 */
export class AgentChannel {
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

  /** A certificate for the agent (it also had it in its reply, unless the reply was lost). */
  deliver(agentId: string, certificate: IssuedCertificateView): Promise<boolean> {
    const body: DeliveryMessage = { certificate };
    return this.publish(agentId, CERTIFICATE_TOPICS.delivered, body, `cert-delivered:${certificate.serial}`);
  }

  /** Asks for a CSR for a new key to replace `request.serial`. `attempt` tells repeated asks apart. */
  askRenewal(agentId: string, request: RenewalRequestMessage, attempt: string): Promise<boolean> {
    return this.publish(
      agentId,
      CERTIFICATE_TOPICS.renew,
      request,
      `cert-renew:${request.serial}:${attempt}`,
    );
  }

  revoked(agentId: string, notice: RevokedNoticeMessage): Promise<boolean> {
    return this.publish(agentId, CERTIFICATE_TOPICS.revoked, notice, `cert-revoked:${notice.serial}`);
  }
}
