/** The haproxy.cfg model of the emulator: pure parsing, serialising and editing (no servers). */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  addSection,
  findSection,
  getVersion,
  parseConfig,
  serializeConfig,
  setVersion,
  tokenize,
  unquote,
} from '../dataplane-emulator/cfg/document.js';
import {
  CHILD_CODEC,
  childrenOf,
  formatTime,
  insertChild,
  parseBackendBase,
  parseFrontendBase,
  parseTime,
  removeChildAt,
  replaceChildren,
  setBaseLines,
  frontendBaseLines,
} from '../dataplane-emulator/cfg/objects.js';

const base = readFileSync(resolve(process.cwd(), 'deploy/haproxy/haproxy.cfg'), 'utf8');

describe('haproxy.cfg document', () => {
  it('round-trips deploy/haproxy/haproxy.cfg byte for byte', () => {
    const document = parseConfig(base);
    expect(serializeConfig(document)).toBe(base);
    expect(document.sections.map((section) => `${section.type} ${section.name}`.trim())).toEqual([
      'global',
      'defaults',
      'frontend fe_http',
      'frontend fe_https',
      'frontend fe_tls_sni',
      'backend be_dyn_http',
      'backend be_dyn_https',
      'backend be_dyn_tcp',
      'backend be_no_route',
      'backend be_no_route_tcp',
      'backend st_targets',
    ]);
  });

  it('round-trips files without a final newline, with tabs and comments', () => {
    const text = '# hello\nglobal\n\tdaemon # inline\n\n  # comment\nbackend b\n\tserver s1 10.0.0.1:80';
    expect(serializeConfig(parseConfig(text))).toBe(text);
  });

  it('reads _version (1 when absent) and bumps it in place', () => {
    const document = parseConfig(base);
    expect(getVersion(document)).toBe(1);
    setVersion(document, 42);
    expect(serializeConfig(document).split('\n')[0]).toBe('# _version=42');
    expect(getVersion(parseConfig('global\n'))).toBe(1);
    const missing = parseConfig('global\n');
    setVersion(missing, 2);
    expect(serializeConfig(missing)).toBe('# _version=2\nglobal\n');
  });

  it('tokenises quotes, escapes and comments', () => {
    expect(tokenize('  http-request return status 503 string "no route: x y" # c')).toEqual([
      'http-request',
      'return',
      'status',
      '503',
      'string',
      '"no route: x y"',
    ]);
    expect(unquote('"a \\"b\\" c"')).toBe('a "b" c');
    expect(tokenize('acl a path_beg /x\\ y')).toEqual(['acl', 'a', 'path_beg', '/x\\ y']);
  });
});

describe('objects of the subset', () => {
  const document = parseConfig(base);

  it('reads the frontends, binds and rules of the base configuration', () => {
    const https = findSection(document, 'frontend', 'fe_https')!;
    expect(parseFrontendBase(https)).toEqual({
      name: 'fe_https',
      mode: 'http',
      default_backend: 'be_no_route',
    });
    expect(childrenOf(https, 'bind').map((child) => child.object)).toEqual([
      {
        name: 'https',
        port: 443,
        ssl: true,
        ssl_certificate: '/etc/haproxy/ssl/',
        alpn: 'h2,http/1.1',
      },
    ]);
    expect(childrenOf(https, 'backend_switching_rule')[0].object).toEqual({
      name: '%[var(txn.route),word(1,|)]',
    });
    const hostsMap = '/etc/haproxy/maps/hosts.map';
    const ambiguousHost = {
      type: 'deny',
      deny_status: 400,
      cond: 'if',
      cond_test: '{ req.fhdr_cnt(host) gt 1 } or { req.fhdr(host) -m sub , }',
    };
    expect(childrenOf(https, 'http_request_rule').map((child) => child.object)).toEqual([
      ambiguousHost,
      {
        type: 'set-var',
        var_scope: 'txn',
        var_name: 'route',
        var_expr: `req.fhdr(host),lower,word(1,:),map(${hostsMap})`,
      },
      {
        type: 'return',
        return_status_code: 404,
        return_content_type: 'text/plain',
        return_content_format: 'string',
        return_content: 'no route for this host',
        cond: 'if',
        cond_test: '!{ var(txn.route) -m found }',
      },
      { type: 'set-dst', expr: 'var(txn.route),word(2,|)' },
      { type: 'set-dst-port', expr: 'var(txn.route),word(3,|)' },
      {
        type: 'track-sc',
        track_sc_stick_counter: 0,
        track_sc_key: 'var(txn.route),field(2,|,2)',
        track_sc_table: 'st_targets',
      },
      { type: 'set-header', hdr_name: 'X-Forwarded-Proto', hdr_format: 'https' },
      { type: 'set-header', hdr_name: 'X-Forwarded-For', hdr_format: '%[src]' },
    ]);
    const sni = findSection(document, 'frontend', 'fe_tls_sni')!;
    expect(childrenOf(sni, 'tcp_request_rule').map((child) => child.object)).toEqual([
      { type: 'inspect-delay', timeout: 5000 },
      {
        type: 'content',
        action: 'set-var',
        var_scope: 'txn',
        var_name: 'route',
        expr: 'req.ssl_sni,lower,map(/etc/haproxy/maps/sni.map)',
        cond: 'if',
        cond_test: '{ req.ssl_hello_type 1 }',
      },
      { type: 'content', action: 'reject', cond: 'if', cond_test: '!{ var(txn.route) -m found }' },
      { type: 'content', action: 'set-dst', expr: 'var(txn.route),word(2,|)' },
      { type: 'content', action: 'set-dst-port', expr: 'var(txn.route),word(3,|)' },
      {
        type: 'content',
        action: 'track-sc',
        track_stick_counter: 0,
        track_key: 'var(txn.route),field(2,|,2)',
        track_table: 'st_targets',
      },
    ]);
    const http = findSection(document, 'frontend', 'fe_http')!;
    const httpRules = childrenOf(http, 'http_request_rule').map((child) => child.object);
    expect(httpRules[0]).toEqual(ambiguousHost);
    expect(httpRules[1]).toEqual({
      type: 'deny',
      deny_status: 400,
      cond: 'unless',
      cond_test: expect.stringMatching(
        /^\{ path_beg \/\.well-known\/acme-challenge\/ \} or \{ req\.fhdr\(host\) -m reg -i \^\S+\$ \} \{ req\.fhdr\(host\),word\(1,:\) -m len 1:253 \}$/,
      ),
    });
    expect(httpRules[2]).toEqual({
      type: 'redirect',
      redir_type: 'location',
      redir_value: 'https://%[req.fhdr(host),lower,word(1,:)]%[pathq]',
      redir_code: 301,
      cond: 'unless',
      cond_test: '{ path_beg /.well-known/acme-challenge/ }',
    });
    const tlsToTarget = findSection(document, 'backend', 'be_dyn_https')!;
    expect(childrenOf(tlsToTarget, 'server')[0].object).toEqual({
      name: 'dyn',
      address: '0.0.0.0',
      ssl: 'enabled',
      verify: 'required',
      sni: 'req.fhdr(host),lower,word(1,:)',
      ssl_cafile: '/etc/haproxy/ca/cloudlunacy-ca.pem',
    });
    // Every child line of the base configuration is written back byte for byte from its object.
    for (const section of document.sections) {
      for (const kind of ['bind', 'server', 'http_request_rule', 'tcp_request_rule'] as const) {
        for (const child of childrenOf(section, kind)) {
          expect(CHILD_CODEC[kind].line(child.object)).toBe(section.lines[child.position].trim());
        }
      }
    }
    const noRoute = findSection(document, 'backend', 'be_no_route')!;
    expect(childrenOf(noRoute, 'http_request_rule')[0].object).toEqual({
      type: 'return',
      return_status_code: 503,
      return_content_type: 'text/plain',
      return_content_format: 'string',
      return_content: 'no route: this host name is not served here',
    });
  });

  it('writes lines that read back as the same objects', () => {
    const samples: [keyof typeof CHILD_CODEC, Record<string, unknown>][] = [
      [
        'bind',
        {
          name: 'https',
          address: '127.0.0.1',
          port: 8443,
          ssl: true,
          ssl_certificate: '/ssl/',
          strict_sni: true,
        },
      ],
      ['bind', { name: 'v6', address: '::1', port: 80 }],
      [
        'server',
        {
          name: 's1',
          address: '10.0.0.1',
          port: 8080,
          check: 'enabled',
          inter: 2000,
          weight: 10,
          maintenance: 'enabled',
        },
      ],
      [
        'server',
        {
          name: 'tls',
          address: 'db.example.com',
          port: 27017,
          ssl: 'enabled',
          verify: 'required',
          sni: 'str(db.example.com)',
          ssl_cafile: '/ca.pem',
        },
      ],
      ['acl', { acl_name: 'is_app', criterion: 'hdr(host)', value: '-i app.example.com' }],
      ['backend_switching_rule', { name: 'be_app', cond: 'if', cond_test: 'is_app' }],
      ['tcp_request_rule', { type: 'inspect-delay', timeout: 5000 }],
      ['tcp_request_rule', { type: 'content', action: 'reject' }],
      [
        'http_request_rule',
        {
          type: 'redirect',
          redir_type: 'scheme',
          redir_value: 'https',
          redir_code: 301,
          cond: 'unless',
          cond_test: '{ ssl_fc }',
        },
      ],
      [
        'http_request_rule',
        {
          type: 'return',
          return_status_code: 503,
          return_content_type: 'text/plain',
          return_content_format: 'string',
          return_content: 'no "route" here',
        },
      ],
      ['http_request_rule', { type: 'set-header', hdr_name: 'X-Forwarded-Proto', hdr_format: 'https' }],
      [
        'http_request_rule',
        { type: 'set-var', var_scope: 'req', var_name: 'x', var_expr: 'req.hdr(host),lower' },
      ],
      ['http_request_rule', { type: 'set-dst-port', expr: 'int(8080)', cond: 'if', cond_test: 'is_app' }],
      [
        'tcp_request_rule',
        { type: 'content', action: 'set-var', var_scope: 'sess', var_name: 'sni', expr: 'req.ssl_sni' },
      ],
      ['tcp_request_rule', { type: 'content', action: 'set-dst', expr: 'ipv4(10.0.0.1)' }],
    ];
    for (const [kind, object] of samples) {
      const line = CHILD_CODEC[kind].line(object);
      expect(CHILD_CODEC[kind].parse(tokenize(line))).toEqual(object);
    }
  });

  it('refuses control characters that could inject configuration', () => {
    expect(() =>
      CHILD_CODEC.acl.line({ acl_name: 'a', criterion: 'src', value: '1.2.3.4\n  server evil 6.6.6.6:80' }),
    ).toThrow(/control characters/);
  });

  it('converts times like dataplaneapi (ms in the API, nearest unit in the file)', () => {
    expect(parseTime('5s')).toBe(5000);
    expect(parseTime('250')).toBe(250);
    expect(parseTime('2m')).toBe(120_000);
    expect(formatTime(5000)).toBe('5s');
    expect(formatTime(120_000)).toBe('2m');
    expect(formatTime(1500)).toBe('1500ms');
  });
});

describe('edits keep every other line in place', () => {
  it('inserts rules by index and kind order, and removes them', () => {
    const document = parseConfig(base);
    const https = findSection(document, 'frontend', 'fe_https')!;
    insertChild(https, 'acl', 0, 'acl is_admin src 10.0.0.0/8');
    insertChild(https, 'http_request_rule', 0, 'http-request deny if !is_admin');
    insertChild(https, 'backend_switching_rule', 0, 'use_backend be_admin if is_admin');
    const kinds = https.lines.map((line) => line.trim().split(' ')[0]).filter((word) => word && word !== '#');
    expect(kinds).toEqual([
      'mode',
      'bind',
      'acl',
      'http-request',
      ...Array(8).fill('http-request'),
      'use_backend',
      'use_backend',
      'default_backend',
    ]);
    const rules = childrenOf(https, 'backend_switching_rule');
    expect(rules[0].object.name).toBe('be_admin');
    removeChildAt(https, rules[0].position);
    removeChildAt(https, childrenOf(https, 'http_request_rule')[0].position);
    removeChildAt(https, childrenOf(https, 'acl')[0].position);
    expect(serializeConfig(document)).toBe(base);
  });

  it('replaces base lines without touching children, and whole child lists', () => {
    const document = parseConfig(base);
    const sni = findSection(document, 'frontend', 'fe_tls_sni')!;
    setBaseLines(
      sni,
      frontendBaseLines({ name: 'fe_tls_sni', mode: 'tcp', client_timeout: 60_000 }),
      'be_no_route_tcp',
    );
    expect(parseFrontendBase(sni)).toEqual({
      name: 'fe_tls_sni',
      mode: 'tcp',
      client_timeout: 60_000,
      default_backend: 'be_no_route_tcp',
    });
    expect(childrenOf(sni, 'tcp_request_rule')).toHaveLength(6);
    replaceChildren(sni, 'tcp_request_rule', ['tcp-request inspect-delay 2s']);
    expect(childrenOf(sni, 'tcp_request_rule').map((child) => child.object)).toEqual([
      { type: 'inspect-delay', timeout: 2000 },
    ]);
  });

  it('appends new sections after a blank line and reads them back', () => {
    const document = parseConfig(base);
    const section = addSection(document, 'backend', 'be_app', []);
    setBaseLines(section, ['mode http', 'balance roundrobin']);
    insertChild(
      section,
      'server',
      0,
      CHILD_CODEC.server.line({ name: 'web1', address: '127.0.0.1', port: 9000 }),
    );
    const text = serializeConfig(document);
    expect(
      text.endsWith(
        '\n\nbackend be_app\n    mode http\n    balance roundrobin\n    server web1 127.0.0.1:9000\n',
      ),
    ).toBe(true);
    const again = parseConfig(text);
    expect(parseBackendBase(findSection(again, 'backend', 'be_app')!)).toEqual({
      name: 'be_app',
      mode: 'http',
      balance: { algorithm: 'roundrobin' },
    });
  });
});
