import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Checkpoints, dead letters and the event-log index: what every projection and consumer stands on. */
export class Foundation1764000000000 implements MigrationInterface {
  name = 'Foundation1764000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE projection_checkpoints (
        projection text PRIMARY KEY,
        last_sequence bigint NOT NULL CHECK (last_sequence >= 0),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(`
      CREATE TABLE dead_letters (
        id bigserial PRIMARY KEY,
        consumer text NOT NULL,
        stream text NOT NULL,
        sequence bigint NOT NULL,
        subject text NOT NULL,
        event_type text,
        event_id text,
        deliveries integer NOT NULL,
        error text NOT NULL,
        payload text NOT NULL,
        status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'retrying', 'resolved')),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (consumer, sequence)
      )`);
    await queryRunner.query(`
      CREATE TABLE event_log (
        sequence bigint PRIMARY KEY,
        event_id text NOT NULL,
        type text NOT NULL,
        aggregate_type text NOT NULL,
        aggregate_id text NOT NULL,
        actor_kind text NOT NULL,
        actor_id text NOT NULL,
        occurred_at timestamptz NOT NULL,
        correlation_id text NOT NULL,
        causation_id text
      )`);
    await queryRunner.query(`CREATE INDEX event_log_type ON event_log (type, sequence)`);
    await queryRunner.query(
      `CREATE INDEX event_log_aggregate ON event_log (aggregate_type, aggregate_id, sequence)`,
    );
    // Time only grows with the sequence, so a BRIN index serves time filters at almost no write cost;
    // filters by actor page backwards through the primary key. Every extra b-tree slows replays.
    await queryRunner.query(`CREATE INDEX event_log_occurred_at ON event_log USING brin (occurred_at)`);
    await queryRunner.query(`
      CREATE TABLE event_stats (
        type text PRIMARY KEY,
        count bigint NOT NULL,
        last_sequence bigint NOT NULL,
        last_occurred_at timestamptz NOT NULL
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE event_stats');
    await queryRunner.query('DROP TABLE event_log');
    await queryRunner.query('DROP TABLE dead_letters');
    await queryRunner.query('DROP TABLE projection_checkpoints');
  }
}
