import { createHash } from 'node:crypto';
import type { Actor } from '#contracts';

/** Namespace of route ids (a fixed random UUID): route ids are UUID v5 names inside it. */
export const ROUTE_ID_NAMESPACE = '6f1d3c2e-8a4b-4f7e-9c5d-2b1a0e9f8d7c';

/** RFC 4122 version 5 (SHA-1, name-based) UUID. Deterministic: the same name gives the same id. */
export function uuidV5(name: string, namespace = ROUTE_ID_NAMESPACE): string {
  const namespaceBytes = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  if (namespaceBytes.length !== 16) throw new Error('namespace must be a UUID');
  const hash = createHash('sha1').update(namespaceBytes).update(name, 'utf8').digest();
  const bytes = hash.subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The route a request creates: derived from who asks, for which agent, under which command id. A request
 * retried with the same Idempotency-Key names the same route (and completes it if the first attempt
 * stopped half-way); the same key from another requester or for another agent names another route.
 */
export function routeIdFor(actor: Actor, agentId: string, commandId: string): string {
  return uuidV5(JSON.stringify([actor.kind, actor.id, agentId, commandId]));
}

/**
 * A short, requester-scoped key of a command, for message ids: two requesters using the same
 * Idempotency-Key must not be taken for retries of each other by the log's deduplication.
 */
export function commandKey(actor: Actor, commandId: string): string {
  return createHash('sha256')
    .update(JSON.stringify([actor.kind, actor.id, commandId]))
    .digest('base64url')
    .slice(0, 22);
}
