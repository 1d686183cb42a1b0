import { z } from 'zod';
import { defineEvent, EventRegistry, UndecodableEventError } from './registry.js';
import { ValidationError } from './validation.js';
import { aggregateSubject, hostnameToken, tokenToHostname } from './subjects.js';

const Renamed = defineEvent({
  type: 'Renamed',
  aggregate: 'agent',
  version: 3,
  schema: z.strictObject({ fullName: z.string(), source: z.string() }),
  upcasters: {
    1: (data) => ({ name: (data as { n: string }).n }),
    2: (data) => ({ fullName: (data as { name: string }).name, source: 'upcast' }),
  },
});

const envelope = (schemaVersion: number, data: unknown) => ({
  id: 'e1',
  type: 'Renamed',
  schemaVersion,
  aggregate: { type: 'agent', id: 'a' },
  occurredAt: '2026-11-22T00:00:00.000Z',
  actor: { kind: 'system', id: 'test' },
  correlationId: 'c',
  causationId: null,
  data,
});

describe('EventRegistry', () => {
  const registry = new EventRegistry([Renamed]);

  it('upcasts step by step to the current version', () => {
    expect(registry.decode(envelope(1, { n: 'x' })).data).toEqual({ fullName: 'x', source: 'upcast' });
    expect(registry.decode(envelope(2, { name: 'y' })).schemaVersion).toBe(3);
  });

  it('refuses events from the future, unknown types and broken envelopes, naming the field', () => {
    expect(() => registry.decode(envelope(4, {}))).toThrow(UndecodableEventError);
    expect(() => registry.decode({ ...envelope(3, {}), type: 'Other' })).toThrow(/unknown event type/);
    expect(() =>
      registry.decode({ ...envelope(3, { fullName: 'x', source: 's' }), actor: { kind: 'root', id: 'x' } }),
    ).toThrow(/actor/);
    try {
      registry.decode(envelope(3, { fullName: 1, source: 's' }));
    } catch (error) {
      expect((error as UndecodableEventError).field).toBe('data.fullName');
    }
  });

  it('validates new events against the current schema and the aggregate', () => {
    expect(() => registry.validateNew('Renamed', 'agent', { fullName: 'x' })).toThrow(ValidationError);
    expect(() => registry.validateNew('Renamed', 'route', { fullName: 'x', source: 's' })).toThrow(
      /belongs to agent/,
    );
    expect(registry.validateNew('Renamed', 'agent', { fullName: 'x', source: 's' }).version).toBe(3);
  });

  it('checks only the envelope when the reader does not want the data', () => {
    const decoded = registry.decode(envelope(3, { fullName: 42 }), { data: false });
    expect(decoded.data).toBeUndefined();
    expect(() => registry.decode({ ...envelope(3, {}), actor: null }, { data: false })).toThrow(/actor/);
    expect(registry.aggregateOf('Renamed')).toBe('agent');
  });

  it('refuses to register a type twice', () => {
    expect(() => new EventRegistry([Renamed, Renamed])).toThrow(/twice/);
  });
});

describe('subjects', () => {
  it('maps host names to one reversible subject token', () => {
    expect(hostnameToken('app.apps.example.com')).toBe('app_apps_example_com');
    expect(tokenToHostname('app_apps_example_com')).toBe('app.apps.example.com');
    expect(aggregateSubject('hostname', 'a.b')).toBe('events.hostname.a_b');
  });
  it('refuses ids that would change the subject', () => {
    expect(() => aggregateSubject('agent', 'a.b')).toThrow(/subject token/);
    expect(() => aggregateSubject('agent', 'a>')).toThrow(/subject token/);
    expect(() => aggregateSubject('route', '*')).toThrow(/subject token/);
  });
});
