import { Controller, Get, Inject } from '@nestjs/common';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { DataSource } from 'typeorm';
import { z } from 'zod';
import { PROXY_NODE_STATUSES, type ProxyNodeView } from '#contracts';
import { queryProxyNodes } from '#persistence';
import { Auth } from './auth.js';
import { API_NATS } from './event-log.js';

/** The KV bucket proxy-sync writes each node's liveness record to (proxy-sync's CL_PROXY_KV_BUCKET). */
export const PROXY_NODES_BUCKET = process.env.CL_PROXY_KV_BUCKET ?? 'proxy-nodes';

/** A node's liveness record as proxy-sync writes it after every pass; read defensively. */
const livenessRecord = z.object({
  status: z.enum(PROXY_NODE_STATUSES),
  lastSyncAt: z.string(),
  lastSuccessAt: z.string().nullable(),
  configVersion: z.number().nullable(),
  haproxyPid: z.number().nullable(),
  routes: z.number(),
  failedRoutes: z.number(),
  detail: z.string().nullable(),
});

/**
 * Proxy nodes for the dashboard: each node's status transitions (projection `proxy_nodes`) joined with
 * its liveness record in the KV bucket (last sync, applied configuration version, worker pid).
 */
@Controller('proxy-nodes')
export class ProxyNodesController {
  constructor(
    @Inject(DataSource) private readonly dataSource: DataSource,
    @Inject(API_NATS) private readonly connection: NatsConnection,
  ) {}

  @Get()
  @Auth('admin')
  async list(): Promise<{ nodes: ProxyNodeView[] }> {
    const [projected, live] = await Promise.all([queryProxyNodes(this.dataSource), this.liveRecords()]);
    const nodes = new Map<string, ProxyNodeView>(projected.map((view) => [view.node, view]));
    for (const [node, record] of live) {
      const view = nodes.get(node) ?? {
        node,
        status: null,
        configVersion: null,
        detail: null,
        changedAt: null,
        live: null,
      };
      view.live = {
        status: record.status,
        lastSyncAt: record.lastSyncAt,
        lastSuccessAt: record.lastSuccessAt,
        appliedVersion: record.configVersion,
        workerPid: record.haproxyPid,
        routes: record.routes,
        failedRoutes: record.failedRoutes,
        detail: record.detail,
      };
      nodes.set(node, view);
    }
    return { nodes: [...nodes.values()].sort((a, b) => a.node.localeCompare(b.node)) };
  }

  /** Every node's record in the bucket; none when the bucket does not exist (no proxy-sync ran yet). */
  private async liveRecords(): Promise<Map<string, z.output<typeof livenessRecord>>> {
    const records = new Map<string, z.output<typeof livenessRecord>>();
    let keys: string[];
    const kv = await new Kvm(this.connection).open(PROXY_NODES_BUCKET);
    try {
      keys = [];
      for await (const key of await kv.keys()) keys.push(key);
    } catch {
      return records;
    }
    await Promise.all(
      keys.map(async (key) => {
        const entry = await kv.get(key).catch(() => null);
        if (!entry || entry.length === 0) return;
        try {
          const parsed = livenessRecord.safeParse(entry.json());
          if (parsed.success) records.set(key, parsed.data);
        } catch {
          // Not JSON: not a record of proxy-sync's.
        }
      }),
    );
    return records;
  }
}
