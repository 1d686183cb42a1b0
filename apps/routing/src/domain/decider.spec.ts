import { addressPolicy, parseAddressRange, type Actor, type NewEvent } from '#contracts';
import { deciderSpec, refusal, stored } from '#testing';
import {
  checkAgentUsable,
  checkOptions,
  checkRequester,
  checkTarget,
  claimHeldBy,
  decideClaim,
  decideRelease,
  decideRemoveRoute,
  decideRequestRoute,
  decideUpdateRoute,
  foldAgent,
  foldHostname,
  foldRoute,
  initialRouteState,
  pendingView,
  type ActiveAgent,
  type HostnameState,
  type RouteDefinition,
  type RoutePatch,
  type RouteState,
} from './decider.js';

const t0 = new Date('2030-01-01T00:00:00.000Z');
/** The agents here sit in documentation ranges, which a test installation allows, as it allows 10/8. */
const policy = addressPolicy(
  ['2001:db8::/32', '192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24', '10.0.0.0/8'].map(parseAddressRange),
  ['198.51.100.250'],
);
const givenRoute = deciderSpec(foldRoute, { aggregate: { type: 'route', id: 'x' }, at: t0 });
const givenHostname = deciderSpec(foldHostname, { aggregate: { type: 'hostname', id: 'x' }, at: t0 });
const givenAgent = deciderSpec(foldAgent, { aggregate: { type: 'agent', id: 'web-a' }, at: t0 });

const admin = { kind: 'admin' as const, id: 'alice' };
const agentA = { kind: 'agent' as const, id: 'web-a' };
const agentB = { kind: 'agent' as const, id: 'web-b' };
const activeA: ActiveAgent = { status: 'active', agentId: 'web-a', publicAddress: '2001:db8::a' };

const definition: RouteDefinition = {
  routeId: '11111111-1111-5111-8111-111111111111',
  agentId: 'web-a',
  kind: 'http',
  hostname: 'shop.apps.example.test',
  target: { host: '2001:db8::a', port: 8080 },
  options: { tlsToTarget: false },
};
const otherRouteId = '22222222-2222-5222-8222-222222222222';

const requested: NewEvent[] = [{ type: 'RouteRequested', data: definition }];
const removedBecause = (reason: string): NewEvent[] => [
  { type: 'RouteRemoved', data: { routeId: definition.routeId, reason } },
];
const update =
  (patch: RoutePatch, actor: Actor = agentA, agent: ActiveAgent = activeA) =>
  (route: RouteState) =>
    decideUpdateRoute(route, agent, actor, definition.routeId, patch, policy);

describe('routes', () => {
  test('a request on a new route id appends RouteRequested; revisions count definition events', () => {
    givenRoute()
      .when((route) => decideRequestRoute(route, definition))
      .then({ events: requested, existing: false });
    const history: NewEvent[] = [
      ...requested,
      {
        type: 'RouteApplied',
        data: { routeId: definition.routeId, revision: 1, node: 'n1', configVersion: 3, propagationMs: 5 },
      },
      {
        type: 'RouteUpdated',
        data: {
          routeId: definition.routeId,
          target: { host: '2001:db8::a', port: 9090 },
          options: { tlsToTarget: true },
        },
      },
    ];
    expect(givenRoute(history).state).toMatchObject({
      status: 'live',
      revision: 2,
      target: { port: 9090 },
      options: { tlsToTarget: true },
    });
    const removed = givenRoute(history, removedBecause('bye')).state;
    expect(removed).toMatchObject({ status: 'removed', revision: 2, removalReason: 'bye' });
    expect(pendingView(removed as never)).toMatchObject({ status: 'removed', statusReason: 'bye' });
  });

  test('the same request again is recognised; the same key with another request is refused', () => {
    const route = givenRoute(requested);
    route.when((state) => decideRequestRoute(state, definition)).then({ events: [], existing: true });
    route
      .when((state) => decideRequestRoute(state, { ...definition, hostname: 'other.apps.example.test' }))
      .thenRefuses('conflict', 'Idempotency-Key');
    route
      .when((state) => decideRequestRoute(state, { ...definition, target: { host: '2001:db8::a', port: 1 } }))
      .thenRefuses('conflict', 'Idempotency-Key');
  });

  test('an update makes a new revision; equal values change nothing; removed routes are gone', () => {
    const route = givenRoute(requested);
    route.when(update({ options: { tlsToTarget: false } })).then([]);
    route.when(update({ target: { host: '2001:DB8:0::A', port: 8080 } })).then([]);
    route.when(update({ target: { host: '2001:db8::a', port: 81 } })).then([
      {
        type: 'RouteUpdated',
        data: {
          routeId: definition.routeId,
          target: { host: '2001:db8::a', port: 81 },
          options: { tlsToTarget: false },
        },
      },
    ]);
    route.when(update({ options: { tlsToTarget: true } }, agentB)).thenRefuses('forbidden');
    route
      .when(update({ target: { host: '198.51.100.1', port: 81 } }))
      .thenRefuses('forbidden', 'target.host');
    route.when(update({ target: { host: '198.51.100.1', port: 81 } }, admin)).then([
      {
        type: 'RouteUpdated',
        data: {
          routeId: definition.routeId,
          target: { host: '198.51.100.1', port: 81 },
          options: { tlsToTarget: false },
        },
      },
    ]);
    givenRoute(requested, removedBecause('x'))
      .when(update({ options: {} }, admin))
      .thenRefuses('gone');
    givenRoute().when(update({}, admin)).thenRefuses('not_found');
    route
      .when(
        update({ options: { tlsToTarget: true } }, admin, { ...activeA, status: 'deregistered' } as never),
      )
      .thenRefuses('conflict', 'agentId');
  });

  test('removal: once; only by the owner agent or an admin', () => {
    const route = givenRoute(requested);
    route
      .when((state) => decideRemoveRoute(state, agentA, definition.routeId, 'bye'))
      .then(removedBecause('bye'));
    route.when((state) => decideRemoveRoute(state, agentB, definition.routeId, 'x')).thenRefuses('forbidden');
    givenRoute()
      .when((state) => decideRemoveRoute(state, admin, definition.routeId, 'x'))
      .thenRefuses('not_found');
    givenRoute(requested, removedBecause('x'))
      .when((state) => decideRemoveRoute(state, admin, definition.routeId, 'again'))
      .then([]);
  });
});

describe('host names', () => {
  const claim = { hostname: definition.hostname, routeId: definition.routeId, agentId: 'web-a' };
  const claimed: NewEvent[] = [{ type: 'HostnameClaimed', data: claim }];
  const claimedByOther = (at = t0) =>
    stored([{ type: 'HostnameClaimed', data: { ...claim, routeId: otherRouteId, agentId: 'web-b' } }], {
      aggregate: { type: 'hostname', id: 'x' },
      at,
    });
  const releasedByOther: NewEvent[] = [
    { type: 'HostnameReleased', data: { hostname: claim.hostname, routeId: otherRouteId } },
  ];
  const otherRoute = (hostname = definition.hostname) =>
    givenRoute([
      {
        type: 'RouteRequested',
        data: { ...definition, routeId: otherRouteId, agentId: 'web-b', hostname },
      },
    ]).state;
  const claiming =
    (ownerRoute: RouteState, at = t0) =>
    (state: HostnameState) =>
      decideClaim(state, ownerRoute, claim, at, 60_000);

  test('a free name is claimed; a claim by this route is a retry and decides nothing', () => {
    givenHostname().when(claiming(initialRouteState)).then(claimed);
    const mine = givenHostname(claimed);
    mine.when(claiming(initialRouteState)).then([]);
    expect(claimHeldBy(mine.state, definition.routeId)).toBe(true);
  });

  test('a name held by a live route of that name is taken: 409 naming hostname', () => {
    givenHostname(claimedByOther())
      .when(claiming(otherRoute(), new Date(t0.getTime() + 3_600_000)))
      .thenRefuses('conflict', 'hostname');
  });

  test('a claim whose route never appeared blocks only for the grace period, then is taken over', () => {
    const state = givenHostname(claimedByOther());
    state
      .when(claiming(initialRouteState, new Date(t0.getTime() + 59_999)))
      .thenRefuses('conflict', 'hostname');
    const late = decideClaim(state.state, initialRouteState, claim, new Date(t0.getTime() + 60_000), 60_000);
    expect(late).toEqual([...releasedByOther, ...claimed]);
    expect(givenHostname(claimedByOther(), late).state.owner).toMatchObject({
      routeId: definition.routeId,
    });
  });

  test('a claim left by a removed route, or by a route with another name, is stale at once', () => {
    const state = givenHostname(claimedByOther());
    const removed = givenRoute(
      [{ type: 'RouteRequested', data: { ...definition, routeId: otherRouteId, agentId: 'web-b' } }],
      [{ type: 'RouteRemoved', data: { routeId: otherRouteId, reason: 'x' } }],
    ).state;
    state.when(claiming(removed)).then([...releasedByOther, ...claimed]);
    state.when(claiming(otherRoute('elsewhere.apps.example.test'))).then([...releasedByOther, ...claimed]);
  });

  test('a released name can be claimed again; a release is only by the holding route', () => {
    const history = givenHostname(claimedByOther());
    history.when((state) => decideRelease(state, claim.hostname, definition.routeId)).then([]);
    history.when((state) => decideRelease(state, claim.hostname, otherRouteId)).then(releasedByOther);
    const released = givenHostname(claimedByOther(), releasedByOther);
    expect(released.state.owner).toBeNull();
    released.when(claiming(initialRouteState)).then(claimed);
    // A late release by an earlier owner does not free the new owner's claim.
    const reclaimed = givenHostname(claimedByOther(), releasedByOther, claimed, releasedByOther);
    expect(reclaimed.state.owner?.routeId).toBe(definition.routeId);
  });
});

describe('policies', () => {
  test('an agent requests only for itself', () => {
    expect(() => checkRequester(agentA, 'web-a')).not.toThrow();
    expect(() => checkRequester(admin, 'web-b')).not.toThrow();
    const error = refusal(() => checkRequester(agentA, 'web-b'));
    expect([error.code, error.field]).toEqual(['forbidden', 'agentId']);
  });

  test('the agent must be enrolled and not deregistered', () => {
    givenAgent()
      .when((agent) => checkAgentUsable(agent, 'x'))
      .thenRefuses('not_found');
    const enrolled: NewEvent[] = [
      {
        type: 'AgentEnrolled',
        data: {
          agentId: 'web-a',
          publicAddress: '203.0.113.7',
          labels: {},
          natsPublicKey: 'U' + 'A'.repeat(55),
          enrollmentTokenId: 't',
        },
      },
    ];
    expect(() => checkAgentUsable(givenAgent(enrolled).state, 'web-a')).not.toThrow();
    givenAgent(enrolled, [{ type: 'AgentDeregistered', data: { agentId: 'web-a', reason: 'x' } }])
      .when((agent) => checkAgentUsable(agent, 'web-a'))
      .thenRefuses('conflict', 'agentId');
  });

  test('targets: an agent only its own address (any spelling), an admin any host address', () => {
    expect(checkTarget(agentA, activeA, { host: '2001:DB8:0:0::A', port: 80 }, policy)).toEqual({
      host: '2001:db8::a',
      port: 80,
    });
    const other = refusal(() => checkTarget(agentA, activeA, { host: '10.0.0.1', port: 80 }, policy));
    expect([other.code, other.field]).toEqual(['forbidden', 'target.host']);
    expect(checkTarget(admin, activeA, { host: '10.0.0.1', port: 80 }, policy)).toEqual({
      host: '10.0.0.1',
      port: 80,
    });
    for (const host of [
      '0.0.0.0',
      '255.255.255.255',
      '224.0.0.1',
      '::',
      'ff02::1',
      '127.0.0.1',
      '169.254.169.254',
      '192.168.1.1',
      '198.51.100.250',
    ]) {
      const error = refusal(() => checkTarget(admin, activeA, { host, port: 80 }, policy));
      expect([error.code, error.field]).toEqual(['invalid', 'target.host']);
    }
  });

  test('tlsToTarget applies to http routes only', () => {
    expect(checkOptions('http', undefined)).toEqual({ tlsToTarget: false });
    expect(checkOptions('http', { tlsToTarget: true })).toEqual({ tlsToTarget: true });
    expect(checkOptions('tls-sni', {})).toEqual({ tlsToTarget: false });
    const error = refusal(() => checkOptions('tls-sni', { tlsToTarget: true }));
    expect([error.code, error.field]).toEqual(['invalid', 'options.tlsToTarget']);
  });
});
