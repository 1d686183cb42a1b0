import type { StoredEvent } from '#contracts';
import { adminTokensProjection, agentsProjection } from './agents.js';

let sequence = 0;
function event(
  type: string,
  aggregate: 'agent' | 'admin',
  id: string,
  data: object,
  at: string,
): StoredEvent {
  sequence++;
  return {
    id: `e${sequence}`,
    type,
    schemaVersion: 1,
    aggregate: { type: aggregate, id },
    occurredAt: at,
    actor: { kind: 'system', id: 'test' },
    correlationId: 'c',
    causationId: null,
    data,
    sequence,
    subject: `events.${aggregate}.${id}`,
  };
}

test('agents: enrolled, online, offline, deregistered; liveness after deregistration changes nothing', () => {
  const key = 'U' + 'A'.repeat(55);
  const rows = agentsProjection.fold([
    event(
      'AgentEnrolled',
      'agent',
      'a',
      {
        agentId: 'a',
        publicAddress: '203.0.113.1',
        labels: { r: 'eu' },
        natsPublicKey: key,
        enrollmentTokenId: 'h',
      },
      '2030-01-01T00:00:00.000Z',
    ),
    event(
      'AgentCameOnline',
      'agent',
      'a',
      { agentId: 'a', seenAt: '2030-01-01T00:00:05.000Z' },
      '2030-01-01T00:00:05.000Z',
    ),
    event(
      'AgentWentOffline',
      'agent',
      'a',
      { agentId: 'a', lastSeenAt: '2030-01-01T00:01:00.000Z' },
      '2030-01-01T00:02:30.000Z',
    ),
  ]);
  expect(rows.get('a')).toMatchObject({
    status: 'offline',
    last_seen_at: '2030-01-01T00:01:00.000Z',
    enrolled_at: '2030-01-01T00:00:00.000Z',
    labels: { r: 'eu' },
  });
  agentsProjection.fold(
    [
      event('AgentDeregistered', 'agent', 'a', { agentId: 'a', reason: 'bye' }, '2030-01-01T00:03:00.000Z'),
      event(
        'AgentCameOnline',
        'agent',
        'a',
        { agentId: 'a', seenAt: '2030-01-01T00:04:00.000Z' },
        '2030-01-01T00:04:00.000Z',
      ),
    ],
    rows,
  );
  expect(rows.get('a')).toMatchObject({
    status: 'deregistered',
    deregistered_at: '2030-01-01T00:03:00.000Z',
    last_seen_at: '2030-01-01T00:01:00.000Z',
  });
});

test('admin tokens: issued, then revoked once', () => {
  const id = '00000000-0000-4000-8000-000000000001';
  const rows = adminTokensProjection.fold([
    event(
      'AdminTokenIssued',
      'admin',
      id,
      { tokenId: id, name: 'alice', expiresAt: '2030-01-02T00:00:00.000Z' },
      '2030-01-01T00:00:00.000Z',
    ),
    event('AdminTokenRevoked', 'admin', id, { tokenId: id, reason: 'lost' }, '2030-01-01T01:00:00.000Z'),
    event('AdminTokenRevoked', 'admin', id, { tokenId: id, reason: 'again' }, '2030-01-01T02:00:00.000Z'),
  ]);
  expect(rows.get(id)).toMatchObject({
    name: 'alice',
    revoked_at: '2030-01-01T01:00:00.000Z',
    revoked_reason: 'lost',
  });
});
