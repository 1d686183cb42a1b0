import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { PROXY_NODES_BUCKET } from '#auth';
import type { EventContext } from '#contracts';
import { ConcurrencyError, type EventStore } from '#eventstore';
import { proxyNodeSyncTimes } from '#messaging';
import type { Logger } from '#platform';
import { decideStale, foldProxyNode } from './domain/proxy-nodes.js';

const ROUTING_ACTOR = { kind: 'service', id: 'routing' } as const;

/**
 * Watches the proxy nodes' liveness records (the KV bucket every proxy-sync writes after its passes) and
 * records `stale` for a node that stopped writing: a stopped node cannot say so itself. Decided on the
 * node's aggregate with optimistic concurrency, so replicas of routing record it once.
 */
export class ProxyNodeWatch {
  private kv?: KV;

  constructor(
    private readonly connection: NatsConnection,
    private readonly store: EventStore,
    private readonly options: { staleAfterMs: number; bucket?: string },
    private readonly logger: Logger,
  ) {}

  /** One look at every node; returns the nodes it marked stale. */
  async sweep(now = new Date()): Promise<string[]> {
    const kv = await this.bucket();
    if (!kv) return [];
    const marked: string[] = [];
    let times: Map<string, number>;
    try {
      times = await proxyNodeSyncTimes(kv);
    } catch (error) {
      // No proxy-sync has created the bucket yet: nothing to watch (open it again next time).
      this.kv = undefined;
      if ((error as Error).name === 'StreamNotFoundError') return [];
      throw error;
    }
    for (const [node, at] of times) {
      if (await this.markIfStale(node, new Date(at).toISOString(), now)) marked.push(node);
    }
    return marked;
  }

  private async markIfStale(node: string, lastSyncAt: string, now: Date): Promise<boolean> {
    const history = await this.store.readAggregate('proxy-node', node);
    const events = decideStale(
      node,
      foldProxyNode(history.events),
      lastSyncAt,
      now,
      this.options.staleAfterMs,
    );
    if (events.length === 0) return false;
    const last = history.events[history.events.length - 1];
    // Caused by the silence after the node's last transition.
    const context: EventContext = {
      actor: ROUTING_ACTOR,
      correlationId: `proxy-node-${node}`,
      causationId: last?.id ?? `proxy-node-${node}`,
    };
    try {
      await this.store.append({ type: 'proxy-node', id: node }, events, {
        context,
        expectedSequence: history.lastSequence,
      });
    } catch (error) {
      if (error instanceof ConcurrencyError) return false; // the node reported, or another replica marked it
      throw error;
    }
    this.logger.warn('proxy node stale', { node, lastSyncAt });
    return true;
  }

  /** The bucket once a proxy-sync created it (none before: then there is no node to watch). */
  private async bucket(): Promise<KV | undefined> {
    if (this.kv) return this.kv;
    try {
      this.kv = await new Kvm(this.connection).open(this.options.bucket ?? PROXY_NODES_BUCKET);
      return this.kv;
    } catch {
      return undefined;
    }
  }
}
