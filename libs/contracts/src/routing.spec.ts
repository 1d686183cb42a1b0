import { routeAcrossNodes } from './routing.js';

const applied = (revision: number) => ({
  revision,
  configVersion: 1,
  propagationMs: 5,
  at: '2030-01-01T00:00:00Z',
});

describe('a route across the proxy nodes', () => {
  test('active only when every node that reports and is not stale routes the current revision', () => {
    const route = { status: 'active' as const, revision: 2, applied: { a: applied(2), b: applied(1) } };
    expect(routeAcrossNodes(route, { a: 'in-sync', b: 'in-sync' })).toEqual({
      status: 'pending',
      nodes: [
        { node: 'a', state: 'applied', appliedRevision: 2 },
        { node: 'b', state: 'pending', appliedRevision: 1 },
      ],
    });
    // b stopped reporting: nobody waits for it.
    expect(routeAcrossNodes(route, { a: 'in-sync', b: 'stale' }).status).toBe('active');
    // A node that has not applied anything yet is waited for too.
    expect(
      routeAcrossNodes({ ...route, applied: { a: applied(2) } }, { a: 'in-sync', c: 'degraded' }),
    ).toEqual({
      status: 'pending',
      nodes: [
        { node: 'a', state: 'applied', appliedRevision: 2 },
        { node: 'c', state: 'pending', appliedRevision: null },
      ],
    });
  });

  test('a name only seen in old reports is listed, not waited for; other statuses stand', () => {
    const route = { status: 'active' as const, revision: 2, applied: { a: applied(2), old: applied(1) } };
    expect(routeAcrossNodes(route, { a: 'in-sync' }).status).toBe('active');
    expect(routeAcrossNodes({ ...route, status: 'failed' }, { a: 'in-sync', b: 'in-sync' }).status).toBe(
      'failed',
    );
    expect(routeAcrossNodes({ ...route, status: 'removed' }, {}).status).toBe('removed');
    expect(routeAcrossNodes({ ...route, status: 'active' }, {}).status).toBe('active');
  });
});
