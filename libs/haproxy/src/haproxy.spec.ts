import { describe, expect, it } from '@jest/globals';
import { hostname } from '#contracts';
import {
  ACME_CHALLENGE_PATH,
  BACKENDS,
  STICK_TABLES,
  MAX_HOST_NAME_LENGTH,
  RouteCheckCache,
  assertMapWord,
  desiredState,
  desiredStructure,
  diffKnownMap,
  diffMap,
  diffStructure,
  isEmptyPlan,
  mapValue,
  normalize,
  parseMapValue,
  plan,
  renderMapFile,
  routeProblem,
  targetKey,
  type MapEntry,
  type MapName,
  type HttpRequestRule,
  type MapPlan,
  type ProxyLayout,
  type RouteSpec,
  type StructuralChange,
  WELL_FORMED_HOST,
} from './index.js';

const layout: ProxyLayout = {
  mapsDir: '/etc/haproxy/maps',
  certsDir: '/etc/haproxy/ssl/',
  caFile: '/etc/haproxy/ca/cloudlunacy-ca.pem',
  http: { port: 80 },
  https: { port: 443 },
  tlsSni: { port: 27017 },
  publicHttpsPort: 443,
};

let counter = 0;
function route(overrides: Partial<RouteSpec> = {}): RouteSpec {
  counter++;
  return {
    routeId: `00000000-0000-4000-8000-${String(counter).padStart(12, '0')}`,
    revision: 1,
    agentId: 'agent-1',
    kind: 'http',
    hostname: `app${counter}.apps.example.com`,
    target: { host: '10.0.0.5', port: 8080 },
    options: { tlsToTarget: false },
    ...overrides,
  };
}

describe('map entries of routes', () => {
  it.each<[RouteSpec['kind'], RouteSpec['options'], MapName, string]>([
    ['http', { tlsToTarget: false }, 'hosts', 'be_dyn_http|10.0.0.5|8080'],
    ['http', { tlsToTarget: true }, 'hosts', 'be_dyn_https|10.0.0.5|8080'],
    ['tls-sni', { tlsToTarget: false }, 'sni', 'be_dyn_tcp|10.0.0.5|8080'],
  ])('%s route (%o) goes to the %s map as %s', (kind, options, map, value) => {
    const r = route({ kind, options });
    const state = desiredState([r], layout);
    expect(state.rejected).toEqual([]);
    expect(state.bindings).toEqual([{ route: r, map, key: r.hostname, value }]);
    expect([...state.maps[map].entries()]).toEqual([[r.hostname, value]]);
  });

  it('keeps IPv6 targets intact in the value', () => {
    expect(mapValue(BACKENDS.tcp, { host: '2001:db8::7', port: 27017 })).toBe('be_dyn_tcp|2001:db8::7|27017');
    expect(parseMapValue('be_dyn_tcp|2001:db8::7|27017')).toEqual({
      backend: 'be_dyn_tcp',
      host: '2001:db8::7',
      port: 27017,
    });
    expect(parseMapValue('be_dyn_tcp|1.2.3.4')).toBeUndefined();
  });

  it('gives a host name to the smaller routeId and refuses the other; http and SNI maps are separate', () => {
    const a = route({ routeId: '00000000-0000-4000-8000-00000000000a', hostname: 'same.example.com' });
    const b = route({ routeId: '00000000-0000-4000-8000-00000000000b', hostname: 'same.example.com' });
    const sni = route({ hostname: 'same.example.com', kind: 'tls-sni' });
    const state = desiredState([b, sni, a], layout);
    expect(state.bindings.map((binding) => binding.route.routeId).sort()).toEqual(
      [a.routeId, sni.routeId].sort(),
    );
    expect(state.rejected).toEqual([
      { route: b, reason: `host name same.example.com is already routed by route ${a.routeId}` },
    ]);
  });

  it('renders the map file in the order of the map, one line per entry', () => {
    const entries = new Map([
      ['b.example.com', 'be_dyn_http|10.0.0.2|80'],
      ['a.example.com', 'be_dyn_tcp|10.0.0.1|443'],
    ]);
    expect(renderMapFile(entries)).toBe(
      'b.example.com be_dyn_http|10.0.0.2|80\na.example.com be_dyn_tcp|10.0.0.1|443\n',
    );
    expect(renderMapFile(new Map())).toBe('# no routes\n');
  });
});

describe('hostile input never reaches a map line or haproxy.cfg', () => {
  const hostile: [string, Partial<RouteSpec>][] = [
    ['newline in the host name', { hostname: 'a.example.com\nb.example.com be_dyn_http|1.1.1.1|1' }],
    ['carriage return', { hostname: 'a.example.com\r' }],
    ['space', { hostname: 'a.example.com be_dyn_http|1.1.1.1|1' }],
    ['tab', { hostname: 'a.example.com\tx' }],
    ['comment sign', { hostname: 'a.example.com#x' }],
    ['pipe', { hostname: 'a|b.example.com' }],
    ['sample expression', { hostname: '%[req.hdr(x)].example.com' }],
    ['upper case', { hostname: 'App.example.com' }],
    ['wildcard', { hostname: '*.example.com' }],
    ['trailing dot', { hostname: 'a.example.com.' }],
    ['too long', { hostname: `${'a'.repeat(63)}.`.repeat(4) + 'com' }],
    ['label too long', { hostname: `${'a'.repeat(64)}.example.com` }],
    ['unicode', { hostname: 'bücher.example.com' }],
    ['NUL', { hostname: 'a\u0000.example.com' }],
    ['empty', { hostname: '' }],
    ['name as target', { target: { host: 'evil.example.com', port: 80 } }],
    ['target with a space', { target: { host: '10.0.0.1 be_x', port: 80 } }],
    ['target with a newline', { target: { host: '10.0.0.1\n', port: 80 } }],
    ['target with a pipe', { target: { host: '10.0.0.1|9', port: 80 } }],
    ['IPv6 zone id', { target: { host: 'fe80::1%eth0', port: 80 } }],
    ['port 0', { target: { host: '10.0.0.1', port: 0 } }],
    ['port 65536', { target: { host: '10.0.0.1', port: 65536 } }],
    ['fractional port', { target: { host: '10.0.0.1', port: 80.5 } }],
    ['bad agent id', { agentId: 'Agent One' }],
    ['bad route id', { routeId: 'not-a-uuid\n' }],
    ['revision 0', { revision: 0 }],
    ['unknown kind', { kind: 'udp' as RouteSpec['kind'] }],
  ];

  it.each(hostile)('refuses a route with %s', (_name, overrides) => {
    const bad = route(overrides);
    const good = route();
    expect(routeProblem(bad)).toEqual(expect.any(String));
    const state = desiredState([bad, good], layout);
    expect(state.rejected.map((rejection) => rejection.route)).toEqual([bad]);
    expect(state.rejected[0].reason).not.toMatch(/[\n\r\t]/);
    expect([...state.maps.hosts.keys(), ...state.maps.sni.keys()]).toEqual([good.hostname]);
    const file = renderMapFile(state.maps.hosts);
    expect(file.split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('refuses elements that are not routes at all', () => {
    const good = route();
    const state = desiredState([null, 'x', 42, good] as unknown as RouteSpec[], layout);
    expect(state.bindings.map((binding) => binding.route)).toEqual([good]);
    expect(state.rejected).toHaveLength(3);
  });

  it.each(['a b', 'a\nb', 'a#b', 'a|b', '%[x]', 'ä', '', 'x'.repeat(254), 'a"b', 'a\\b'])(
    'assertMapWord refuses %j',
    (word) => {
      expect(() => assertMapWord(word, 'field')).toThrow(/field/);
    },
  );

  it('refuses to render a map whose entries did not come from valid routes', () => {
    expect(() => renderMapFile(new Map([['a.example.com', 'be_dyn_http|1.1.1.1 x|80']]))).toThrow();
    expect(() => renderMapFile(new Map([['a.example.com\n', 'be_dyn_http|1.1.1.1|80']]))).toThrow();
    expect(() => renderMapFile(new Map([['a.example.com', 'be_dyn_http']]))).toThrow();
  });

  it('refuses layout paths that could break a configuration line', () => {
    expect(() => desiredStructure({ ...layout, mapsDir: '/etc/haproxy/maps dir' })).toThrow(/mapsDir/);
    expect(() => desiredStructure({ ...layout, caFile: '/ca.pem\nglobal' })).toThrow(/caFile/);
    expect(() => desiredStructure({ ...layout, certsDir: 'relative/' })).toThrow(/certsDir/);
    expect(() => desiredStructure({ ...layout, https: { address: '0.0.0.0 ssl', port: 443 } })).toThrow();
  });
});

describe('map diff', () => {
  const entry = (key: string, value: string) => ({ key, value });
  it.each<[string, [string, string][], MapEntry[], MapPlan]>([
    ['nothing to do', [['a', '1']], [entry('a', '1')], { add: [], set: [], del: [] }],
    ['add a missing key', [['a', '1']], [], { add: [entry('a', '1')], set: [], del: [] }],
    ['change a value', [['a', '2']], [entry('a', '1')], { add: [], set: [entry('a', '2')], del: [] }],
    ['remove an unknown key', [], [entry('x', '1')], { add: [], set: [], del: ['x'] }],
    [
      'duplicates are removed and added once',
      [['a', '1']],
      [entry('a', '1'), entry('a', '2')],
      { add: [entry('a', '1')], set: [], del: ['a'] },
    ],
    [
      'duplicates of an unwanted key',
      [],
      [entry('x', '1'), entry('x', '1')],
      { add: [], set: [], del: ['x'] },
    ],
    [
      'mixed, sorted by key',
      [
        ['c', '3'],
        ['a', '1'],
        ['b', '9'],
      ],
      [entry('b', '2'), entry('d', '4')],
      { add: [entry('a', '1'), entry('c', '3')], set: [entry('b', '9')], del: ['d'] },
    ],
  ])('%s', (_name, desired, actual, expected) => {
    expect(diffMap(new Map(desired), actual)).toEqual(expected);
  });
});

describe('diff against a map known to have no duplicates', () => {
  it.each<[[string, string][], [string, string][], MapPlan]>([
    [[['a', '1']], [['a', '1']], { add: [], set: [], del: [] }],
    [[['a', '1']], [], { add: [{ key: 'a', value: '1' }], set: [], del: [] }],
    [[['a', '2']], [['a', '1']], { add: [], set: [{ key: 'a', value: '2' }], del: [] }],
    [[], [['x', '1']], { add: [], set: [], del: ['x'] }],
  ])('%j against %j', (desired, actual, expected) => {
    const wanted = new Map(desired);
    const present = new Map(actual);
    expect(diffKnownMap(wanted, present)).toEqual(expected);
    const entries = [...present].map(([key, value]) => ({ key, value }));
    expect(diffKnownMap(wanted, present)).toEqual(diffMap(wanted, entries));
  });
});

describe('validation cache', () => {
  it('reuses verdicts for unchanged routes and checks changed ones again', () => {
    const cache = new RouteCheckCache();
    const a = route();
    const b = route();
    expect(desiredState([a, b], layout, cache).bindings).toHaveLength(2);
    expect(cache.size).toBe(2);
    const hostileB = { ...b, hostname: 'b.example.com\nx' };
    const second = desiredState([a, hostileB], layout, cache);
    expect(second.bindings.map((binding) => binding.route)).toEqual([a]);
    expect(second.rejected.map((rejection) => rejection.route)).toEqual([hostileB]);
    expect(cache.size).toBe(2);
    const extraField = { ...a, extra: '\n' } as RouteSpec;
    expect(desiredState([extraField], layout, cache).rejected).toHaveLength(1);
  });
});

describe('structural diff', () => {
  const desired = desiredStructure(layout);
  /** What the Data Plane API answers for the desired sections: empty lists omitted, extra nulls. */
  const asRead = () => ({
    frontends: desired.frontends.map((frontend) => ({
      ...structuredClone(frontend),
      acl_list: [],
      tcp_request_rule_list: frontend.tcp_request_rule_list.length
        ? frontend.tcp_request_rule_list
        : undefined,
      maxconn: null,
    })),
    backends: desired.backends.map((backend) => ({ ...structuredClone(backend), retries: null })),
  });

  it('finds nothing to do when the API reports the desired sections (and leaves unknown sections alone)', () => {
    const actual = asRead();
    actual.backends.push({ name: 'be_hand_made', mode: 'http', servers: {} } as never);
    expect(diffStructure(desired, actual)).toEqual([]);
  });

  it.each<[string, (actual: ReturnType<typeof asRead>) => void, Partial<StructuralChange>[]]>([
    [
      'a missing backend is created',
      (actual: ReturnType<typeof asRead>) => {
        actual.backends = actual.backends.filter((backend) => backend.name !== 'be_dyn_tcp');
      },
      [{ action: 'create', section: 'backend', name: 'be_dyn_tcp', differences: ['missing'] }],
    ],
    [
      'a removed routing rule is restored',
      (actual: ReturnType<typeof asRead>) => {
        actual.frontends[1].http_request_rule_list.splice(2, 1);
      },
      [{ action: 'replace', section: 'frontend', name: 'fe_https', differences: ['http_request_rule_list'] }],
    ],
    [
      'a changed bind port is restored',
      (actual: ReturnType<typeof asRead>) => {
        actual.frontends[2].binds.tls_sni.port = 27018;
      },
      [{ action: 'replace', section: 'frontend', name: 'fe_tls_sni', differences: ['binds'] }],
    ],
    [
      'a hand-added server is removed',
      (actual: ReturnType<typeof asRead>) => {
        actual.backends[0].servers.extra = { name: 'extra', address: '10.0.0.9', port: 80 };
      },
      [{ action: 'replace', section: 'backend', name: 'be_dyn_http', differences: ['servers'] }],
    ],
    [
      'a hand-added option is removed, and backends come before frontends',
      (actual: ReturnType<typeof asRead>) => {
        (actual.frontends[0] as Record<string, unknown>).maxconn = 10;
        (actual.backends[1].servers.dyn as unknown as Record<string, unknown>).verify = 'none';
      },
      [
        { action: 'replace', section: 'backend', name: 'be_dyn_https', differences: ['servers'] },
        { action: 'replace', section: 'frontend', name: 'fe_http', differences: ['maxconn'] },
      ],
    ],
  ])('%s', (_name, mutate, expected) => {
    const actual = asRead();
    mutate(actual);
    const changes = diffStructure(desired, actual);
    expect(
      changes.map(({ action, section, name, differences }) => ({ action, section, name, differences })),
    ).toEqual(expected);
    for (const change of changes) {
      const wanted = [...desired.frontends, ...desired.backends].find((s) => s.name === change.name);
      expect(change.body).toEqual(wanted);
    }
  });

  it('puts the public HTTPS port in the redirect only when it is not 443', () => {
    const redirect = (port: number) =>
      desiredStructure({ ...layout, publicHttpsPort: port })
        .frontends[0].http_request_rule_list.filter((rule) => rule.type === 'redirect')
        .map((rule) => rule.redir_value);
    expect(redirect(443)).toEqual(['https://%[req.fhdr(host),lower,word(1,:)]%[pathq]']);
    expect(redirect(8443)).toEqual(['https://%[req.fhdr(host),lower,word(1,:)]:8443%[pathq]']);
  });

  it('reads the Host header whole everywhere (req.hdr splits it at commas and takes the last value)', () => {
    const text = JSON.stringify(desired);
    expect(text).not.toMatch(/req\.hdr\(/);
    expect(text).not.toMatch(/\bhdr\(host\)/);
    const https = desired.backends.find((backend) => backend.name === BACKENDS.https)!;
    expect(https.servers.dyn.sni).toBe('req.fhdr(host),lower,word(1,:)');
    for (const frontend of desired.frontends.filter((section) => section.mode === 'http')) {
      const lookup = frontend.http_request_rule_list.find((rule) => rule.type === 'set-var');
      expect(lookup?.var_expr).toBe('req.fhdr(host),lower,word(1,:),map(/etc/haproxy/maps/hosts.map)');
    }
  });

  it('refuses more than one Host header or a comma in it with 400, before any rule reads the host', () => {
    for (const frontend of desired.frontends.filter((section) => section.mode === 'http')) {
      expect(frontend.http_request_rule_list[0]).toEqual({
        type: 'deny',
        deny_status: 400,
        cond: 'if',
        cond_test: '{ req.fhdr_cnt(host) gt 1 } or { req.fhdr(host) -m sub , }',
      });
      const readsHost = (rule: HttpRequestRule) => /fhdr\(host\)/.test(JSON.stringify(rule));
      // No rule reads the Host before the one that refuses ambiguous ones.
      expect(frontend.http_request_rule_list.findIndex(readsHost)).toBe(0);
    }
  });

  it('redirects plain HTTP only for a well-formed Host; anything else but an ACME challenge gets 400', () => {
    const rules = desired.frontends[0].http_request_rule_list;
    expect(rules.map((rule) => rule.type)).toEqual([
      'deny',
      'deny',
      'redirect',
      'set-var',
      'return',
      'set-dst',
      'set-dst-port',
      'track-sc',
    ]);
    // Streams to the route's target are counted by "<ip>|<port>" (a drain reads them).
    expect(rules.at(-1)).toEqual({
      type: 'track-sc',
      track_sc_stick_counter: 0,
      track_sc_key: 'var(txn.route),field(2,|,2)',
      track_sc_table: STICK_TABLES.targets,
    });
    expect(targetKey('10.0.0.5', 8080)).toBe('10.0.0.5|8080');
    expect(rules[1]).toEqual({
      type: 'deny',
      deny_status: 400,
      cond: 'unless',
      cond_test:
        `{ path_beg ${ACME_CHALLENGE_PATH} } or { req.fhdr(host) -m reg -i ${WELL_FORMED_HOST} } ` +
        '{ req.fhdr(host),word(1,:) -m len 1:253 }',
    });
    expect(rules[2]).toEqual(
      expect.objectContaining({ cond: 'unless', cond_test: `{ path_beg ${ACME_CHALLENGE_PATH} }` }),
    );
    // One configuration word: the emulator and HAProxy split cond_test at whitespace, and quotes,
    // backslashes and "#" would be read by the configuration parser.
    expect(WELL_FORMED_HOST).toMatch(/^[^\s"'\\#]+$/);
  });

  /** What the 400 rule lets through to the redirect: the pattern (PCRE and JS agree on it) and the length. */
  const wellFormed = (host: string) =>
    new RegExp(WELL_FORMED_HOST, 'i').test(host) && host.split(':')[0].length <= MAX_HOST_NAME_LENGTH;
  const label63 = 'a'.repeat(63);
  it.each<[string, boolean]>([
    ['alpha.apps.example.com', true],
    ['Alpha.APPS.example.com', true],
    ['alpha.apps.example.com:8443', true],
    ['a', true],
    ['a:1', true],
    ['a:65535', true],
    ['10.0.0.7', true],
    ['x-1.y2.z', true],
    [`${label63}.example.com`, true],
    [[label63, label63, label63, 'a'.repeat(61)].join('.'), true],
    [[label63, label63, label63, 'a'.repeat(62)].join('.'), false],
    [`${'a'.repeat(64)}.example.com`, false],
    ['evil.example/x?', false],
    ['evil.example/', false],
    ['a b', false],
    ['', false],
    ['alpha.example.com,beta.example.com', false],
    ['alpha.example.com.', false],
    ['.alpha.example.com', false],
    ['alpha..example.com', false],
    ['-alpha.example.com', false],
    ['alpha-.example.com', false],
    ['alpha_x.example.com', false],
    ['a:', false],
    ['a:0', false],
    ['a:080', false],
    ['a:65536', false],
    ['a:99999', false],
    ['a:1:2', false],
    ['[::1]', false],
    ['[::1]:80', false],
    ['user@alpha.example.com', false],
    ['alpha.example.com\nx', false],
    ['alpha.example.com%2f', false],
    ['*.example.com', false],
    ['bücher.example', false],
  ])('Host %j is well-formed: %s', (host, expected) => {
    expect(wellFormed(host)).toBe(expected);
  });

  it('accepts every host name the route schemas accept', () => {
    for (const name of ['a', 'a.b', 'shop.apps.example.com', `${label63}.x`, '0.0.0.0', 'x--y.z']) {
      expect(hostname.safeParse(name).success).toBe(true);
      expect(wellFormed(name)).toBe(true);
      expect(wellFormed(`${name}:443`)).toBe(true);
    }
  });

  it('normalises away what carries no information', () => {
    expect(
      normalize({ b: [], a: { x: null, y: false, z: '' }, c: 0, index: 3, d: [{ e: undefined }] }),
    ).toEqual({
      c: 0,
      d: [{}],
    });
  });
});

describe('plan', () => {
  it('separates structural changes from runtime map changes', () => {
    const r1 = route({ hostname: 'one.example.com' });
    const r2 = route({ hostname: 'db.mongodb.example.com', kind: 'tls-sni' });
    const desired = desiredState([r1, r2], layout);
    const actual = {
      structure: { frontends: desired.structure.frontends, backends: desired.structure.backends },
      maps: {
        hosts: { entries: [{ key: 'gone.example.com', value: 'be_dyn_http|10.0.0.1|80' }] },
        sni: { entries: [] },
      },
    };
    const result = plan(desired, actual);
    expect(result.structural).toEqual([]);
    expect(result.maps).toEqual({
      hosts: {
        add: [{ key: 'one.example.com', value: 'be_dyn_http|10.0.0.5|8080' }],
        set: [],
        del: ['gone.example.com'],
      },
      sni: { add: [{ key: 'db.mongodb.example.com', value: 'be_dyn_tcp|10.0.0.5|8080' }], set: [], del: [] },
    });
    expect(isEmptyPlan(result)).toBe(false);
    const converged = plan(desired, {
      structure: actual.structure,
      maps: {
        hosts: { entries: [...desired.maps.hosts].map(([key, value]) => ({ key, value })) },
        sni: { entries: [...desired.maps.sni].map(([key, value]) => ({ key, value })) },
      },
    });
    expect(isEmptyPlan(converged)).toBe(true);
  });

  it('plans nothing for what was not observed', () => {
    const desired = desiredState([route({ hostname: 'one.example.com' })], layout);
    const structureOnly = plan(desired, { structure: { frontends: [], backends: [] } });
    expect(structureOnly.structural.map((change) => `${change.action} ${change.name}`)).toEqual([
      'create be_dyn_http',
      'create be_dyn_https',
      'create be_dyn_tcp',
      'create be_no_route',
      'create be_no_route_tcp',
      'create st_targets',
      'create fe_http',
      'create fe_https',
      'create fe_tls_sni',
    ]);
    expect(structureOnly.maps).toBeUndefined();
    const mapsOnly = plan(desired, { maps: { hosts: { entries: [] }, sni: { entries: [] } } });
    expect(mapsOnly.structural).toEqual([]);
    expect(mapsOnly.maps?.hosts.add).toEqual([
      { key: 'one.example.com', value: 'be_dyn_http|10.0.0.5|8080' },
    ]);
  });

  it('plans a map verified last against what was verified (no duplicates to repair)', () => {
    const desired = desiredState([route({ hostname: 'one.example.com' })], layout);
    const verified = new Map([
      ['one.example.com', 'be_dyn_http|10.0.0.9|80'],
      ['gone.example.com', 'be_dyn_http|10.0.0.1|80'],
    ]);
    const result = plan(desired, { maps: { hosts: { verified }, sni: { verified: new Map() } } });
    expect(result.maps).toEqual({
      hosts: {
        add: [],
        set: [{ key: 'one.example.com', value: 'be_dyn_http|10.0.0.5|8080' }],
        del: ['gone.example.com'],
      },
      sni: { add: [], set: [], del: [] },
    });
  });
});
