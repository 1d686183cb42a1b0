import { randomUUID } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';
import { hashToken, newRefreshToken } from '#auth';
import { DomainError } from '#contracts';

export interface IssuedRefresh {
  familyId: string;
  refreshToken: string;
  expiresAt: Date;
}

const REFUSED = 'the refresh token is unknown, used, expired or revoked';

/**
 * Agent sessions: security state kept by the API in Postgres, not in the event log. Each enrollment
 * starts a family; every refresh rotates the token inside it. A token presented a second time means
 * it was copied: the whole family is revoked, which also ends the access tokens issued from it.
 */
export class SessionStore {
  constructor(
    private readonly dataSource: DataSource,
    private readonly refreshTtlSeconds: number,
  ) {}

  async start(agentId: string): Promise<IssuedRefresh> {
    const familyId = randomUUID();
    return this.dataSource.transaction(async (manager) => {
      await manager.query('INSERT INTO agent_token_families (id, agent_id) VALUES ($1, $2)', [
        familyId,
        agentId,
      ]);
      return this.insertToken(manager, familyId);
    });
  }

  private async insertToken(manager: EntityManager, familyId: string): Promise<IssuedRefresh> {
    const refreshToken = newRefreshToken();
    const expiresAt = new Date(Date.now() + this.refreshTtlSeconds * 1000);
    await manager.query(
      'INSERT INTO agent_refresh_tokens (token_hash, family_id, expires_at) VALUES ($1, $2, $3)',
      [hashToken(refreshToken), familyId, expiresAt],
    );
    return { familyId, refreshToken, expiresAt };
  }

  /**
   * Rotates a refresh token. `beforeCommit` runs while the old token's row is locked (it fetches the
   * agent's new NATS credentials); if it fails, nothing changes and the same token can be retried —
   * unless it refuses the agent itself (401), which ends every session of the agent.
   * Two concurrent refreshes with one token: the second waits for the lock, then sees the token used.
   */
  async rotate<T>(
    refreshToken: string,
    beforeCommit: (agentId: string) => Promise<T>,
  ): Promise<{ agentId: string; issued: IssuedRefresh; extra: T }> {
    let reused: string | undefined;
    let refusal: DomainError | undefined;
    const outcome = await this.dataSource.transaction(async (manager) => {
      const rows: {
        family_id: string;
        agent_id: string;
        used_at: Date | null;
        expires_at: Date;
        revoked_at: Date | null;
      }[] = await manager.query(
        `SELECT t.family_id, f.agent_id, t.used_at, t.expires_at, f.revoked_at
           FROM agent_refresh_tokens t JOIN agent_token_families f ON f.id = t.family_id
          WHERE t.token_hash = $1
          FOR UPDATE OF t, f`,
        [hashToken(refreshToken)],
      );
      const row = rows[0];
      if (!row || row.revoked_at) {
        refusal = new DomainError('unauthorized', REFUSED);
        return undefined;
      }
      if (row.used_at) {
        reused = row.family_id;
        await manager.query(
          `UPDATE agent_token_families SET revoked_at = now(), revoked_reason = 'refresh token reused' WHERE id = $1`,
          [row.family_id],
        );
        refusal = new DomainError('unauthorized', REFUSED);
        return undefined;
      }
      if (new Date(row.expires_at).getTime() <= Date.now()) {
        refusal = new DomainError('unauthorized', REFUSED);
        return undefined;
      }
      let extra: T;
      try {
        extra = await beforeCommit(row.agent_id);
      } catch (error) {
        if (!(error instanceof DomainError && error.code === 'unauthorized')) throw error;
        // The agent may no longer have credentials (deregistered): all its sessions end, here, on this
        // transaction's connection — another connection would wait for the rows this one has locked.
        await manager.query(
          `UPDATE agent_token_families SET revoked_at = now(), revoked_reason = $2
            WHERE agent_id = $1 AND revoked_at IS NULL`,
          [row.agent_id, 'agent is not enrolled'],
        );
        refusal = error;
        return undefined;
      }
      await manager.query('UPDATE agent_refresh_tokens SET used_at = now() WHERE token_hash = $1', [
        hashToken(refreshToken),
      ]);
      const issued = await this.insertToken(manager, row.family_id);
      return { agentId: row.agent_id, issued, extra };
    });
    if (reused !== undefined || refusal || !outcome)
      throw refusal ?? new DomainError('unauthorized', REFUSED);
    return outcome;
  }

  async revokeFamily(familyId: string, reason: string): Promise<void> {
    await this.dataSource.query(
      'UPDATE agent_token_families SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL',
      [familyId, reason],
    );
  }

  async revokeAgent(agentId: string, reason: string): Promise<number> {
    const result: [unknown[], number] = await this.dataSource.query(
      'UPDATE agent_token_families SET revoked_at = now(), revoked_reason = $2 WHERE agent_id = $1 AND revoked_at IS NULL',
      [agentId, reason],
    );
    return result[1];
  }

  /** Whether access tokens of this family still count: family not revoked, agent not deregistered. */
  async familyActive(familyId: string, agentId: string): Promise<boolean> {
    const rows: { revoked_at: Date | null; status: string | null }[] = await this.dataSource.query(
      `SELECT f.revoked_at, a.status
         FROM agent_token_families f LEFT JOIN agents a ON a.agent_id = f.agent_id
        WHERE f.id = $1 AND f.agent_id = $2`,
      [familyId, agentId],
    );
    const row = rows[0];
    return !!row && !row.revoked_at && row.status !== 'deregistered';
  }
}
