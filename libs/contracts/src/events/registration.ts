import { z } from 'zod';
import { commandSubject } from '../commands.js';
import { dnsLabel, ipAddress, isoTimestamp, label } from '../fields.js';
import { AGENTS_STREAM, agentSubjects } from '../subjects.js';
import { agentLabels, natsUserPublicKey } from './agent.js';
import { approvedAddresses, tokenHash } from './enrollment-token.js';

/**
 * The registration service's commands (NATS request/reply from the API) and the messages agents send it.
 * Payloads are validated by the service again: the API is not trusted to have done it.
 */
export const REGISTRATION_SERVICE = 'registration';
export const registrationCommands = {
  issueEnrollmentToken: commandSubject(REGISTRATION_SERVICE, 'issue-enrollment-token'),
  enroll: commandSubject(REGISTRATION_SERVICE, 'enroll'),
  deregister: commandSubject(REGISTRATION_SERVICE, 'deregister'),
  /** A fresh NATS user JWT for an enrolled agent (token refresh). */
  agentCredentials: commandSubject(REGISTRATION_SERVICE, 'agent-credentials'),
} as const;

export const issueEnrollmentTokenPayload = z.strictObject({
  tokenHash,
  expiresAt: isoTimestamp,
  note: label(200).optional(),
  approvedAddresses: approvedAddresses.optional(),
});
export type IssueEnrollmentTokenPayload = z.output<typeof issueEnrollmentTokenPayload>;

export const enrollPayload = z.strictObject({
  tokenHash,
  agentId: dnsLabel.optional(),
  /** The address the agent will be reached at; the one it enrolled from unless an admin approved another. */
  publicAddress: ipAddress,
  /** The address the enrollment request came from, as the API saw it (trusted proxies resolved). */
  sourceAddress: ipAddress,
  natsPublicKey: natsUserPublicKey,
  labels: agentLabels.default({}),
});
export type EnrollPayload = z.input<typeof enrollPayload>;

export const deregisterPayload = z.strictObject({ agentId: dnsLabel, reason: label(200) });
export type DeregisterPayload = z.output<typeof deregisterPayload>;

export const agentCredentialsPayload = z.strictObject({ agentId: dnsLabel });

/** Where an agent listens and publishes; told to it at enrollment. */
export interface AgentSubjectSet {
  stream: string;
  consumer: string;
  inbound: string;
  outbound: string;
  heartbeat: string;
  inboxPrefix: string;
  /** The JetStream API prefix in the agent's own account (its consumer's info and pull subjects). */
  jsApiPrefix: string;
}

export function agentSubjectSet(agentId: string): AgentSubjectSet {
  return {
    stream: AGENTS_STREAM,
    consumer: agentSubjects.consumer(agentId),
    inbound: agentSubjects.inbound(agentId),
    outbound: agentSubjects.outbound(agentId),
    heartbeat: agentSubjects.outbound(agentId, 'heartbeat'),
    inboxPrefix: agentSubjects.inboxPrefix(agentId),
    jsApiPrefix: agentSubjects.jsApiPrefix,
  };
}

export interface EnrollResult {
  agentId: string;
  enrolledAt: string;
  natsJwt: string;
  subjects: AgentSubjectSet;
}

export interface DeregisterResult {
  agentId: string;
  deregisteredAt: string;
  /** False when the agent was already deregistered: only the broker revocation was checked again. */
  changed: boolean;
}

export interface IssueEnrollmentTokenResult {
  expiresAt: string;
}

export interface AgentCredentialsResult {
  natsJwt: string;
}

/** What an agent publishes on `agents.<id>.out.heartbeat`; not an event, only liveness. */
export const agentHeartbeat = z.strictObject({
  sentAt: isoTimestamp,
  version: label(64).optional(),
  uptimeSeconds: z.number().int().min(0).optional(),
  /** The runtimes its deployments can use now (an app's runtime must be one of them). */
  runtimes: z
    .array(z.enum(['process', 'container']))
    .max(2)
    .optional(),
});
export type AgentHeartbeat = z.output<typeof agentHeartbeat>;
