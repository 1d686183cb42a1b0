import { z } from 'zod';
import { defineEvent } from '../registry.js';
import { dnsLabel, ipAddress } from '../fields.js';

/**
 * An agent enrolled with this address (aggregate `address`, id = the canonical address). Appended with
 * the address's last sequence before the agent's own enrollment, so two agents racing for one address are
 * decided one after the other. A binding counts only while its agent is enrolled and not deregistered.
 */
export const AddressBound = defineEvent({
  type: 'AddressBound',
  aggregate: 'address',
  version: 1,
  schema: z.strictObject({
    address: ipAddress,
    agentId: dnsLabel,
    /** true when an admin approved sharing it (the enrollment token named it). */
    shared: z.boolean(),
  }),
});

export const addressEvents = [AddressBound] as const;
