import type { Actor } from '#contracts';
import { uuidV5 } from '#platform';

export { commandKey } from '#platform';

/** Namespace of route ids (a fixed random UUID): route ids are UUID v5 names inside it. */
export const ROUTE_ID_NAMESPACE = '6f1d3c2e-8a4b-4f7e-9c5d-2b1a0e9f8d7c';

/**
 * The route a request creates: derived from who asks, for which agent, under which command id. A request
 * retried with the same Idempotency-Key names the same route (and completes it if the first attempt
 * stopped half-way); the same key from another requester or for another agent names another route.
 */
export function routeIdFor(actor: Actor, agentId: string, commandId: string): string {
  return uuidV5(JSON.stringify([actor.kind, actor.id, agentId, commandId]), ROUTE_ID_NAMESPACE);
}
