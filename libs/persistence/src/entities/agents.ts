import { Column, Entity, PrimaryColumn } from 'typeorm';

/** Projection `agents`: one row per agent ever enrolled (deregistered ones stay, with their status). */
@Entity({ name: 'agents' })
export class AgentRecord {
  @PrimaryColumn({ name: 'agent_id', type: 'text' })
  agentId!: string;

  @Column({ type: 'text' })
  status!: 'enrolled' | 'online' | 'offline' | 'deregistered';

  @Column({ name: 'public_address', type: 'text' })
  publicAddress!: string;

  @Column({ type: 'jsonb' })
  labels!: Record<string, string>;

  @Column({ name: 'nats_public_key', type: 'text' })
  natsPublicKey!: string;

  @Column({ name: 'enrolled_at', type: 'timestamptz' })
  enrolledAt!: Date;

  @Column({ name: 'last_seen_at', type: 'timestamptz', nullable: true })
  lastSeenAt!: Date | null;

  @Column({ name: 'deregistered_at', type: 'timestamptz', nullable: true })
  deregisteredAt!: Date | null;

  @Column({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}

/** Projection `admin_tokens`: every admin token issued, and whether it was revoked. */
@Entity({ name: 'admin_tokens' })
export class AdminTokenRecord {
  @PrimaryColumn({ name: 'token_id', type: 'text' })
  tokenId!: string;

  @Column({ type: 'text' })
  name!: string;

  @Column({ name: 'issued_at', type: 'timestamptz' })
  issuedAt!: Date;

  @Column({ name: 'expires_at', type: 'timestamptz' })
  expiresAt!: Date;

  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true })
  revokedAt!: Date | null;

  @Column({ name: 'revoked_reason', type: 'text', nullable: true })
  revokedReason!: string | null;
}

/** The API's own state (not a projection): one family per enrollment, rotated refresh tokens inside it. */
@Entity({ name: 'agent_token_families' })
export class AgentTokenFamily {
  @PrimaryColumn({ type: 'uuid' })
  id!: string;

  @Column({ name: 'agent_id', type: 'text' })
  agentId!: string;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true })
  revokedAt!: Date | null;

  @Column({ name: 'revoked_reason', type: 'text', nullable: true })
  revokedReason!: string | null;
}

/** A refresh token, known only by its SHA-256. `used_at` set: rotated; presenting it again is reuse. */
@Entity({ name: 'agent_refresh_tokens' })
export class AgentRefreshToken {
  @PrimaryColumn({ name: 'token_hash', type: 'text' })
  tokenHash!: string;

  @Column({ name: 'family_id', type: 'uuid' })
  familyId!: string;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Column({ name: 'expires_at', type: 'timestamptz' })
  expiresAt!: Date;

  @Column({ name: 'used_at', type: 'timestamptz', nullable: true })
  usedAt!: Date | null;
}
