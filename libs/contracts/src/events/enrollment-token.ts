import { z } from 'zod';
import { defineEvent } from '../registry.js';
import { dnsLabel, ipAddress, isoTimestamp, label } from '../fields.js';

/** SHA-256 of an enrollment token, lower-case hex: the token itself is never stored. */
export const tokenHash = z.string().regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 hash in lower-case hex');

/** Addresses an admin approved for an enrollment: canonical IP literals, a few at most. */
export const approvedAddresses = z
  .array(ipAddress)
  .min(1, 'must name at least one address')
  .max(8, 'must name at most 8 addresses');

/** An admin made a one-time enrollment token. The aggregate id is the token's hash. */
export const EnrollmentTokenIssued = defineEvent({
  type: 'EnrollmentTokenIssued',
  aggregate: 'enrollment-token',
  version: 1,
  schema: z.strictObject({
    tokenHash,
    expiresAt: isoTimestamp,
    note: label(200).optional(),
    /**
     * The admin's approval, given with the token, for the agent to enroll with one of these addresses
     * although it connects from another (behind NAT, through a proxy), or although another agent has it.
     */
    approvedAddresses: approvedAddresses.optional(),
  }),
});

/** The token let one agent in; it can never be used again (unless released below). */
export const EnrollmentTokenUsed = defineEvent({
  type: 'EnrollmentTokenUsed',
  aggregate: 'enrollment-token',
  version: 1,
  schema: z.strictObject({ agentId: dnsLabel }),
});

/**
 * The use above did not lead to an enrolled agent (another enrollment took the agent id between the
 * check and the append), so the token is usable again.
 */
export const EnrollmentTokenReleased = defineEvent({
  type: 'EnrollmentTokenReleased',
  aggregate: 'enrollment-token',
  version: 1,
  schema: z.strictObject({ agentId: dnsLabel, reason: label(200) }),
});

export const enrollmentTokenEvents = [
  EnrollmentTokenIssued,
  EnrollmentTokenUsed,
  EnrollmentTokenReleased,
] as const;
