import { DomainError } from '#contracts';
import { checkNameAllowed, resolveHostname, type NamingRules } from './names.js';

const rules: NamingRules = { domain: 'example.test', sniZones: ['mongodb', 'redis'] };

function refusal(run: () => unknown): DomainError {
  try {
    run();
  } catch (error) {
    return error as DomainError;
  }
  throw new Error('expected a refusal');
}

test('http: a subdomain or a full <sub>.apps.<domain>', () => {
  expect(resolveHostname({ kind: 'http', subdomain: 'shop' }, rules)).toEqual({
    hostname: 'shop.apps.example.test',
    zone: 'apps',
  });
  expect(resolveHostname({ kind: 'http', hostname: 'shop.apps.example.test' }, rules).hostname).toBe(
    'shop.apps.example.test',
  );
  for (const hostname of [
    'apps.example.test',
    'a.b.apps.example.test',
    'shop.example.test',
    'shop.apps.example.test.evil.com',
    'shop.mongodb.example.test',
    'shopapps.example.test',
  ]) {
    const error = refusal(() => resolveHostname({ kind: 'http', hostname }, rules));
    expect([error.code, error.field]).toEqual(['invalid', 'hostname']);
  }
  const long = refusal(() =>
    resolveHostname(
      { kind: 'http', subdomain: 'a'.repeat(63) },
      { ...rules, domain: `${'d'.repeat(63)}.${'e'.repeat(63)}.${'f'.repeat(60)}` },
    ),
  );
  expect(long.field).toBe('subdomain');
});

test('tls-sni: <owner>.<zone>.<domain> or <name>.<owner>.<zone>.<domain> in a configured zone', () => {
  expect(resolveHostname({ kind: 'tls-sni', hostname: 'web-1.mongodb.example.test' }, rules)).toEqual({
    hostname: 'web-1.mongodb.example.test',
    namespace: 'web-1',
    zone: 'mongodb',
  });
  expect(
    resolveHostname({ kind: 'tls-sni', hostname: 'cache.web-1.redis.example.test' }, rules),
  ).toMatchObject({
    namespace: 'web-1',
    zone: 'redis',
  });
  for (const hostname of [
    'web-1.postgres.example.test',
    'mongodb.example.test',
    'a.b.web-1.mongodb.example.test',
    'web-1.apps.example.test',
  ]) {
    const error = refusal(() => resolveHostname({ kind: 'tls-sni', hostname }, rules));
    expect([error.code, error.field]).toEqual(['invalid', 'hostname']);
  }
  expect(refusal(() => resolveHostname({ kind: 'tls-sni', subdomain: 'web-1' }, rules)).field).toBe(
    'subdomain',
  );
});

test("an agent may only use its own namespace; an admin anything but another agent's", () => {
  const own = resolveHostname({ kind: 'tls-sni', hostname: 'db.web-1.mongodb.example.test' }, rules);
  expect(() => checkNameAllowed(own, { kind: 'agent', id: 'web-1' }, 'web-1', false)).not.toThrow();
  // `web` is a prefix of `web-1`: namespaces are whole labels, so `web` cannot take `web-1`'s name.
  const other = resolveHostname({ kind: 'tls-sni', hostname: 'web-1.mongodb.example.test' }, rules);
  const byAgent = refusal(() => checkNameAllowed(other, { kind: 'agent', id: 'web' }, 'web', true));
  expect([byAgent.code, byAgent.field]).toEqual(['forbidden', 'hostname']);
  const byAdmin = refusal(() => checkNameAllowed(other, { kind: 'admin', id: 'alice' }, 'web', true));
  expect([byAdmin.code, byAdmin.field]).toEqual(['conflict', 'hostname']);
  const free = resolveHostname({ kind: 'tls-sni', hostname: 'shared.mongodb.example.test' }, rules);
  expect(() => checkNameAllowed(free, { kind: 'admin', id: 'alice' }, 'web', false)).not.toThrow();
  expect(() =>
    checkNameAllowed(
      resolveHostname({ kind: 'http', subdomain: 'x' }, rules),
      { kind: 'agent', id: 'a' },
      'a',
      false,
    ),
  ).not.toThrow();
});
