import { randomBytes, randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  agentDeploymentSubject,
  DomainError,
  EVENTS_STREAM,
  type AgentDeploymentCommand,
  type CommandReply,
} from '#contracts';
import { AgentsStack, type StackOptions } from '../harness/stack.js';

export const DOMAIN = 'deploy.test';
export const REPOS = '/srv/cloudlunacy-test-repos';

/** Registration, projector, deployments and API on a private NATS and database, with short leases. */
export function startDeploymentsStack(options: StackOptions = {}): Promise<AgentsStack> {
  return AgentsStack.start({
    deployments: true,
    ...options,
    env: {
      CL_DOMAIN: DOMAIN,
      CL_DEPLOY_FILE_ROOTS: REPOS,
      CL_DEPLOY_LEASE_TTL_MS: '2000',
      CL_DEPLOY_LEASE_RENEW_MS: '500',
      CL_DEPLOY_SUPERVISE_MS: '200',
      CL_DEPLOY_DEADLINE_SLACK_S: '0',
      CL_DEPLOY_VERIFY_URLS: '',
      CL_DEPLOY_SECRET_GC_MS: '300',
      ...options.env,
    },
  });
}

/**
 * The agent's side of the deployment protocol, spoken over a real agent's broker connection and
 * credentials: what the agent process does, step by step, so the service can be driven phase by phase.
 */
export class AgentProtocol {
  constructor(
    readonly agentId: string,
    private readonly connection: NatsConnection,
  ) {}

  async ask<R = Record<string, unknown>>(command: AgentDeploymentCommand, body: unknown): Promise<R> {
    const reply = await this.connection.request(
      agentDeploymentSubject(this.agentId, command),
      JSON.stringify(body),
      { timeout: 10_000 },
    );
    const answer = reply.json<CommandReply<R>>();
    if (answer.ok) return answer.result;
    throw DomainError.fromBody(answer.error);
  }

  /** The refusal of a request, or a failure when it was answered. */
  async refusal(command: AgentDeploymentCommand, body: unknown): Promise<DomainError> {
    try {
      await this.ask(command, body);
    } catch (error) {
      if (error instanceof DomainError) return error;
      throw error;
    }
    throw new Error(`expected ${command} to be refused`);
  }

  claim(deploymentId: string, leaseId = randomUUID()) {
    return this.ask<{ number: number; config: Record<string, unknown>; lease: { ttlMs: number } }>('claim', {
      deploymentId,
      leaseId,
      agentVersion: 'test-agent/1',
    }).then((answer) => ({ ...answer, leaseId }));
  }

  report(deploymentId: string, leaseId: string, report: Record<string, unknown>) {
    return this.ask<{ status: string; verification: string | null }>('report', {
      deploymentId,
      leaseId,
      report,
    });
  }

  renew(deploymentId: string, leaseId: string) {
    return this.ask<{ status: string; verification: string | null; cancelRequested: boolean }>('renew', {
      deploymentId,
      leaseId,
    });
  }
}

export const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/** Every message of the event log, raw: for proving a value never entered it. */
export async function rawEventLog(stack: AgentsStack): Promise<string> {
  const jsm = await jetstreamManager(stack.service);
  const last = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
  const parts: string[] = [];
  for (let seq = 1; seq <= last; seq++) {
    const message = await jsm.streams.getMessage(EVENTS_STREAM, { seq }).catch(() => null);
    if (message) parts.push(new TextDecoder().decode(message.data));
  }
  return parts.join('\n');
}
