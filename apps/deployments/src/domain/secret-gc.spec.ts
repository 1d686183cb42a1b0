import { collectableVersions, versionKey, type StoredVersion } from './secret-gc.js';

type Versions = Record<string, number>;

const NOW = Date.parse('2030-01-01T12:00:00Z');
const row = (name: string, version: number, ageMs = 10 * 3_600_000, appName = 'web'): StoredVersion => ({
  appName,
  name,
  version,
  createdAt: new Date(NOW - ageMs).toISOString(),
});

test('old versions go; the latest, the referenced and the young unnamed ones stay', () => {
  const stored = [
    row('TOKEN', 1),
    row('TOKEN', 2),
    row('TOKEN', 3),
    row('TOKEN', 4, 60_000),
    row('TOKEN', 5),
  ];
  const inUse = {
    latest: new Map([['web', { TOKEN: 3 }]]),
    named: new Map([['web', { TOKEN: 3 }]]),
    referenced: new Set([versionKey('web', 'TOKEN', 2)]),
  };
  // 1: superseded and unused; 2: a deployment in flight needs it; 3: latest; 4: young, no event yet;
  // 5: no event named it for hours (a crash between the row and its event).
  expect(collectableVersions(stored, inUse, NOW).map((gone) => gone.version)).toEqual([1, 5]);
});

test('a removed secret’s versions go once nothing needs them; other apps are apart', () => {
  const stored = [row('OLD', 1), row('OLD', 2), row('TOKEN', 1, undefined, 'api')];
  const inUse = {
    latest: new Map<string, Versions>([
      ['web', {}],
      ['api', { TOKEN: 1 }],
    ]),
    named: new Map<string, Versions>([
      ['web', { OLD: 2 }],
      ['api', { TOKEN: 1 }],
    ]),
    referenced: new Set([versionKey('web', 'OLD', 2)]),
  };
  expect(
    collectableVersions(stored, inUse, NOW).map((gone) => `${gone.appName}:${gone.name}:${gone.version}`),
  ).toEqual(['web:OLD:1']);
});
