import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 3: the `agents` and `admin_tokens` projections, and the API's own security state for agent
 * sessions (refresh-token families). The latter is not a projection: it is never rebuilt from the log,
 * and a refresh token exists only as its hash.
 */
export class Agents1764100000000 implements MigrationInterface {
  name = 'Agents1764100000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE agents (
        agent_id text PRIMARY KEY,
        status text NOT NULL CHECK (status IN ('enrolled', 'online', 'offline', 'deregistered')),
        public_address text NOT NULL,
        labels jsonb NOT NULL DEFAULT '{}'::jsonb,
        nats_public_key text NOT NULL,
        enrolled_at timestamptz NOT NULL,
        last_seen_at timestamptz,
        deregistered_at timestamptz,
        updated_at timestamptz NOT NULL
      )`);
    await queryRunner.query(`CREATE INDEX agents_status ON agents (status)`);
    await queryRunner.query(`
      CREATE TABLE admin_tokens (
        token_id text PRIMARY KEY,
        name text NOT NULL,
        issued_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        revoked_at timestamptz,
        revoked_reason text
      )`);
    await queryRunner.query(`
      CREATE TABLE agent_token_families (
        id uuid PRIMARY KEY,
        agent_id text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz,
        revoked_reason text
      )`);
    await queryRunner.query(`CREATE INDEX agent_token_families_agent ON agent_token_families (agent_id)`);
    await queryRunner.query(`
      CREATE TABLE agent_refresh_tokens (
        token_hash text PRIMARY KEY,
        family_id uuid NOT NULL REFERENCES agent_token_families (id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        used_at timestamptz
      )`);
    await queryRunner.query(`CREATE INDEX agent_refresh_tokens_family ON agent_refresh_tokens (family_id)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE agent_refresh_tokens');
    await queryRunner.query('DROP TABLE agent_token_families');
    await queryRunner.query('DROP TABLE admin_tokens');
    await queryRunner.query('DROP TABLE agents');
  }
}
