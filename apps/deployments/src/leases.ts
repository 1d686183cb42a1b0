import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { LeaseRecord } from './domain/deadlines.js';

/**
 * Leases of claimed deployments, one KV record per deployment. A renewal is a write here, not an event:
 * liveness is not history. The decision to abandon is taken on the log (with optimistic concurrency), so
 * replicas never both append it; this store only says until when a lease runs.
 */
export class Leases {
  private kv?: Promise<KV>;

  constructor(
    private readonly connection: NatsConnection,
    private readonly bucket: string,
    /** How long a record outlives its lease, so a late reader still sees why it ended. */
    private readonly maxAgeMs = 86_400_000,
  ) {}

  private open(): Promise<KV> {
    this.kv ??= new Kvm(this.connection)
      .create(this.bucket, { history: 1, ttl: this.maxAgeMs })
      .catch((error: unknown) => {
        this.kv = undefined;
        throw error;
      });
    return this.kv;
  }

  async write(deploymentId: string, record: LeaseRecord & { agentId: string }): Promise<void> {
    const kv = await this.open();
    await kv.put(deploymentId, JSON.stringify(record));
  }

  /** The lease's record, or null when there is none. Throws when the bucket cannot be read: no evidence. */
  async read(deploymentId: string): Promise<LeaseRecord | null> {
    const kv = await this.open();
    const entry = await kv.get(deploymentId);
    if (!entry || entry.operation !== 'PUT') return null;
    try {
      const value = entry.json() as Partial<LeaseRecord>;
      if (typeof value.leaseId !== 'string' || typeof value.expiresAt !== 'string') return null;
      return { leaseId: value.leaseId, expiresAt: value.expiresAt };
    } catch {
      return null;
    }
  }
}
