import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { PROXY_NODES_BUCKET } from '#auth';
import { PROXY_STREAMS_SUBJECT, type DrainStreams, type TargetStreamsRequest } from '#contracts';
import { proxyNodeSyncTimes } from '#messaging';

export interface FrontStreamsOptions {
  /** A proxy node that synced within this long is a front to wait for. */
  liveWithinMs: number;
  /** How long the answers of every front are waited for. */
  maxWaitMs: number;
  /** The fronts are looked up again after this long (a drain asks every 50 ms). */
  nodesCacheMs: number;
  bucket?: string;
}

/**
 * How many requests every front still has in flight to a target: the sum of each proxy-sync's answer on
 * `proxy.streams`. Unknown (null) unless every live front answered: a front that cannot say might still
 * be sending requests there.
 */
export class FrontStreams {
  private kv?: KV;
  private nodes: { at: number; live: Set<string> } | null = null;

  constructor(
    private readonly connection: NatsConnection,
    private readonly options: FrontStreamsOptions,
  ) {}

  async inFlight(target: TargetStreamsRequest): Promise<DrainStreams> {
    const live = await this.liveFronts().catch(() => null);
    if (live === null) return { streams: null, fronts: 0, reason: 'the proxy nodes cannot be read' };
    if (live.size === 0) return { streams: null, fronts: 0, reason: 'no front synced lately' };
    const answers = new Map<string, number>();
    const replies = await this.connection.requestMany(PROXY_STREAMS_SUBJECT, JSON.stringify(target), {
      strategy: 'count',
      maxMessages: live.size,
      maxWait: this.options.maxWaitMs,
    });
    try {
      for await (const reply of replies) {
        const answer = reply.json<{ node?: unknown; streams?: unknown }>();
        if (
          typeof answer.node === 'string' &&
          Number.isInteger(answer.streams) &&
          (answer.streams as number) >= 0
        )
          answers.set(answer.node, answer.streams as number);
      }
    } catch {
      // No responder at all, or the wait ran out: the fronts that did not answer are named below.
    }
    const silent = [...live].filter((node) => !answers.has(node));
    if (silent.length > 0) {
      return { streams: null, fronts: live.size, reason: `no answer from ${silent.join(', ')}` };
    }
    const streams = [...live].reduce((sum, node) => sum + answers.get(node)!, 0);
    return { streams, fronts: live.size, reason: null };
  }

  private async liveFronts(): Promise<Set<string>> {
    const now = Date.now();
    if (this.nodes && now - this.nodes.at < this.options.nodesCacheMs) return this.nodes.live;
    this.kv ??= await new Kvm(this.connection).open(this.options.bucket ?? PROXY_NODES_BUCKET);
    const times = await proxyNodeSyncTimes(this.kv);
    const live = new Set(
      [...times].filter(([, at]) => now - at <= this.options.liveWithinMs).map(([node]) => node),
    );
    this.nodes = { at: now, live };
    return live;
  }
}
