import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { PROXY_NODE_STATUSES } from '#contracts';
import { bigintAsNumber } from './foundation.js';

/** Projection `proxy_nodes`: each proxy node's status as of its last ProxyNodeStatusChanged. */
@Entity({ name: 'proxy_nodes' })
export class ProxyNodeStatusRecord {
  @PrimaryColumn({ type: 'text' })
  node!: string;

  @Column({ type: 'text' })
  status!: (typeof PROXY_NODE_STATUSES)[number];

  /** The configuration version the node reported with the transition. */
  @Column({ name: 'config_version', type: 'bigint', nullable: true, transformer: bigintAsNumber })
  configVersion!: number | null;

  @Column({ type: 'text', nullable: true })
  detail!: string | null;

  @Column({ name: 'changed_at', type: 'timestamptz' })
  changedAt!: Date;
}
