import type { StoredEvent } from '#contracts';
import { proxyNodesProjection } from './proxy-nodes.js';

let sequence = 0;
function changed(
  node: string,
  status: string,
  configVersion: number | null,
  detail: string | null,
): StoredEvent {
  sequence++;
  return {
    id: `e${sequence}`,
    type: 'ProxyNodeStatusChanged',
    schemaVersion: 1,
    aggregate: { type: 'proxy-node', id: node },
    occurredAt: new Date(Date.UTC(2030, 0, 1, 0, 0, sequence)).toISOString(),
    actor: { kind: 'service', id: `proxy-sync/${node}` },
    correlationId: 'c',
    causationId: null,
    data: { node, status, configVersion, detail },
    sequence,
    subject: `events.proxy-node.${node}`,
  };
}

test('proxy nodes: the last transition of each node, with its version, detail and time', () => {
  const last = changed('front-1', 'in-sync', 8, null);
  const rows = proxyNodesProjection.fold([
    changed('front-1', 'in-sync', 7, null),
    changed('front-2', 'unreachable', null, 'connect ECONNREFUSED 127.0.0.1:5555'),
    changed('front-1', 'degraded', 7, 'validation error: haproxy -c failed'),
    last,
  ]);
  expect(rows.get('front-1')).toEqual({
    node: 'front-1',
    status: 'in-sync',
    config_version: 8,
    detail: null,
    changed_at: last.occurredAt,
  });
  expect(rows.get('front-2')).toMatchObject({
    status: 'unreachable',
    config_version: null,
    detail: 'connect ECONNREFUSED 127.0.0.1:5555',
  });
  expect(rows.size).toBe(2);
});

test('other events leave the rows alone', () => {
  const other = { ...changed('front-1', 'in-sync', 1, null), type: 'AgentEnrolled' };
  expect(proxyNodesProjection.fold([other]).size).toBe(0);
});
