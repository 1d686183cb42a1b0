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
  }

  async down(queryRunner: QueryRunner): Promise<void> {
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
