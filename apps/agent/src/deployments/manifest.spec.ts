import type { AppConfig } from '#contracts';
import { buildRoot, ManifestError, parseManifest, resolveManifest, type NodeProject } from './manifest.js';

const noOverrides: AppConfig['build'] = {
  root: null,
  build: null,
  start: null,
  portEnv: null,
  timeoutSeconds: null,
};
const node = (pkg: object, extra: Partial<NodeProject> = {}): NodeProject => ({
  packageJson: JSON.stringify(pkg),
  hasLockfile: true,
  hasServerJs: false,
  ...extra,
});
const resolve = (input: Partial<Parameters<typeof resolveManifest>[0]>) =>
  resolveManifest({ manifest: null, app: noOverrides, healthPath: '/', node: null, ...input });

describe('the Node defaults', () => {
  test('npm ci with a lockfile, the build script when there is one, npm start', () => {
    expect(
      resolve({ node: node({ scripts: { start: 'next start', build: 'tsc' }, dependencies: { ms: '2' } }) }),
    ).toEqual({
      origin: 'node-default',
      root: '.',
      install: 'npm ci',
      build: ['npm run build'],
      start: 'npm start',
      portEnv: 'PORT',
      healthPath: '/',
    });
  });

  test('npm install without a lockfile; no install without dependencies; server.js without a start script', () => {
    expect(
      resolve({
        node: node({ scripts: { start: 'x' }, devDependencies: { a: '1' } }, { hasLockfile: false }),
      }).install,
    ).toBe('npm install');
    expect(resolve({ node: node({}, { hasServerJs: true }) })).toMatchObject({
      install: null,
      build: [],
      start: 'node server.js',
    });
  });

  test('a plain `node …` start script runs without npm; anything npm adds to keeps npm start', () => {
    const start = (scripts: object) => resolve({ node: node({ scripts }) }).start;
    expect(start({ start: 'node s.js' })).toBe('node s.js');
    expect(start({ start: ' node --enable-source-maps dist/main.js --port=3000 ' })).toBe(
      'node --enable-source-maps dist/main.js --port=3000',
    );
    // Hooks npm would run, shell syntax, variables and other programs need npm (or a shell).
    expect(start({ start: 'node s.js', prestart: 'x' })).toBe('npm start');
    expect(start({ start: 'node s.js', poststart: 'x' })).toBe('npm start');
    for (const script of [
      'node s.js && other',
      'node s.js; rm -rf ~',
      'node $FILE',
      'node "s.js"',
      'NODE_ENV=production node s.js',
      'nodemon s.js',
      'node',
      'node s.js | tee log',
    ])
      expect(start({ start: script })).toBe('npm start');
  });

  test('nothing to start is an error that says what to add', () => {
    expect(() => resolve({ node: node({ scripts: {} }) })).toThrow(
      /no "start" script and there is no server.js/,
    );
    expect(() => resolve({})).toThrow(/no cloudlunacy.json and no package.json/);
    expect(() => resolve({ node: { packageJson: '{', hasLockfile: false, hasServerJs: false } })).toThrow(
      ManifestError,
    );
  });
});

describe('cloudlunacy.json and the app settings', () => {
  test('the manifest wins over the defaults, the app over the manifest', () => {
    const manifest = parseManifest(
      JSON.stringify({
        root: 'server',
        install: null,
        build: ['make'],
        start: 'bin/run',
        healthCheck: { path: '/up' },
      }),
    );
    expect(resolve({ manifest, node: node({ scripts: { start: 'x' } }) })).toEqual({
      origin: 'cloudlunacy.json',
      root: 'server',
      install: null,
      build: ['make'],
      start: 'bin/run',
      portEnv: 'PORT',
      healthPath: '/up',
    });
    const app = { ...noOverrides, start: 'node main.js', portEnv: 'HTTP_PORT', root: 'api' };
    expect(resolve({ manifest, app })).toMatchObject({
      origin: 'app',
      root: 'api',
      start: 'node main.js',
      portEnv: 'HTTP_PORT',
      build: ['make'],
    });
    expect(buildRoot(manifest, noOverrides)).toBe('server');
  });

  test('a bad manifest is refused naming the field', () => {
    expect(() => parseManifest('{"start": "x", "privileged": true}')).toThrow(/cloudlunacy.json: privileged/);
    expect(() => parseManifest('{"root": "../../etc"}')).toThrow(/cloudlunacy.json: root: must stay inside/);
    expect(() => parseManifest('{"start": "a\\nb"}')).toThrow(/cloudlunacy.json: start/);
    expect(() => parseManifest('not json')).toThrow(/cloudlunacy.json is not JSON/);
  });
});
