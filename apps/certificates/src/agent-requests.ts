import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  allAgentCertificateRequests,
  confirmCertificateBody,
  parseOrThrow,
  requestCertificateBody,
} from '#contracts';
import { AgentRequestServer } from '#messaging';
import type { Logger } from '#platform';
import type { CertificateCommands } from './certificates.commands.js';

/**
 * Certificate requests agents publish on their own prefix, `agents.<id>.out.req.certificates.<command>`:
 * `request` (`{ csr, replaces? }`), `confirm` (`{ serial, hook }`), `names` (`{}`). Signing costs CPU, so
 * each agent gets only a few requests at once.
 */
export function agentCertificateRequests(
  connection: NatsConnection,
  commands: CertificateCommands,
  logger: Logger,
): AgentRequestServer {
  return new AgentRequestServer(
    connection,
    {
      subject: allAgentCertificateRequests,
      queue: 'certificates',
      topic: 'certificate',
      // A CSR is at most 16 KiB.
      maxBodyBytes: 32 * 1024,
      maxInFlightPerAgent: 4,
      commands: {
        request: async ({ agentId, actor, body, correlationId }) =>
          commands.issue({
            commandId: randomUUID(),
            actor,
            correlationId,
            payload: { agentId, ...parseOrThrow(requestCertificateBody, body) },
          }),
        confirm: async ({ agentId, actor, body, correlationId }) => {
          const confirmation = parseOrThrow(confirmCertificateBody, body);
          // The cause is the agent's confirmation of that certificate (there is no command id to name).
          return commands.confirm(agentId, confirmation, {
            actor,
            correlationId,
            causationId: `confirm-${confirmation.serial}`,
          });
        },
        names: async ({ agentId }) => commands.names(agentId),
      },
    },
    logger,
  );
}
