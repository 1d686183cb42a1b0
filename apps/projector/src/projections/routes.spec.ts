import type { NewEvent, StoredEvent } from '#contracts';
import type { RouteRow } from '#persistence';
import { hostnamesProjection, routesProjection } from './routes.js';

const routeId = '11111111-1111-5111-8111-111111111111';
let sequence = 0;
let clock = Date.parse('2030-01-01T00:00:00.000Z');

function event(input: NewEvent, aggregate: 'route' | 'hostname' = 'route', id = routeId): StoredEvent {
  sequence++;
  clock += 1_000;
  return {
    id: `e${sequence}`,
    type: input.type,
    schemaVersion: 1,
    aggregate: { type: aggregate, id },
    occurredAt: new Date(clock).toISOString(),
    actor: { kind: 'system', id: 'test' },
    correlationId: 'c',
    causationId: null,
    data: input.data,
    sequence,
    subject: `events.${aggregate}.${id}`,
  };
}

const requested = () =>
  event({
    type: 'RouteRequested',
    data: {
      routeId,
      agentId: 'web-a',
      kind: 'http',
      hostname: 'shop.apps.example.test',
      target: { host: '203.0.113.7', port: 8080 },
      options: { tlsToTarget: false },
    },
  });
const updated = (port: number) =>
  event({
    type: 'RouteUpdated',
    data: { routeId, target: { host: '203.0.113.7', port }, options: { tlsToTarget: true } },
  });
const applied = (revision: number, node: string, propagationMs = 12.4) =>
  event({ type: 'RouteApplied', data: { routeId, revision, node, configVersion: 7, propagationMs } });
const failed = (revision: number, node: string) =>
  event({ type: 'RouteFailed', data: { routeId, revision, node, reason: 'haproxy refused it' } });

const fold = (events: StoredEvent[]): RouteRow | undefined => routesProjection.fold(events).get(routeId);

test('requested → pending; applied for the current revision → active with node, version and time', () => {
  const first = requested();
  expect(fold([first])).toMatchObject({
    status: 'pending',
    revision: 1,
    target_port: 8080,
    applied: {},
    requested_at: first.occurredAt,
  });
  const ok = applied(1, 'front-1');
  expect(fold([first, ok])).toMatchObject({
    status: 'active',
    status_reason: null,
    propagation_ms: 12,
    config_version: 7,
    applied: { 'front-1': { revision: 1, configVersion: 7, propagationMs: 12.4, at: ok.occurredAt } },
  });
});

test('an absurd propagation time is clamped to what the column holds, not a poison event', () => {
  expect(fold([requested(), applied(1, 'front-1', 1e12)])!.propagation_ms).toBe(2_147_483_647);
});

test('an update makes the route pending again; reports about the old revision do not change its status', () => {
  const events = [requested(), applied(1, 'front-1'), updated(9090)];
  expect(fold(events)).toMatchObject({
    status: 'pending',
    revision: 2,
    target_port: 9090,
    options: { tlsToTarget: true },
    propagation_ms: null,
  });
  expect(fold([...events, applied(1, 'front-2')])).toMatchObject({
    status: 'pending',
    applied: { 'front-2': { revision: 1 } },
  });
  expect(fold([...events, failed(1, 'front-1')])).toMatchObject({ status: 'pending' });
  expect(fold([...events, applied(2, 'front-1')])).toMatchObject({
    status: 'active',
    applied: { 'front-1': { revision: 2 } },
  });
  // A late report of an older revision never moves a node backwards.
  expect(fold([...events, applied(2, 'front-1'), applied(1, 'front-1')])!.applied['front-1']!.revision).toBe(
    2,
  );
});

test('failed on the current revision → failed, unless another node has it active', () => {
  expect(fold([requested(), failed(1, 'front-1')])).toMatchObject({
    status: 'failed',
    status_reason: 'haproxy refused it',
  });
  expect(fold([requested(), applied(1, 'front-2'), failed(1, 'front-1')])).toMatchObject({
    status: 'active',
    status_reason: 'proxy node front-1 failed: haproxy refused it',
  });
  // The same node failing what it had applied: no node has it any more.
  const lost = fold([requested(), applied(1, 'front-1'), failed(1, 'front-1')]);
  expect(lost).toMatchObject({ status: 'failed', applied: {} });
  expect(fold([requested(), failed(1, 'front-1'), applied(1, 'front-2')])).toMatchObject({
    status: 'active',
    status_reason: null,
  });
});

test('removed is final: later reports and updates change nothing', () => {
  const removed = event({ type: 'RouteRemoved', data: { routeId, reason: 'agent deregistered' } });
  const history = [requested(), applied(1, 'front-1'), removed];
  const row = fold(history);
  expect(row).toMatchObject({
    status: 'removed',
    status_reason: 'agent deregistered',
    removed_at: removed.occurredAt,
  });
  expect(fold([...history, applied(1, 'front-2'), updated(1), failed(1, 'x')])).toEqual(row);
});

test('host names: a claim holds until the same route releases it; a released name can be claimed again', () => {
  const hostname = 'shop.apps.example.test';
  const claim = (id: string, agentId: string) =>
    event({ type: 'HostnameClaimed', data: { hostname, routeId: id, agentId } }, 'hostname', hostname);
  const release = (id: string) =>
    event({ type: 'HostnameReleased', data: { hostname, routeId: id } }, 'hostname', hostname);
  const other = '22222222-2222-5222-8222-222222222222';
  const first = claim(routeId, 'web-a');
  expect(hostnamesProjection.fold([first]).get(hostname)).toEqual({
    hostname,
    route_id: routeId,
    agent_id: 'web-a',
    claimed_at: first.occurredAt,
  });
  expect(hostnamesProjection.fold([first, release(other)]).get(hostname)?.route_id).toBe(routeId);
  expect(hostnamesProjection.fold([first, release(routeId)]).has(hostname)).toBe(false);
  expect(
    hostnamesProjection.fold([first, release(routeId), claim(other, 'web-b')]).get(hostname),
  ).toMatchObject({ route_id: other, agent_id: 'web-b' });
});

test('last_sequence follows the last event that changed the row; a node dropping a removed route leaves applied', () => {
  const first = requested();
  expect(fold([first])!.last_sequence).toBe(first.sequence);
  const ok = applied(1, 'front-1');
  const other = applied(1, 'front-2');
  const removed = event({ type: 'RouteRemoved', data: { routeId, reason: 'gone' } });
  const history = [first, ok, other, removed];
  expect(fold(history)).toMatchObject({ status: 'removed', last_sequence: removed.sequence });
  expect(Object.keys(fold(history)!.applied).sort()).toEqual(['front-1', 'front-2']);
  const dropped = (node: string) =>
    event({ type: 'RouteDropped', data: { routeId, revision: 1, node, configVersion: 7 } });
  const drop = dropped('front-1');
  expect(fold([...history, drop])).toMatchObject({
    status: 'removed',
    applied: { 'front-2': { revision: 1 } },
    last_sequence: drop.sequence,
  });
  expect(fold([...history, drop, dropped('front-2')])!.applied).toEqual({});
  // A drop that changes nothing (again, or a live route) moves nothing.
  const row = fold([...history, drop]);
  expect(fold([...history, drop, dropped('front-1')])).toEqual(row);
  expect(fold([first, ok, dropped('front-1')])).toEqual(fold([first, ok]));
});
