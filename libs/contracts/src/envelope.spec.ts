import { envelopeSchema, isWellFormedEnvelope } from './envelope.js';

const valid = {
  id: '0b7c2f52-5a53-4c1e-9d0e-3f1f3f6c2a10',
  type: 'RouteRequested',
  schemaVersion: 1,
  aggregate: { type: 'route', id: 'r-1' },
  occurredAt: '2026-12-03T22:13:17.123Z',
  actor: { kind: 'agent', id: 'alpha' },
  correlationId: 'c-1',
  causationId: null,
  data: { any: 'thing' },
};

type Change = [name: string, change: (envelope: Record<string, any>) => unknown]; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Each change gives a different envelope, valid or not; the fast check must never accept an invalid one. */
const changes: Change[] = [
  ['as written', (e) => e],
  ['without data', ({ data: _data, ...rest }) => rest],
  ['with a causation id', (e) => ({ ...e, causationId: 'cause' })],
  ['an offset timestamp', (e) => ({ ...e, occurredAt: '2026-12-03T23:13:17+01:00' })],
  ['a leap day', (e) => ({ ...e, occurredAt: '2028-02-29T00:00:00.000Z' })],
  ['a 30th of February', (e) => ({ ...e, occurredAt: '2026-02-30T00:00:00.000Z' })],
  ['a date without time', (e) => ({ ...e, occurredAt: '2026-12-03' })],
  ['a timestamp without zone', (e) => ({ ...e, occurredAt: '2026-12-03T22:13:17' })],
  ['a numeric timestamp', (e) => ({ ...e, occurredAt: 1764800000000 })],
  ['an extra key', (e) => ({ ...e, extra: 1 })],
  ['a __proto__ key', (e) => JSON.parse(JSON.stringify(e).replace('{', '{"__proto__":{"x":1},'))],
  ['no id', ({ id: _id, ...rest }) => rest],
  ['an empty id', (e) => ({ ...e, id: '' })],
  ['a 65-character id', (e) => ({ ...e, id: 'x'.repeat(65) })],
  ['a 64-character id', (e) => ({ ...e, id: 'x'.repeat(64) })],
  ['a lower-case type', (e) => ({ ...e, type: 'routeRequested' })],
  ['a one-letter type', (e) => ({ ...e, type: 'R' })],
  ['a type with a space', (e) => ({ ...e, type: 'Route Requested' })],
  ['schema version 0', (e) => ({ ...e, schemaVersion: 0 })],
  ['schema version 1.5', (e) => ({ ...e, schemaVersion: 1.5 })],
  ['schema version "1"', (e) => ({ ...e, schemaVersion: '1' })],
  ['a huge schema version', (e) => ({ ...e, schemaVersion: 2 ** 60 })],
  ['an unknown aggregate type', (e) => ({ ...e, aggregate: { type: 'planet', id: 'x' } })],
  ['an aggregate with an extra key', (e) => ({ ...e, aggregate: { ...e.aggregate, x: 1 } })],
  ['an aggregate as an array', (e) => ({ ...e, aggregate: ['route', 'r-1'] })],
  ['a null aggregate', (e) => ({ ...e, aggregate: null })],
  ['an empty aggregate id', (e) => ({ ...e, aggregate: { type: 'route', id: '' } })],
  ['a 254-character aggregate id', (e) => ({ ...e, aggregate: { type: 'route', id: 'a'.repeat(254) } })],
  ['an unknown actor kind', (e) => ({ ...e, actor: { kind: 'root', id: 'x' } })],
  ['an actor id with a newline', (e) => ({ ...e, actor: { kind: 'agent', id: 'a\nb' } })],
  ['an actor id with DEL', (e) => ({ ...e, actor: { kind: 'agent', id: 'a\u007f' } })],
  ['a 129-character actor id', (e) => ({ ...e, actor: { kind: 'agent', id: 'a'.repeat(129) } })],
  ['an actor with an extra key', (e) => ({ ...e, actor: { ...e.actor, role: 'x' } })],
  ['a null actor', (e) => ({ ...e, actor: null })],
  ['an empty correlation id', (e) => ({ ...e, correlationId: '' })],
  ['a 129-character correlation id', (e) => ({ ...e, correlationId: 'c'.repeat(129) })],
  ['no causation id', ({ causationId: _causationId, ...rest }) => rest],
  ['an empty causation id', (e) => ({ ...e, causationId: '' })],
  ['a numeric causation id', (e) => ({ ...e, causationId: 7 })],
  ['an array', () => [valid]],
  ['null', () => null],
  ['a string', () => JSON.stringify(valid)],
];

describe('isWellFormedEnvelope agrees with envelopeSchema', () => {
  test.each(changes)('%s', (_name, change) => {
    const candidate = change(structuredClone(valid));
    const verdict = envelopeSchema.safeParse(candidate).success;
    // Sound: it never accepts what the schema refuses. Complete where it matters: whatever our own
    // writers produce (toISOString timestamps) takes the fast lane.
    if (isWellFormedEnvelope(candidate)) expect(verdict).toBe(true);
    if (verdict && typeof candidate === 'object' && candidate !== null && !('extra' in candidate)) {
      const timestamp = (candidate as { occurredAt?: unknown }).occurredAt;
      if (typeof timestamp === 'string' && timestamp.endsWith('Z'))
        expect(isWellFormedEnvelope(candidate)).toBe(true);
    }
  });

  test('the table has valid and invalid envelopes of every field', () => {
    const verdicts = changes.map(
      ([, change]) => envelopeSchema.safeParse(change(structuredClone(valid))).success,
    );
    expect(verdicts.filter(Boolean).length).toBeGreaterThanOrEqual(5);
    expect(verdicts.filter((verdict) => !verdict).length).toBeGreaterThanOrEqual(30);
  });
});
