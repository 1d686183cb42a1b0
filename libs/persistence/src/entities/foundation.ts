import { Column, Entity, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';

/** bigint columns come back from pg as strings; these fit in a JS number for any realistic log. */
export const bigintAsNumber = {
  to: (value: number) => value,
  from: (value: string | null) => (value === null ? null : Number(value)),
};

@Entity({ name: 'projection_checkpoints' })
export class ProjectionCheckpoint {
  @PrimaryColumn({ type: 'text' })
  projection!: string;

  @Column({ name: 'last_sequence', type: 'bigint', transformer: bigintAsNumber })
  lastSequence!: number;

  @Column({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}

@Entity({ name: 'dead_letters' })
export class DeadLetterRecord {
  /** bigserial; kept as text because pg returns bigint as a string. */
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column({ type: 'text' })
  consumer!: string;

  @Column({ type: 'text' })
  stream!: string;

  @Column({ type: 'bigint', transformer: bigintAsNumber })
  sequence!: number;

  @Column({ type: 'text' })
  subject!: string;

  @Column({ name: 'event_type', type: 'text', nullable: true })
  eventType!: string | null;

  @Column({ name: 'event_id', type: 'text', nullable: true })
  eventId!: string | null;

  @Column({ type: 'integer' })
  deliveries!: number;

  @Column({ type: 'text' })
  error!: string;

  @Column({ type: 'text' })
  payload!: string;

  @Column({ type: 'text' })
  status!: 'open' | 'retrying' | 'resolved' | 'dismissed';

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Column({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}

@Entity({ name: 'event_log' })
export class EventLogEntry {
  @PrimaryColumn({ type: 'bigint', transformer: bigintAsNumber })
  sequence!: number;

  @Column({ name: 'event_id', type: 'text' })
  eventId!: string;

  @Column({ type: 'text' })
  type!: string;

  @Column({ name: 'aggregate_type', type: 'text' })
  aggregateType!: string;

  @Column({ name: 'aggregate_id', type: 'text' })
  aggregateId!: string;

  @Column({ name: 'actor_kind', type: 'text' })
  actorKind!: string;

  @Column({ name: 'actor_id', type: 'text' })
  actorId!: string;

  @Column({ name: 'occurred_at', type: 'timestamptz' })
  occurredAt!: Date;

  @Column({ name: 'correlation_id', type: 'text' })
  correlationId!: string;

  @Column({ name: 'causation_id', type: 'text', nullable: true })
  causationId!: string | null;
}

@Entity({ name: 'event_stats' })
export class EventTypeStats {
  @PrimaryColumn({ type: 'text' })
  type!: string;

  @Column({ type: 'bigint', transformer: bigintAsNumber })
  count!: number;

  @Column({ name: 'last_sequence', type: 'bigint', transformer: bigintAsNumber })
  lastSequence!: number;

  @Column({ name: 'last_occurred_at', type: 'timestamptz' })
  lastOccurredAt!: Date;
}
