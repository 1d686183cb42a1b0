import type { z } from 'zod';
import { EventRegistry } from '../registry.js';
import type { StoredEvent } from '../envelope.js';
import { agentEvents } from './agent.js';
import { hostnameEvents } from './hostname.js';
import { proxyNodeEvents } from './proxy-node.js';
import { routeEvents } from './route.js';
import { adminEvents } from './admin.js';
import { enrollmentTokenEvents } from './enrollment-token.js';
import { certificateEvents } from './certificate.js';
import { quarantineEvents } from './quarantine.js';
import { addressEvents } from './address.js';
import { appEvents } from './app.js';
import { deploymentEvents } from './deployment.js';

export * from './agent.js';
export * from './hostname.js';
export * from './proxy-node.js';
export * from './route.js';
export * from './admin.js';
export * from './enrollment-token.js';
export * from './registration.js';
export * from './certificate.js';
export * from './quarantine.js';
export * from './address.js';
export * from './app.js';
export * from './deployment.js';

/** Every event type of the product. Add a domain's definitions here when it gains events. */
export const eventDefinitions = [
  ...agentEvents,
  ...routeEvents,
  ...hostnameEvents,
  ...proxyNodeEvents,
  ...enrollmentTokenEvents,
  ...adminEvents,
  ...certificateEvents,
  ...quarantineEvents,
  ...addressEvents,
  ...appEvents,
  ...deploymentEvents,
] as const;

type Definition = (typeof eventDefinitions)[number];
export type EventType = Definition['type'];

export type EventData<T extends EventType> = z.output<Extract<Definition, { type: T }>['schema']>;

/** A decoded event of the product, discriminated by `type`. */
export type DomainEvent = {
  [D in Definition as D['type']]: StoredEvent<D['type'], z.output<D['schema']>>;
}[EventType];

/** What a decider returns: the event type and its data; the service adds the envelope. */
export type NewEvent = {
  [D in Definition as D['type']]: { type: D['type']; data: z.input<D['schema']> };
}[EventType];

export function createDomainRegistry(): EventRegistry {
  return new EventRegistry(eventDefinitions);
}
