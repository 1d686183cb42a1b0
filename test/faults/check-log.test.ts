/**
 * The fault suite's log check must see what it is there to see: an acknowledged command without its
 * effect is lost, an effect twice is duplicated, an effect that differs from the command is wrong, and a
 * retried command whose effect is there once is fine.
 */
import type { StoredEvent } from '#contracts';
import { checkLog } from './check-log.js';
import type { Command } from './churn.js';

let sequence = 0;
function event(
  type: string,
  routeId: string,
  causationId: string,
  data: Record<string, unknown>,
): StoredEvent {
  sequence++;
  return {
    id: `e${sequence}`,
    type,
    schemaVersion: 1,
    aggregate: { type: type.startsWith('Hostname') ? 'hostname' : 'route', id: routeId },
    occurredAt: new Date(0).toISOString(),
    actor: { kind: 'agent', id: 'fa1' },
    correlationId: `c${sequence}`,
    causationId,
    data: { routeId, ...data },
    sequence,
    subject: `events.route.${routeId}`,
  };
}

function command(kind: Command['kind'], key: string, routeId: string, extra: Partial<Command> = {}): Command {
  return {
    seq: 0,
    agentId: 'fa1',
    kind,
    key,
    routeId,
    issuedAt: 0,
    ackedAt: 1,
    attempts: [202],
    timeline: [],
    ...extra,
  };
}

const host = 'a.apps.faults.test';
const target = (port: number) => ({ host: '127.0.0.2', port });

test('a clean history: every acknowledged command once, a retry counted once', () => {
  const ledger = [
    command('create', 'k1', 'r1', { hostname: host, port: 1001, attempts: ['socket hang up', 202] }),
    command('update', 'k2', 'r1', { port: 1002 }),
    command('remove', 'k3', 'r1'),
  ];
  const events = [
    event('HostnameClaimed', 'r1', 'k1', { hostname: host }),
    event('RouteRequested', 'r1', 'k1', { hostname: host, target: target(1001) }),
    event('RouteApplied', 'r1', 'other', { revision: 1 }),
    event('RouteUpdated', 'r1', 'k2', { target: target(1002) }),
    event('RouteRemoved', 'r1', 'k3', { reason: 'x' }),
  ];
  expect(checkLog(ledger, events)).toEqual({ lost: 0, duplicated: 0, wrongEffect: 0, problems: [] });
});

test('lost, duplicated and wrong effects are counted, unacknowledged and refused commands named', () => {
  const ledger = [
    command('create', 'k1', 'r1', { hostname: host, port: 1001 }),
    command('update', 'k2', 'r1', { port: 1002 }),
    command('update', 'k3', 'r1', { port: 1003 }),
    command('remove', 'k4', 'r1'),
    command('update', 'k5', 'r1', { port: 1005, ackedAt: undefined }),
    command('update', 'k6', 'r1', { port: 1006, ackedAt: undefined, rejected: { status: 404, body: {} } }),
  ];
  const events = [
    event('RouteRequested', 'r1', 'k1', { hostname: host, target: target(1001) }),
    // k2 applied twice, k3 with another port, k4 missing.
    event('RouteUpdated', 'r1', 'k2', { target: target(1002) }),
    event('RouteUpdated', 'r1', 'k2', { target: target(1002) }),
    event('RouteUpdated', 'r1', 'k3', { target: target(9999) }),
  ];
  const result = checkLog(ledger, events);
  expect({ lost: result.lost, duplicated: result.duplicated, wrongEffect: result.wrongEffect }).toEqual({
    lost: 1,
    duplicated: 1,
    wrongEffect: 1,
  });
  expect(result.problems.join('\n')).toMatch(/lost: remove #0 .* key k4/);
  expect(result.problems.join('\n')).toMatch(/unacknowledged: update #0 key k5/);
  expect(result.problems.join('\n')).toMatch(/rejected: update #0 key k6: 404/);
});

test('a route requested twice under different keys is a duplicate', () => {
  const ledger = [command('create', 'k1', 'r1', { hostname: host, port: 1001 })];
  const events = [
    event('RouteRequested', 'r1', 'k1', { hostname: host, target: target(1001) }),
    event('RouteRequested', 'r1', 'k9', { hostname: host, target: target(1001) }),
  ];
  expect(checkLog(ledger, events).duplicated).toBe(1);
});
