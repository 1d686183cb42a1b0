import {
  AGENT_DEPLOYMENT_REQUEST_MAX_BYTES,
  allAgentDeploymentRequests,
  assignedRequest,
  claimRequest,
  parseOrThrow,
  renewRequest,
  reportRequest,
  secretsRequest,
  streamsRequest,
  type DrainStreams,
} from '#contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { AgentRequestServer } from '#messaging';
import type { Logger } from '#platform';
import type { DeploymentDecisions } from './decisions.js';
import { checkLeaseHolder, drainTarget } from './domain/deployment.js';
import type { FrontStreams } from './front-streams.js';
import type { DeploymentsReads } from './reads.js';
import type { SecretDelivery } from './secret-delivery.js';

/** Requests of one agent handled at once; more are refused (`unavailable`) instead of queued. */
export const MAX_IN_FLIGHT_PER_AGENT = 16;

/**
 * What an agent asks about its deployments on its own prefix, `agents.<id>.out.req.deployments.<command>`.
 * The subject names the sender (the broker enforces it); every answer is built for the sender only.
 */
export function agentDeploymentRequests(
  connection: NatsConnection,
  commands: DeploymentDecisions,
  reads: DeploymentsReads,
  secrets: SecretDelivery,
  fronts: FrontStreams,
  logger: Logger,
  onChange: (deploymentId: string) => void,
): AgentRequestServer {
  return new AgentRequestServer(
    connection,
    {
      subject: allAgentDeploymentRequests,
      queue: 'deployments',
      topic: 'deployment',
      maxBodyBytes: AGENT_DEPLOYMENT_REQUEST_MAX_BYTES,
      maxInFlightPerAgent: MAX_IN_FLIGHT_PER_AGENT,
      commands: {
        assigned: async (request) => {
          parseOrThrow(assignedRequest, request.body);
          return reads.assignedTo(request.agentId);
        },
        claim: async (request) => {
          const body = parseOrThrow(claimRequest, request.body);
          const claimed = await commands.claim(request.agentId, body, request.correlationId);
          onChange(body.deploymentId);
          return reads.claimAnswer(claimed);
        },
        renew: async (request) => commands.renew(request.agentId, parseOrThrow(renewRequest, request.body)),
        report: async (request) => {
          const body = parseOrThrow(reportRequest, request.body);
          const progress = await commands.report(request.agentId, body, request.correlationId);
          onChange(body.deploymentId);
          return progress;
        },
        secrets: async (request) =>
          secrets.deliver(request.agentId, parseOrThrow(secretsRequest, request.body)),
        // The agent names only its deployment: the target asked about is the one it is replacing, so an
        // agent learns nothing of other agents' traffic.
        streams: async (request): Promise<DrainStreams> => {
          const body = parseOrThrow(streamsRequest, request.body);
          const state = await commands.deployment(body.deploymentId);
          checkLeaseHolder(state, request.agentId, body.deploymentId, body.leaseId);
          const target = drainTarget(state);
          if (!target) return { streams: null, fronts: 0, reason: 'nothing is being drained' };
          return fronts.inFlight(target);
        },
      },
    },
    logger,
  );
}
