import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 16 (docs/plans/deployments.md §8.2, §6.2):
 * - `apps` and `deployments`: projections of the app and deployment aggregates. `deployments.deadline_at`
 *   is the current status's deadline (`deploymentDeadline` in #contracts), so the supervisor scans the
 *   non-terminal rows by agent through a partial index, and a list is newest first by the app's number.
 * - `app_secret_values`: the deployments service's secret store, AES-256-GCM. Not a projection: no
 *   projection owns it, so it is never rebuilt nor copied into a time-travel view (as
 *   `agent_refresh_tokens`), and deleting a row forgets the value for good.
 */
export class Deployments1765000000000 implements MigrationInterface {
  name = 'Deployments1765000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE apps (
        app_name text PRIMARY KEY,
        agent_id text NOT NULL,
        hostname text NOT NULL UNIQUE,
        route_id text,
        config jsonb NOT NULL,
        secrets jsonb NOT NULL DEFAULT '{}'::jsonb,
        current_release jsonb,
        kept_releases jsonb NOT NULL DEFAULT '[]'::jsonb,
        active_deployment_id text,
        queued_deployment_id text,
        deployments_count integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        last_sequence bigint NOT NULL
      )`);
    await queryRunner.query(`CREATE INDEX apps_agent ON apps (agent_id)`);
    await queryRunner.query(`
      CREATE TABLE deployments (
        deployment_id text PRIMARY KEY,
        app_name text NOT NULL,
        agent_id text NOT NULL,
        number integer,
        kind text NOT NULL CHECK (kind IN ('deploy', 'rollback')),
        status text NOT NULL CHECK (status IN ('requested', 'claimed', 'fetched', 'built', 'started',
          'healthy', 'switched', 'verified', 'drained', 'reverting', 'succeeded', 'failed', 'cancelled',
          'abandoned')),
        phases jsonb NOT NULL DEFAULT '{}'::jsonb,
        activated_at timestamptz,
        cancel_requested_at timestamptz,
        cancel_reason text,
        commit text,
        release_id text,
        release_number integer,
        port integer,
        route_id text,
        failure jsonb,
        verification jsonb,
        limits jsonb NOT NULL,
        deadline_at timestamptz,
        lease_claimed_at timestamptz,
        entered_at timestamptz NOT NULL,
        requested_at timestamptz NOT NULL,
        finished_at timestamptz,
        requested_by jsonb NOT NULL,
        last_sequence bigint NOT NULL
      )`);
    await queryRunner.query(
      `CREATE INDEX deployments_app_number ON deployments (app_name, number DESC NULLS FIRST, requested_at DESC)`,
    );
    await queryRunner.query(
      `CREATE INDEX deployments_running ON deployments (agent_id)
        WHERE status NOT IN ('succeeded', 'failed', 'cancelled', 'abandoned')`,
    );
    await queryRunner.query(`
      CREATE TABLE app_secret_values (
        app_name text NOT NULL,
        name text NOT NULL,
        version integer NOT NULL CHECK (version >= 1),
        nonce bytea NOT NULL,
        ciphertext bytea NOT NULL,
        tag bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (app_name, name, version)
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE app_secret_values');
    await queryRunner.query('DROP TABLE deployments');
    await queryRunner.query('DROP TABLE apps');
  }
}
