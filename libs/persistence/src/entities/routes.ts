import { Column, Entity, PrimaryColumn } from 'typeorm';
import {
  routeAcrossNodes,
  type AppliedOnNode,
  type RouteKind,
  type RouteStatus,
  type RouteView,
} from '#contracts';
import { bigintAsNumber } from './foundation.js';

/** Projection `routes`: one row per route ever requested (removed ones stay, with their status). */
@Entity({ name: 'routes' })
export class RouteRecord {
  @PrimaryColumn({ name: 'route_id', type: 'text' })
  routeId!: string;

  @Column({ name: 'agent_id', type: 'text' })
  agentId!: string;

  @Column({ type: 'text' })
  kind!: RouteKind;

  @Column({ type: 'text' })
  hostname!: string;

  @Column({ name: 'target_host', type: 'text' })
  targetHost!: string;

  @Column({ name: 'target_port', type: 'integer' })
  targetPort!: number;

  @Column({ type: 'jsonb' })
  options!: { tlsToTarget: boolean };

  /** Definition events so far: requested = 1, each update + 1. */
  @Column({ type: 'integer' })
  revision!: number;

  @Column({ type: 'text' })
  status!: RouteStatus;

  @Column({ name: 'status_reason', type: 'text', nullable: true })
  statusReason!: string | null;

  /** Per proxy node: the newest revision it applied, its configuration version, propagation time. */
  @Column({ type: 'jsonb' })
  applied!: Record<string, AppliedOnNode>;

  @Column({ name: 'propagation_ms', type: 'integer', nullable: true })
  propagationMs!: number | null;

  @Column({ name: 'config_version', type: 'bigint', nullable: true, transformer: bigintAsNumber })
  configVersion!: number | null;

  @Column({ name: 'requested_at', type: 'timestamptz' })
  requestedAt!: Date;

  @Column({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;

  @Column({ name: 'removed_at', type: 'timestamptz', nullable: true })
  removedAt!: Date | null;
}

/** Projection `hostnames`: who holds each claimed host name now. */
@Entity({ name: 'hostnames' })
export class HostnameRecord {
  @PrimaryColumn({ type: 'text' })
  hostname!: string;

  @Column({ name: 'route_id', type: 'text' })
  routeId!: string;

  @Column({ name: 'agent_id', type: 'text' })
  agentId!: string;

  @Column({ name: 'claimed_at', type: 'timestamptz' })
  claimedAt!: Date;
}

/** The columns of `routes` in the order `routeViewOfRow` reads them (for raw queries). */
export const ROUTE_COLUMNS =
  'route_id, agent_id, kind, hostname, target_host, target_port, options, revision, status, status_reason, ' +
  'applied, propagation_ms, config_version, requested_at, updated_at, removed_at';

/** The live routes' columns and every proxy node's status (an InitPlan: read once per statement). */
export const LIVE_ROUTE_COLUMNS = `${ROUTE_COLUMNS}, (SELECT coalesce(jsonb_object_agg(node, status), '{}'::jsonb) FROM public.proxy_nodes) AS proxy_nodes`;

/** A `routes` row as the pg driver returns it (timestamps as Date, bigint as string). */
export interface RouteRowData {
  route_id: string;
  agent_id: string;
  kind: RouteKind;
  hostname: string;
  target_host: string;
  target_port: number;
  options: { tlsToTarget?: boolean };
  revision: number;
  status: RouteStatus;
  status_reason: string | null;
  applied: Record<string, AppliedOnNode> | null;
  propagation_ms: number | null;
  config_version: string | number | null;
  requested_at: Date | string;
  updated_at: Date | string;
  removed_at: Date | string | null;
  /** With LIVE_ROUTE_COLUMNS: node → status of every proxy node. */
  proxy_nodes?: Record<string, string>;
}

const iso = (value: Date | string) => new Date(value).toISOString();

/** A `routes` row as the API and agents see it. */
export function routeViewOfRow(row: RouteRowData): RouteView {
  const applied = row.applied ?? {};
  const across = routeAcrossNodes(
    { status: row.status, revision: row.revision, applied },
    row.proxy_nodes ?? {},
  );
  return {
    routeId: row.route_id,
    agentId: row.agent_id,
    kind: row.kind,
    hostname: row.hostname,
    target: { host: row.target_host, port: row.target_port },
    options: { tlsToTarget: row.options?.tlsToTarget ?? false },
    revision: row.revision,
    status: across.status,
    statusReason: row.status_reason,
    applied,
    propagationMs: row.propagation_ms,
    configVersion: row.config_version === null ? null : Number(row.config_version),
    requestedAt: iso(row.requested_at),
    updatedAt: iso(row.updated_at),
    removedAt: row.removed_at === null ? null : iso(row.removed_at),
    nodes: across.nodes,
  };
}
