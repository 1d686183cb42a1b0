import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 14:
 * - `dead_letters.status` may be `dismissed`: an admin decided a dead letter needs no handling
 *   (DeadLettersDismissed names who and why).
 * - `event_log` is searched by correlation id (`GET /api/v1/events?correlationId=`): everything one request
 *   caused. A b-tree costs replays of the mirror a little; a request's events are few, so the search is
 *   an index scan instead of a pass over the whole log.
 * - `routes.change_event_id` / `change_correlation_id`: the event that made a route's current revision, so
 *   proxy nodes' reports of it name their cause and the request's correlation id.
 * - `proxy_nodes.status` may be `stale`: routing records a node whose proxy-sync stopped reporting.
 * - `event_log_identity`: which event log the projections were built from (its stream's creation time).
 *   A database kept while the broker's data was lost would otherwise show state of a log that is gone.
 */
export class Audit1764800000000 implements MigrationInterface {
  name = 'Audit1764800000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_status_check`);
    await queryRunner.query(
      `ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_status_check
         CHECK (status IN ('open', 'retrying', 'resolved', 'dismissed'))`,
    );
    await queryRunner.query(`CREATE INDEX dead_letters_message ON dead_letters (stream, sequence)`);
    await queryRunner.query(`CREATE INDEX event_log_correlation ON event_log (correlation_id, sequence)`);
    await queryRunner.query(
      `ALTER TABLE routes ADD COLUMN change_event_id text, ADD COLUMN change_correlation_id text`,
    );
    await queryRunner.query(`ALTER TABLE proxy_nodes DROP CONSTRAINT proxy_nodes_status_check`);
    await queryRunner.query(
      `ALTER TABLE proxy_nodes ADD CONSTRAINT proxy_nodes_status_check
         CHECK (status IN ('in-sync', 'degraded', 'unreachable', 'stale'))`,
    );
    await queryRunner.query(`
      CREATE TABLE event_log_identity (
        stream text PRIMARY KEY,
        created text NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE event_log_identity');
    await queryRunner.query(`DELETE FROM proxy_nodes WHERE status = 'stale'`);
    await queryRunner.query(`ALTER TABLE proxy_nodes DROP CONSTRAINT proxy_nodes_status_check`);
    await queryRunner.query(
      `ALTER TABLE proxy_nodes ADD CONSTRAINT proxy_nodes_status_check
         CHECK (status IN ('in-sync', 'degraded', 'unreachable'))`,
    );
    await queryRunner.query(
      `ALTER TABLE routes DROP COLUMN change_event_id, DROP COLUMN change_correlation_id`,
    );
    await queryRunner.query(`DROP INDEX event_log_correlation`);
    await queryRunner.query(`DROP INDEX dead_letters_message`);
    await queryRunner.query(`UPDATE dead_letters SET status = 'resolved' WHERE status = 'dismissed'`);
    await queryRunner.query(`ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_status_check`);
    await queryRunner.query(
      `ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_status_check
         CHECK (status IN ('open', 'retrying', 'resolved'))`,
    );
  }
}
