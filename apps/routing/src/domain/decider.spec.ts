import {
  addressPolicy,
  parseAddressRange,
  type DomainError,
  type NewEvent,
  type StoredEvent,
} from '#contracts';
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
  type RouteDefinition,
} from './decider.js';

const t0 = new Date('2030-01-01T00:00:00.000Z');
/** The agents here sit in documentation ranges, which a test installation allows, as it allows 10/8. */
const policy = addressPolicy(
  ['2001:db8::/32', '192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24', '10.0.0.0/8'].map(parseAddressRange),
  ['198.51.100.250'],
);
let sequence = 0;

function stored(events: NewEvent[], at = t0, causationId: string | null = null): StoredEvent[] {
  return events.map((event) => ({
    id: `e${++sequence}`,
    type: event.type,
    schemaVersion: 1,
    aggregate: { type: 'route', id: 'x' },
    occurredAt: at.toISOString(),
    actor: { kind: 'system', id: 'test' },
    correlationId: 'c',
    causationId,
    data: event.data,
    sequence,
    subject: 'events.route.x',
  }));
}

function refusal(run: () => unknown): DomainError {
  try {
    run();
  } catch (error) {
    return error as DomainError;
  }
  throw new Error('expected a refusal');
}

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

const requested = () => stored(decideRequestRoute(initialRouteState, definition).events);

describe('routes', () => {
  test('a request on a new route id appends RouteRequested; revisions count definition events', () => {
    const decision = decideRequestRoute(initialRouteState, definition);
    expect(decision).toEqual({ events: [{ type: 'RouteRequested', data: definition }], existing: false });
    const history = [
      ...requested(),
      ...stored([
        {
          type: 'RouteApplied',
          data: { routeId: definition.routeId, revision: 1, node: 'n1', configVersion: 3, propagationMs: 5 },
        },
      ]),
      ...stored([
        {
          type: 'RouteUpdated',
          data: {
            routeId: definition.routeId,
            target: { host: '2001:db8::a', port: 9090 },
            options: { tlsToTarget: true },
          },
        },
      ]),
    ];
    expect(foldRoute(history)).toMatchObject({
      status: 'live',
      revision: 2,
      target: { port: 9090 },
      options: { tlsToTarget: true },
    });
    const removed = foldRoute([
      ...history,
      ...stored([{ type: 'RouteRemoved', data: { routeId: definition.routeId, reason: 'bye' } }]),
    ]);
    expect(removed).toMatchObject({ status: 'removed', revision: 2, removalReason: 'bye' });
    expect(pendingView(removed as never)).toMatchObject({ status: 'removed', statusReason: 'bye' });
  });

  test('the same request again is recognised; the same key with another request is refused', () => {
    const route = foldRoute(requested());
    expect(decideRequestRoute(route, definition)).toEqual({ events: [], existing: true });
    const error = refusal(() =>
      decideRequestRoute(route, { ...definition, hostname: 'other.apps.example.test' }),
    );
    expect([error.code, error.field]).toEqual(['conflict', 'Idempotency-Key']);
    expect(
      refusal(() => decideRequestRoute(route, { ...definition, target: { host: '2001:db8::a', port: 1 } }))
        .code,
    ).toBe('conflict');
  });

  test('an update makes a new revision; equal values change nothing; removed routes are gone', () => {
    const route = foldRoute(requested());
    expect(
      decideUpdateRoute(
        route,
        activeA,
        agentA,
        definition.routeId,
        { options: { tlsToTarget: false } },
        policy,
      ),
    ).toEqual([]);
    expect(
      decideUpdateRoute(
        route,
        activeA,
        agentA,
        definition.routeId,
        {
          target: { host: '2001:DB8:0::A', port: 8080 },
        },
        policy,
      ),
    ).toEqual([]);
    expect(
      decideUpdateRoute(
        route,
        activeA,
        agentA,
        definition.routeId,
        {
          target: { host: '2001:db8::a', port: 81 },
        },
        policy,
      ),
    ).toEqual([
      {
        type: 'RouteUpdated',
        data: {
          routeId: definition.routeId,
          target: { host: '2001:db8::a', port: 81 },
          options: { tlsToTarget: false },
        },
      },
    ]);
    const forbidden = refusal(() =>
      decideUpdateRoute(
        route,
        activeA,
        agentB,
        definition.routeId,
        { options: { tlsToTarget: true } },
        policy,
      ),
    );
    expect(forbidden.code).toBe('forbidden');
    const elsewhere = refusal(() =>
      decideUpdateRoute(
        route,
        activeA,
        agentA,
        definition.routeId,
        {
          target: { host: '198.51.100.1', port: 81 },
        },
        policy,
      ),
    );
    expect([elsewhere.code, elsewhere.field]).toEqual(['forbidden', 'target.host']);
    expect(
      decideUpdateRoute(
        route,
        activeA,
        admin,
        definition.routeId,
        {
          target: { host: '198.51.100.1', port: 81 },
        },
        policy,
      ),
    ).toHaveLength(1);
    const gone = foldRoute([
      ...requested(),
      ...stored([{ type: 'RouteRemoved', data: { routeId: definition.routeId, reason: 'x' } }]),
    ]);
    expect(
      refusal(() => decideUpdateRoute(gone, activeA, admin, definition.routeId, { options: {} }, policy))
        .code,
    ).toBe('gone');
    expect(
      refusal(() => decideUpdateRoute(initialRouteState, activeA, admin, definition.routeId, {}, policy))
        .code,
    ).toBe('not_found');
    const deregistered = refusal(() =>
      decideUpdateRoute(
        route,
        { ...activeA, status: 'deregistered' } as never,
        admin,
        definition.routeId,
        {
          options: { tlsToTarget: true },
        },
        policy,
      ),
    );
    expect([deregistered.code, deregistered.field]).toEqual(['conflict', 'agentId']);
  });

  test('removal: once; only by the owner agent or an admin', () => {
    const route = foldRoute(requested());
    expect(decideRemoveRoute(route, agentA, definition.routeId, 'bye')).toEqual([
      { type: 'RouteRemoved', data: { routeId: definition.routeId, reason: 'bye' } },
    ]);
    expect(refusal(() => decideRemoveRoute(route, agentB, definition.routeId, 'x')).code).toBe('forbidden');
    expect(refusal(() => decideRemoveRoute(initialRouteState, admin, definition.routeId, 'x')).code).toBe(
      'not_found',
    );
    const gone = foldRoute([
      ...requested(),
      ...stored(decideRemoveRoute(route, admin, definition.routeId, 'x')),
    ]);
    expect(decideRemoveRoute(gone, admin, definition.routeId, 'again')).toEqual([]);
  });
});

describe('host names', () => {
  const claim = { hostname: definition.hostname, routeId: definition.routeId, agentId: 'web-a' };
  const claimedByOther = (at = t0) =>
    stored([{ type: 'HostnameClaimed', data: { ...claim, routeId: otherRouteId, agentId: 'web-b' } }], at);
  const otherRoute = (hostname = definition.hostname) =>
    foldRoute(
      stored([
        {
          type: 'RouteRequested',
          data: { ...definition, routeId: otherRouteId, agentId: 'web-b', hostname },
        },
      ]),
    );

  test('a free name is claimed; a claim by this route is a retry and decides nothing', () => {
    expect(decideClaim(foldHostname([]), initialRouteState, claim, t0, 60_000)).toEqual([
      { type: 'HostnameClaimed', data: claim },
    ]);
    const mine = foldHostname(stored([{ type: 'HostnameClaimed', data: claim }]));
    expect(decideClaim(mine, initialRouteState, claim, t0, 60_000)).toEqual([]);
    expect(claimHeldBy(mine, definition.routeId)).toBe(true);
  });

  test('a name held by a live route of that name is taken: 409 naming hostname', () => {
    const error = refusal(() =>
      decideClaim(
        foldHostname(claimedByOther()),
        otherRoute(),
        claim,
        new Date(t0.getTime() + 3_600_000),
        60_000,
      ),
    );
    expect([error.code, error.field]).toEqual(['conflict', 'hostname']);
  });

  test('a claim whose route never appeared blocks only for the grace period, then is taken over', () => {
    const state = foldHostname(claimedByOther());
    const early = refusal(() =>
      decideClaim(state, initialRouteState, claim, new Date(t0.getTime() + 59_999), 60_000),
    );
    expect([early.code, early.field]).toEqual(['conflict', 'hostname']);
    const late = decideClaim(state, initialRouteState, claim, new Date(t0.getTime() + 60_000), 60_000);
    expect(late).toEqual([
      { type: 'HostnameReleased', data: { hostname: claim.hostname, routeId: otherRouteId } },
      { type: 'HostnameClaimed', data: claim },
    ]);
    expect(foldHostname([...claimedByOther(), ...stored(late)]).owner).toMatchObject({
      routeId: definition.routeId,
    });
  });

  test('a claim left by a removed route, or by a route with another name, is stale at once', () => {
    const state = foldHostname(claimedByOther());
    const removed = foldRoute([
      ...stored([
        { type: 'RouteRequested', data: { ...definition, routeId: otherRouteId, agentId: 'web-b' } },
      ]),
      ...stored([{ type: 'RouteRemoved', data: { routeId: otherRouteId, reason: 'x' } }]),
    ]);
    expect(decideClaim(state, removed, claim, t0, 60_000)).toHaveLength(2);
    expect(decideClaim(state, otherRoute('elsewhere.apps.example.test'), claim, t0, 60_000)).toHaveLength(2);
  });

  test('a released name can be claimed again; a release is only by the holding route', () => {
    const history = claimedByOther();
    expect(decideRelease(foldHostname(history), claim.hostname, definition.routeId)).toEqual([]);
    const release = decideRelease(foldHostname(history), claim.hostname, otherRouteId);
    expect(release).toEqual([
      { type: 'HostnameReleased', data: { hostname: claim.hostname, routeId: otherRouteId } },
    ]);
    const released = foldHostname([...history, ...stored(release)]);
    expect(released.owner).toBeNull();
    expect(decideClaim(released, initialRouteState, claim, t0, 60_000)).toEqual([
      { type: 'HostnameClaimed', data: claim },
    ]);
    // A late release by an earlier owner does not free the new owner's claim.
    const reclaimed = foldHostname([
      ...history,
      ...stored(release),
      ...stored([{ type: 'HostnameClaimed', data: claim }]),
      ...stored(release),
    ]);
    expect(reclaimed.owner?.routeId).toBe(definition.routeId);
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
    expect(refusal(() => checkAgentUsable(foldAgent([]), 'x')).code).toBe('not_found');
    const enrolled = stored([
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
    ]);
    expect(() => checkAgentUsable(foldAgent(enrolled), 'web-a')).not.toThrow();
    const gone = [
      ...enrolled,
      ...stored([{ type: 'AgentDeregistered', data: { agentId: 'web-a', reason: 'x' } }]),
    ];
    const error = refusal(() => checkAgentUsable(foldAgent(gone), 'web-a'));
    expect([error.code, error.field]).toEqual(['conflict', 'agentId']);
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
