import type { NatsConnection } from '@nats-io/transport-node';
import {
  CERTIFICATE_TOPICS,
  type DeliveryMessage,
  type IssuedCertificateView,
  type RenewalRequestMessage,
  type RevokedNoticeMessage,
} from '#contracts';
import { AgentInbox } from '#messaging';
import type { Logger } from '#platform';

/** The certificates service's notices to agents (renew, delivered, revoked) through their inbox. */
export class AgentChannel {
  private readonly inbox: AgentInbox;

  constructor(connection: NatsConnection, logger: Logger) {
    this.inbox = new AgentInbox(connection, logger);
  }

  /** A certificate for the agent (it also had it in its reply, unless the reply was lost). */
  deliver(agentId: string, certificate: IssuedCertificateView): Promise<boolean> {
    const body: DeliveryMessage = { certificate };
    return this.inbox.send(
      agentId,
      CERTIFICATE_TOPICS.delivered,
      body,
      `cert-delivered:${certificate.serial}`,
    );
  }

  /** Asks for a CSR for a new key to replace `request.serial`. `attempt` tells repeated asks apart. */
  askRenewal(agentId: string, request: RenewalRequestMessage, attempt: string): Promise<boolean> {
    return this.inbox.send(
      agentId,
      CERTIFICATE_TOPICS.renew,
      request,
      `cert-renew:${request.serial}:${attempt}`,
    );
  }

  revoked(agentId: string, notice: RevokedNoticeMessage): Promise<boolean> {
    return this.inbox.send(agentId, CERTIFICATE_TOPICS.revoked, notice, `cert-revoked:${notice.serial}`);
  }
}
