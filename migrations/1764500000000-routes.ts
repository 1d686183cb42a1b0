import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 5: the `routes` and `hostnames` projections. Few secondary indexes on purpose: every index slows
 * a replay, and these serve the API's filters (by agent, by host name) and the proxies' read of live routes.
 */
export class Routes1764500000000 implements MigrationInterface {
  name = 'Routes1764500000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE routes (
        route_id text PRIMARY KEY,
        agent_id text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('http', 'tls-sni')),
        hostname text NOT NULL,
        target_host text NOT NULL,
        target_port integer NOT NULL CHECK (target_port BETWEEN 1 AND 65535),
        options jsonb NOT NULL DEFAULT '{}'::jsonb,
        revision integer NOT NULL CHECK (revision >= 1),
        status text NOT NULL CHECK (status IN ('pending', 'active', 'failed', 'removed')),
        status_reason text,
        applied jsonb NOT NULL DEFAULT '{}'::jsonb,
        propagation_ms integer,
        config_version bigint,
        requested_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        removed_at timestamptz
      )`);
    await queryRunner.query(`CREATE INDEX routes_agent ON routes (agent_id, status)`);
    await queryRunner.query(`CREATE INDEX routes_hostname ON routes (hostname)`);
    await queryRunner.query(`
      CREATE TABLE hostnames (
        hostname text PRIMARY KEY,
        route_id text NOT NULL,
        agent_id text NOT NULL,
        claimed_at timestamptz NOT NULL
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE hostnames');
    await queryRunner.query('DROP TABLE routes');
  }
}
