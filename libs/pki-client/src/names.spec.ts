import { renewalDue } from './inspect.js';
import {
  agentDatabaseHostname,
  dnsNameProblem,
  frontCertificateNames,
  normalizeDnsName,
  printable,
} from './names.js';

describe('certificate DNS names', () => {
  it.each(['a.example.test', 'agent-1.mongodb.example.test', 'x'])('accepts %s', (name) => {
    expect(dnsNameProblem(name)).toBeUndefined();
  });

  it.each([
    ['*.apps.example.test', /wildcard names are not allowed/],
    ['a b.example.test', /RFC 1123/],
    ['a_b.example.test', /RFC 1123/],
    ['example.test.', /RFC 1123/],
    ['10.0.0.1.', /RFC 1123/],
    ['a\nb', /RFC 1123/],
    ['', /must not be empty/],
  ])('refuses %j', (name, reason) => {
    expect(dnsNameProblem(name)).toMatch(reason);
  });

  it('accepts wildcards only when allowed, only as the whole left-most label, over two or more labels', () => {
    const allow = { allowWildcard: true };
    expect(dnsNameProblem('*.apps.example.test', allow)).toBeUndefined();
    expect(dnsNameProblem('*.test', allow)).toMatch(/at least two labels/);
    expect(dnsNameProblem('a*.example.test', allow)).toMatch(/whole left-most label/);
    expect(dnsNameProblem('a.*.example.test', allow)).toMatch(/whole left-most label/);
    expect(dnsNameProblem('*.*.example.test', allow)).toMatch(/"\*\." followed by/);
  });

  it('normalises case and names the offending input (printable) when refusing', () => {
    expect(normalizeDnsName('Agent-1.MongoDB.Example.Test')).toBe('agent-1.mongodb.example.test');
    expect(() => normalizeDnsName('bad\u0000name')).toThrow('"bad?name": ');
    expect(() => normalizeDnsName(7)).toThrow('must be a string');
    expect(printable('x'.repeat(100), 10)).toBe('xxxxxxxxxx…');
  });

  it('derives the agent and front names from validated parts', () => {
    expect(agentDatabaseHostname('agent-1', 'example.test')).toBe('agent-1.mongodb.example.test');
    expect(() => agentDatabaseHostname('Agent.1', 'example.test')).toThrow();
    expect(() => agentDatabaseHostname('a', 'example.test\n')).toThrow();
    expect(frontCertificateNames('example.test')).toEqual(['*.apps.example.test', '*.mongodb.example.test']);
  });
});

describe('renewalDue', () => {
  const notAfter = '2030-01-31T00:00:00.000Z';
  it('is due inside the window and after expiry, not before', () => {
    const window = 7 * 86_400;
    expect(renewalDue(notAfter, window, new Date('2030-01-23T23:59:59Z'))).toBe(false);
    expect(renewalDue(notAfter, window, new Date('2030-01-24T00:00:00Z'))).toBe(true);
    expect(renewalDue(notAfter, window, new Date('2031-01-01T00:00:00Z'))).toBe(true);
  });
  it('refuses a non-date', () => {
    expect(() => renewalDue('soon', 1)).toThrow('not a date');
  });
});
