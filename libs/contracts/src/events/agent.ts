import { z } from 'zod';
import { defineEvent } from '../registry.js';
import { dnsLabel, ipAddress, isoTimestamp, label } from '../fields.js';

export const agentLabels = z
  .record(dnsLabel, label(63))
  .refine((labels) => Object.keys(labels).length <= 32, { message: 'must have at most 32 labels' });

/** A NATS user public key (an nkey starting with U). */
export const natsUserPublicKey = z
  .string({ error: 'must be a string' })
  .regex(/^U[A-Z2-7]{55}$/, 'must be a NATS user public key (56 characters starting with U)');

export const AgentEnrolled = defineEvent({
  type: 'AgentEnrolled',
  aggregate: 'agent',
  version: 1,
  schema: z.strictObject({
    agentId: dnsLabel,
    publicAddress: ipAddress,
    labels: agentLabels,
    /** The agent's NATS user public key (an nkey starting with U); the private seed stays on the agent. */
    natsPublicKey: natsUserPublicKey,
    enrollmentTokenId: z.string().min(1).max(64),
  }),
});

export const AgentDeregistered = defineEvent({
  type: 'AgentDeregistered',
  aggregate: 'agent',
  version: 1,
  schema: z.strictObject({ agentId: dnsLabel, reason: label(200) }),
});

export const AgentWentOffline = defineEvent({
  type: 'AgentWentOffline',
  aggregate: 'agent',
  version: 1,
  schema: z.strictObject({ agentId: dnsLabel, lastSeenAt: isoTimestamp }),
});

export const AgentCameOnline = defineEvent({
  type: 'AgentCameOnline',
  aggregate: 'agent',
  version: 1,
  schema: z.strictObject({ agentId: dnsLabel, seenAt: isoTimestamp }),
});

export const agentEvents = [AgentEnrolled, AgentDeregistered, AgentWentOffline, AgentCameOnline] as const;
