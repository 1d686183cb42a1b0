import type { DomainEvent, StoredEvent } from '#contracts';
import { adminTokensTable, agentsTable, type AdminTokenRow, type AgentRow } from '#persistence';
import { RowProjection } from '../engine/row-projection.js';

/** The agents read model: status, address, labels, enrolled at, last seen (at the last transition). */
export function evolveAgentRow(row: AgentRow | undefined, stored: StoredEvent): AgentRow | undefined {
  const event = stored as DomainEvent;
  switch (event.type) {
    case 'AgentEnrolled':
      return {
        agent_id: event.data.agentId,
        status: 'enrolled',
        public_address: event.data.publicAddress,
        labels: event.data.labels,
        nats_public_key: event.data.natsPublicKey,
        enrolled_at: event.occurredAt,
        last_seen_at: null,
        deregistered_at: null,
        updated_at: event.occurredAt,
      };
    case 'AgentCameOnline':
      if (!row || row.status === 'deregistered') return row;
      return { ...row, status: 'online', last_seen_at: event.data.seenAt, updated_at: event.occurredAt };
    case 'AgentWentOffline':
      if (!row || row.status === 'deregistered') return row;
      return { ...row, status: 'offline', last_seen_at: event.data.lastSeenAt, updated_at: event.occurredAt };
    case 'AgentDeregistered':
      if (!row) return row;
      return {
        ...row,
        status: 'deregistered',
        deregistered_at: event.occurredAt,
        updated_at: event.occurredAt,
      };
    default:
      return row;
  }
}

export const agentsProjection = new RowProjection<AgentRow>({
  name: 'agents',
  ...agentsTable,
  eventTypes: ['AgentEnrolled', 'AgentCameOnline', 'AgentWentOffline', 'AgentDeregistered'],
  keyOf: (event) => (event.aggregate.type === 'agent' ? event.aggregate.id : undefined),
  evolve: evolveAgentRow,
});

/** Admin tokens and their revocation: what the API's admin guard checks. */
export function evolveAdminTokenRow(
  row: AdminTokenRow | undefined,
  stored: StoredEvent,
): AdminTokenRow | undefined {
  const event = stored as DomainEvent;
  switch (event.type) {
    case 'AdminTokenIssued':
      return {
        token_id: event.data.tokenId,
        name: event.data.name,
        issued_at: event.occurredAt,
        expires_at: event.data.expiresAt,
        revoked_at: null,
        revoked_reason: null,
      };
    case 'AdminTokenRevoked':
      if (!row || row.revoked_at) return row;
      return { ...row, revoked_at: event.occurredAt, revoked_reason: event.data.reason };
    default:
      return row;
  }
}

export const adminTokensProjection = new RowProjection<AdminTokenRow>({
  name: 'admin_tokens',
  ...adminTokensTable,
  eventTypes: ['AdminTokenIssued', 'AdminTokenRevoked'],
  keyOf: (event) => (event.aggregate.type === 'admin' ? event.aggregate.id : undefined),
  evolve: evolveAdminTokenRow,
});
