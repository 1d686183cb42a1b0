import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The event types the `routes` projection reads (apps/projector/src/projections/routes.ts). */
const ROUTE_EVENT_TYPES = [
  'RouteRequested',
  'RouteUpdated',
  'RouteRemoved',
  'RouteApplied',
  'RouteFailed',
  'RouteDropped',
];

/**
 * Issue 7: what proxy-sync reads and what the dashboard shows of proxy nodes.
 *
 * - `routes.last_sequence`: the log sequence of the last event that changed each row, so proxy-sync reads
 *   only the rows changed after the position it has (exact: a row and the projection's checkpoint commit
 *   together, and sequences only grow). Existing rows get their route's last event from the event-log
 *   index; an event that changed nothing (a late report about a removed route) makes that a little higher
 *   than a rebuild would, which only costs a reader one extra row.
 * - `projection_checkpoints` notifies `projection_checkpoint` (`<projection> <sequence>`) when a checkpoint
 *   moves, delivered when the projector's batch commits: a reader waiting for a sequence wakes at once
 *   instead of polling. Only the live table has the trigger (rebuild schemas copy tables without it).
 * - `proxy_nodes`: each node's status from ProxyNodeStatusChanged.
 */
export class ProxySync1764700000000 implements MigrationInterface {
  name = 'ProxySync1764700000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE routes ADD COLUMN last_sequence bigint NOT NULL DEFAULT 0`);
    await queryRunner.query(
      `UPDATE routes r SET last_sequence = e.last_sequence
         FROM (SELECT aggregate_id, max(sequence) AS last_sequence FROM event_log
                WHERE aggregate_type = 'route' AND type = ANY($1::text[])
                  AND sequence <= (SELECT coalesce(max(last_sequence), 0) FROM projection_checkpoints
                                    WHERE projection = 'routes')
                GROUP BY aggregate_id) e
        WHERE e.aggregate_id = r.route_id`,
      [ROUTE_EVENT_TYPES],
    );
    await queryRunner.query(`CREATE INDEX routes_last_sequence ON routes (last_sequence)`);

    await queryRunner.query(`
      CREATE FUNCTION notify_projection_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('projection_checkpoint', NEW.projection || ' ' || NEW.last_sequence);
        RETURN NEW;
      END
      $$`);
    await queryRunner.query(`
      CREATE TRIGGER projection_checkpoint_notify
        AFTER INSERT OR UPDATE OF last_sequence ON projection_checkpoints
        FOR EACH ROW EXECUTE FUNCTION notify_projection_checkpoint()`);

    await queryRunner.query(`
      CREATE TABLE proxy_nodes (
        node text PRIMARY KEY,
        status text NOT NULL CHECK (status IN ('in-sync', 'degraded', 'unreachable')),
        config_version bigint,
        detail text,
        changed_at timestamptz NOT NULL
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE proxy_nodes');
    await queryRunner.query('DROP TRIGGER projection_checkpoint_notify ON projection_checkpoints');
    await queryRunner.query('DROP FUNCTION notify_projection_checkpoint()');
    await queryRunner.query('DROP INDEX routes_last_sequence');
    await queryRunner.query('ALTER TABLE routes DROP COLUMN last_sequence');
  }
}
