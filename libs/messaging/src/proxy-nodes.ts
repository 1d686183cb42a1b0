import type { KV } from '@nats-io/kv';

/**
 * Each proxy node's last reconcile attempt (`lastSyncAt`, epoch ms) from the bucket every proxy-sync
 * writes its liveness record to. A record that cannot be read is left out. Throws what the bucket throws
 * (`StreamNotFoundError` before any proxy-sync created it).
 */
export async function proxyNodeSyncTimes(kv: KV): Promise<Map<string, number>> {
  const keys: string[] = [];
  for await (const key of await kv.keys()) keys.push(key);
  const times = new Map<string, number>();
  for (const node of keys) {
    const entry = await kv.get(node);
    if (!entry || entry.operation !== 'PUT') continue;
    let lastSyncAt: unknown;
    try {
      lastSyncAt = (entry.json() as { lastSyncAt?: unknown }).lastSyncAt;
    } catch {
      continue;
    }
    const at = typeof lastSyncAt === 'string' ? Date.parse(lastSyncAt) : NaN;
    if (!Number.isNaN(at)) times.set(node, at);
  }
  return times;
}
