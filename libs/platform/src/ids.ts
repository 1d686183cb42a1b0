import { createHash } from 'node:crypto';

/** RFC 4122 version 5 (SHA-1, name-based) UUID. Deterministic: the same name gives the same id. */
export function uuidV5(name: string, namespace: string): string {
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
 * A short, requester-scoped key of a command, for message ids: two requesters using the same
 * Idempotency-Key must not be taken for retries of each other by the log's deduplication.
 */
export function commandKey(actor: { kind: string; id: string }, commandId: string): string {
  return createHash('sha256')
    .update(JSON.stringify([actor.kind, actor.id, commandId]))
    .digest('base64url')
    .slice(0, 22);
}
