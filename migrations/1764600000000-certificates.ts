import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 4: the `certificates` projection — one row per certificate the CA issued (agents' and the front
 * server's), public data only. Indexes serve the API's filters (by agent) and the renewal timer (installed
 * certificates by expiry, and renewals by the serial they replace).
 */
export class Certificates1764600000000 implements MigrationInterface {
  name = 'Certificates1764600000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE certificates (
        serial text PRIMARY KEY,
        holder text NOT NULL,
        agent_id text,
        names text[] NOT NULL,
        not_before timestamptz NOT NULL,
        not_after timestamptz NOT NULL,
        fingerprint text NOT NULL,
        public_key_fingerprint text NOT NULL,
        issuer_fingerprint text NOT NULL,
        status text NOT NULL CHECK (status IN ('issued', 'installed', 'superseded', 'revoked')),
        replaces text,
        superseded_by text,
        issued_at timestamptz NOT NULL,
        installed_at timestamptz,
        hook_status text CHECK (hook_status IN ('none', 'succeeded', 'failed')),
        hook_detail text,
        revoked_at timestamptz,
        revocation_reason text,
        revocation_detail text,
        certificate_pem text NOT NULL
      )`);
    await queryRunner.query(`CREATE INDEX certificates_agent ON certificates (agent_id, status)`);
    await queryRunner.query(
      `CREATE INDEX certificates_renewal ON certificates (not_after) WHERE status = 'installed'`,
    );
    await queryRunner.query(
      `CREATE INDEX certificates_replaces ON certificates (replaces) WHERE replaces IS NOT NULL`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE certificates');
  }
}
