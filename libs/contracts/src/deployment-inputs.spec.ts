import type { z } from 'zod';
import {
  appHostname,
  appName,
  buildManifest,
  buildOverrides,
  configureAppInput,
  createAppInput,
  databaseHostname,
  deploymentRequestInput,
  drainInput,
  envEntries,
  envName,
  gitRef,
  gitUrl,
  healthCheckInput,
  limitsInput,
  relativeRoot,
  releasesKept,
  rollbackInput,
  sourceCredentials,
  sourceInput,
} from './deployment-inputs.js';
import { parseOrThrow, ValidationError } from './validation.js';

const policy = { plainGitHosts: ['127.0.0.1', '::1', 'localhost'], fileRoots: ['/srv/repos', '/tmp/cl/'] };
const domain = 'cloudlunacy.localhost';

/** The first issue of a refused input, as the API would answer it (`field`, `message`). */
function refused(schema: z.ZodType, input: unknown, prefix?: string) {
  try {
    parseOrThrow(schema, input, prefix);
  } catch (error) {
    if (error instanceof ValidationError) return error.issues[0]!;
    throw error;
  }
  throw new Error(`accepted ${JSON.stringify(input)}`);
}

const source = (url: string, extra: object = {}) => ({ type: 'git', url, ...extra });
const app = (extra: object = {}) => ({ name: 'web', source: source('https://github.com/o/r.git'), ...extra });

describe('gitUrl', () => {
  const url = gitUrl(policy);

  it.each([
    ['https://github.com/o/r.git', 'https://github.com/o/r.git'],
    ['HTTPS://GitHub.com:443/o/r', 'https://github.com/o/r'],
    ['https://github.com:8443/o/r', 'https://github.com:8443/o/r'],
    ['https://git@example.com/o/r', 'https://git@example.com/o/r'],
    ['https://[::1]/r', 'https://[::1]/r'],
    ['ssh://git@github.com/o/r.git', 'ssh://git@github.com/o/r.git'],
    ['ssh://git@Example.COM:22/o/r', 'ssh://git@example.com/o/r'],
    ['ssh://deploy_1@10.0.0.2:2222/srv/r.git', 'ssh://deploy_1@10.0.0.2:2222/srv/r.git'],
    ['ssh://git@[0:0::1]/r', 'ssh://git@[::1]/r'],
    // scp-like, rewritten
    ['git@github.com:o/r.git', 'ssh://git@github.com/o/r.git'],
    ['git@host:/abs/r.git', 'ssh://git@host/abs/r.git'],
    ['git@host:~/r.git', 'ssh://git@host/~/r.git'],
    ['git@[::1]:r', 'ssh://git@[::1]/r'],
    // git:// for plain hosts only
    ['git://127.0.0.1/r.git', 'git://127.0.0.1/r.git'],
    ['git://localhost:9418/r', 'git://localhost/r'],
    ['git://LOCALHOST:9419/r', 'git://localhost:9419/r'],
    ['git://[::1]/r', 'git://[::1]/r'],
    // file:// under a root, normalised
    ['file:///srv/repos/a.git', 'file:///srv/repos/a.git'],
    ['file:///srv/repos/./x//a/../b/', 'file:///srv/repos/x/b'],
    ['file:///tmp/cl/r', 'file:///tmp/cl/r'],
    ['file:///srv/repos', 'file:///srv/repos'],
  ])('accepts %s as %s', (input, canonical) => {
    expect(url.parse(input)).toBe(canonical);
  });

  it.each([
    ['https://user:token@github.com/o/r', 'credentials go in a secret: source.credentials'],
    ['ssh://git:pw@github.com/o/r', 'credentials go in a secret: source.credentials'],
    ['git:pw@github.com:o/r', 'credentials go in a secret: source.credentials'],
    ['http://github.com/o/r', 'http:// is plaintext'],
    ['ext::sh -c x', '<transport>:: helpers are refused'],
    ['fd::3', '<transport>:: helpers are refused'],
    ['git-remote-x::foo', '<transport>:: helpers are refused'],
    ['ftp://host/r', 'must be a git URL over https://'],
    ['git+ssh://git@host/r', 'must be a git URL over https://'],
    ['/srv/repos/a', 'plain local paths are refused'],
    ['./repo', 'plain local paths are refused'],
    ['repo', 'plain local paths are refused'],
    ['-oProxyCommand=x', "must not start with '-'"],
    ['ssh://-oProxyCommand=x/r', 'host must be a host name'],
    ['ssh://-oProxy/x', 'host must be a host name'],
    ['ssh://git@-oProxy/x', 'host must be a host name'],
    ['ssh://-oProxy@host/x', "user must be letters, digits, '_', '.' or '-'"],
    ['-oProxy@host:r', "must not start with '-'"],
    ['git@-oProxyCommand=x:r', 'host must be a host name'],
    ['git@host:-r', "path must not start with '-'"],
    ['ssh://host/r', 'must name the ssh user'],
    ['ssh://git@host/', 'must name a repository'],
    ['ssh://git@host:0/r', 'port must be a number from 1 to 65535'],
    ['ssh://git@host:22x/r', 'port must be a number from 1 to 65535'],
    [
      'git://example.com/r',
      'git:// is unauthenticated plaintext, allowed only for 127.0.0.1, ::1, localhost',
    ],
    ['git://10.0.0.1/r', 'allowed only for'],
    ['git://u@localhost/r', 'git:// takes no user'],
    ['file:///srv/repos2/a', 'file:// paths must be under /srv/repos, /tmp/cl/'],
    ['file:///srv/repos/../etc/passwd', 'file:// paths must be under'],
    ['file:///srv/repos/../../../srv/x', "must not climb above '/'"],
    ['file:///etc/passwd', 'file:// paths must be under'],
    ['file:///srv/repos/%2e%2e/x', 'must not be percent-encoded'],
    ['file://host/srv/repos/a', 'must be file:///absolute/path'],
    ['https://github.com/o/r\n', 'must not contain control characters'],
    ['https://github.com/o/\u0000r', 'must not contain control characters'],
    ['https://github.com/o r', 'must not contain spaces'],
    ['https://github.com\\o\\r', 'must not contain backslashes'],
    ['https://github.com/o/r?x=1', 'must not have a query'],
    ['https://github.com/o/r#main', 'must not have a query'],
    ['https://github.com/', 'must name a repository'],
    ['', 'plain local paths are refused'],
  ])('refuses %j (%s)', (input, message) => {
    const issue = refused(createAppInput({ ...policy, domain }), app({ source: source(input) }));
    expect(issue.field).toBe('source.url');
    expect(issue.message).toContain(message);
    // The value (maybe a token) never comes back in the message.
    if (input.length > 4) expect(issue.message).not.toContain(input);
  });

  it('bounds the length, before and after the rewrite to canonical form', () => {
    expect(url.parse(`https://h/${'a'.repeat(2038)}`)).toHaveLength(2048);
    expect(refused(url, `https://h/${'a'.repeat(2039)}`).message).toBe('must be at most 2048 characters');
    expect(refused(url, `git@h:${'a'.repeat(2040)}`).message).toBe(
      'must be at most 2048 characters in canonical form',
    );
  });

  it('names the allowed transports, and only those the policy allows', () => {
    expect(refused(url, 'ftp://h/r').message).toBe(
      'must be a git URL over https://host/path, ssh://user@host/path (or user@host:path), ' +
        'git:// (only 127.0.0.1, ::1, localhost), file:///path (under /srv/repos, /tmp/cl/)',
    );
    const strictPolicy = gitUrl({ plainGitHosts: [], fileRoots: [] });
    expect(refused(strictPolicy, 'ftp://h/r').message).toBe(
      'must be a git URL over https://host/path, ssh://user@host/path (or user@host:path)',
    );
    expect(refused(strictPolicy, 'git://localhost/r').message).toContain('git:// is not allowed here');
    expect(refused(strictPolicy, 'file:///srv/repos/a').message).toContain('file:// is not allowed here');
  });

  it('refuses a relative file root in the policy', () => {
    expect(() => gitUrl({ plainGitHosts: [], fileRoots: ['srv'] })).toThrow('absolute');
  });
});

describe('gitRef', () => {
  it.each([
    'main',
    'feature/x-1',
    'refs/tags/v1',
    'refs/heads/release-2.0',
    'v1.2.3',
    'a'.repeat(40).replace(/a/g, 'f'),
    '0123456789abcdef0123456789abcdef01234567',
    '0123456789abcdef'.repeat(4),
  ])('accepts %s', (ref) => {
    expect(gitRef.parse(ref)).toBe(ref);
  });

  it.each([
    ['--upload-pack=x', "must not start with '-'"],
    ['-b', "must not start with '-'"],
    ['a..b', "must not contain '..'"],
    ['a@{1}', "must not contain '@{'"],
    ['@', "must not be '@'"],
    ['a.lock', "may end with '.lock'"],
    ['refs/heads/x.lock/y', "may end with '.lock'"],
    ['.hidden', "may start with '.'"],
    ['a/.b', "may start with '.'"],
    ['a~1', 'must not contain any of'],
    ['a^', 'must not contain any of'],
    ['a:b', 'must not contain any of'],
    ['a?', 'must not contain any of'],
    ['a*', 'must not contain any of'],
    ['a[b', 'must not contain any of'],
    ['a\\b', 'must not contain any of'],
    ['a b', 'must not contain spaces'],
    ['a\tb', 'must not contain control characters'],
    ['a\u007fb', 'must not contain control characters'],
    ['a//b', "contain '//'"],
    ['a/', "end with '/'"],
    ['/a', "start or end with '/'"],
    ['a.', "must not end with '.'"],
    ['', 'must not be empty'],
  ])('refuses %j (%s) at ref', (ref, message) => {
    const issue = refused(deploymentRequestInput, { ref });
    expect(issue.field).toBe('ref');
    expect(issue.message).toContain(message);
  });
});

test('gitRef: at most 200 characters', () => {
  expect(gitRef.safeParse('a'.repeat(200)).success).toBe(true);
  expect(refused(gitRef, 'a'.repeat(201)).message).toContain('must be at most 200 characters');
});

describe('sourceInput', () => {
  const schema = sourceInput(policy);

  it('bounds known hosts to 4096 characters', () => {
    const knownHosts = (length: number) =>
      source('ssh://git@h/r', {
        credentials: { secret: 'K', kind: 'ssh-key', knownHosts: 'a'.repeat(length) },
      });
    expect(schema.safeParse(knownHosts(4096)).success).toBe(true);
    expect(refused(schema, knownHosts(4097))).toEqual({
      field: 'credentials.knownHosts',
      message: 'must be at most 4096 characters',
    });
  });

  it('takes git sources with a ref and credentials naming a secret, and uploads', () => {
    expect(
      schema.parse(
        source('git@github.com:o/r.git', {
          ref: 'main',
          credentials: { secret: 'DEPLOY_KEY', kind: 'ssh-key', knownHosts: 'github.com ssh-ed25519 AAAA\n' },
        }),
      ),
    ).toEqual({
      type: 'git',
      url: 'ssh://git@github.com/o/r.git',
      ref: 'main',
      credentials: { secret: 'DEPLOY_KEY', kind: 'ssh-key', knownHosts: 'github.com ssh-ed25519 AAAA\n' },
    });
    expect(schema.parse({ type: 'upload' })).toEqual({ type: 'upload' });
  });

  it.each([
    [{ type: 'svn' }, 'type', 'type must be git, upload, image or database'],
    [
      { type: 'upload', uploadId: '8f0e0c52-52f1-4d0e-9f8e-3a1b6c2d4e5f' },
      'uploadId',
      'unknown field: uploadId',
    ],
    [
      source('https://h/r', { credentials: { secret: 'TOKEN', kind: 'ssh-key' } }),
      'credentials.kind',
      'https-token',
    ],
    [
      source('ssh://git@h/r', { credentials: { secret: 'KEY', kind: 'https-token' } }),
      'credentials.kind',
      'ssh-key',
    ],
    [
      source('https://h/r', { credentials: { secret: 'TOKEN', kind: 'https-token', knownHosts: 'x' } }),
      'credentials.knownHosts',
      'ssh-key credentials only',
    ],
    [
      source('git://localhost/r', { credentials: { secret: 'K', kind: 'ssh-key' } }),
      'credentials',
      'no credentials',
    ],
    [
      source('https://h/r', { credentials: { secret: 'token', kind: 'https-token' } }),
      'credentials.secret',
      'A-Z',
    ],
    [
      source('https://h/r', { credentials: { secret: 'T', kind: 'password' } }),
      'credentials.kind',
      'https-token or ssh-key',
    ],
    [
      source('https://h/r', { credentials: { secret: 'T', kind: 'https-token', value: 'x' } }),
      'credentials.value',
      'unknown field: value',
    ],
    [source('https://h/r', { ref: '--upload-pack=x' }), 'ref', "must not start with '-'"],
    [{ type: 'git' }, 'url', 'is required'],
  ])('refuses %j at %s', (input, field, message) => {
    const issue = refused(schema, input);
    expect(issue.field).toBe(field);
    expect(issue.message).toContain(message);
  });
});

describe('env', () => {
  const entries = (count: number, value = 'v') =>
    Array.from({ length: count }, (_, index) => ({ name: `V${index}`, value }));

  it('accepts names, plain and secret values', () => {
    const env = [
      { name: 'NODE_ENV', value: 'production' },
      { name: '_X', value: '' },
      { name: 'API_TOKEN', value: 'abcdefgh', secret: true },
      { name: 'PEM', value: '-----BEGIN X-----\nabc\n-----END X-----\n' },
    ];
    expect(envEntries().parse(env)).toEqual(env);
    expect(envEntries().parse(entries(100))).toHaveLength(100);
    expect(envName.parse('A'.repeat(128))).toBe('A'.repeat(128));
  });

  it.each([
    [[{ name: 'PATH', value: '/x' }], 'env[0].name', 'is reserved'],
    [[{ name: 'HOME', value: '/x' }], 'env[0].name', 'is reserved'],
    [[{ name: 'HOST', value: 'x' }], 'env[0].name', 'is reserved'],
    [[{ name: 'TMPDIR', value: 'x' }], 'env[0].name', 'is reserved'],
    [[{ name: 'USER', value: 'x' }], 'env[0].name', 'is reserved'],
    [
      [
        { name: 'A', value: 'x' },
        { name: 'CLOUDLUNACY_X', value: 'x' },
      ],
      'env[1].name',
      'CLOUDLUNACY_* names are reserved',
    ],
    [[{ name: 'PORT', value: '80' }], 'env[0].name', "is the app's port variable (PORT)"],
    [[{ name: 'node_env', value: 'x' }], 'env[0].name', 'A-Z, 0-9 and _'],
    [[{ name: '1A', value: 'x' }], 'env[0].name', 'not starting with a digit'],
    [[{ name: 'A'.repeat(129), value: 'x' }], 'env[0].name', '1 to 128'],
    [[{ name: 'A-B', value: 'x' }], 'env[0].name', 'A-Z, 0-9 and _'],
    [
      [
        { name: 'A', value: '1' },
        { name: 'B', value: '2' },
        { name: 'C', value: '3' },
        { name: 'A', value: '4' },
      ],
      'env[3].name',
      'is already given by entry 0',
    ],
    [entries(101), 'env', 'at most 100 entries'],
    [[{ name: 'A', value: 'x'.repeat(32 * 1024 + 1) }], 'env[0].value', 'at most 32 KiB'],
    // 3 bytes each in UTF-8: over 32 KiB in bytes while under it in characters.
    [[{ name: 'A', value: '€'.repeat(11_000) }], 'env[0].value', 'at most 32 KiB'],
    [[{ name: 'A', value: 'a\u0000b' }], 'env[0].value', 'NUL'],
    [entries(2, 'x'.repeat(30 * 1024)), 'env[1].value', 'plain values together must be at most 48 KiB'],
    [[{ name: 'A', value: 'x', extra: 1 }], 'env[0].extra', 'unknown field: extra'],
    [[{ name: 'A', value: 1 }], 'env[0].value', 'must be a string'],
    [[{ name: 'A' }], 'env[0].value', 'is required'],
    [[{ name: 'A', value: 'abcdefgh', secret: 'yes' }], 'env[0].secret', 'must be true or false'],
    [{ A: 'x' }, 'env', 'must be a list'],
  ])('refuses %#: %s', (env, field, message) => {
    const issue = refused(envEntries(), env, 'env');
    expect(issue.field).toBe(field);
    expect(issue.message).toContain(message);
  });

  it('counts plain values only towards 48 KiB: secrets have their own limit', () => {
    const big = 'x'.repeat(30 * 1024);
    expect(
      envEntries().safeParse([
        { name: 'A', value: big },
        { name: 'B', value: big, secret: true },
      ]).success,
    ).toBe(true);
  });

  it('refuses short secret values without repeating them', () => {
    const issue = refused(envEntries(), [{ name: 'TOKEN', value: 's3cr3t', secret: true }], 'env');
    expect(issue).toEqual({
      field: 'env[0].value',
      message: 'secret values must be at least 8 characters so that they can be removed from logs',
    });
    expect(issue.message).not.toContain('s3cr3t');
    // The zod path itself is ['env', 0, 'value'] once nested; parseOrThrow renders it env[0].value.
    const nested = createAppInput({ ...policy, domain }).safeParse(
      app({
        env: [
          { name: 'A', value: 'x' },
          { name: 'TOKEN', value: 'short', secret: true },
        ],
      }),
    );
    expect(nested.error?.issues.map((each) => each.path)).toEqual([['env', 1, 'value']]);
    expect(JSON.stringify(nested.error?.issues)).not.toContain('short"');
  });

  it("refuses the app's own port variable, whatever it is", () => {
    expect(envEntries('APP_PORT').safeParse([{ name: 'PORT', value: '1' }]).success).toBe(true);
    expect(refused(envEntries('APP_PORT'), [{ name: 'APP_PORT', value: '1' }], 'env').message).toContain(
      "is the app's port variable (APP_PORT)",
    );
    const create = createAppInput({ ...policy, domain });
    expect(
      create.safeParse(app({ env: [{ name: 'PORT', value: '1' }], build: { portEnv: 'APP_PORT' } })).success,
    ).toBe(true);
    expect(
      refused(
        create,
        app({
          env: [
            { name: 'X', value: '1' },
            { name: 'APP_PORT', value: '1' },
          ],
          build: { portEnv: 'APP_PORT' },
        }),
      ),
    ).toEqual({
      field: 'env[1].name',
      message: "is the app's port variable (APP_PORT): the platform sets it to the port it chose",
    });
    expect(refused(create, app({ env: [{ name: 'PORT', value: '1' }] })).field).toBe('env[0].name');
  });
});

describe('health check, drain, limits, releases kept', () => {
  it('apply their defaults', () => {
    expect(healthCheckInput.parse({})).toEqual({
      path: '/',
      timeoutSeconds: 60,
      graceSeconds: 0,
      successes: 2,
    });
    expect(healthCheckInput.parse({ path: '/healthz?deep=1', successes: 1 })).toEqual({
      path: '/healthz?deep=1',
      timeoutSeconds: 60,
      graceSeconds: 0,
      successes: 1,
    });
    expect(drainInput.parse({})).toEqual({ delaySeconds: 1, stopTimeoutSeconds: 10 });
    expect(limitsInput.parse({})).toEqual({ memoryMb: 512, processes: 256 });
    expect(releasesKept.parse(undefined)).toBe(3);
  });

  it.each([
    [healthCheckInput, { timeoutSeconds: 1 }],
    [healthCheckInput, { timeoutSeconds: 600, graceSeconds: 300, successes: 10 }],
    [healthCheckInput, { graceSeconds: 0, successes: 1, path: '/' + 'a'.repeat(511) }],
    [drainInput, { delaySeconds: 0, stopTimeoutSeconds: 1 }],
    [drainInput, { delaySeconds: 300, stopTimeoutSeconds: 300 }],
    [limitsInput, { memoryMb: 16, processes: 8 }],
    [limitsInput, { memoryMb: 65536, processes: 4096 }],
    [releasesKept, 1],
    [releasesKept, 10],
  ])('accepts the bounds %#', (schema: z.ZodType, input) => {
    expect(schema.safeParse(input).success).toBe(true);
  });

  it.each([
    [healthCheckInput, { path: 'healthz' }, 'path', "must start with '/'"],
    [healthCheckInput, { path: '' }, 'path', "must start with '/'"],
    [healthCheckInput, { path: '/a b' }, 'path', 'must not contain spaces'],
    [healthCheckInput, { path: '/a\r\nHost: x' }, 'path', 'control characters'],
    [healthCheckInput, { path: '//evil.example/x' }, 'path', "not starting with '//'"],
    [healthCheckInput, { path: '/\\evil.example' }, 'path', 'without backslashes'],
    [healthCheckInput, { path: '/' + 'a'.repeat(512) }, 'path', 'at most 512'],
    [healthCheckInput, { timeoutSeconds: 0 }, 'timeoutSeconds', 'from 1 to 600'],
    [healthCheckInput, { timeoutSeconds: 601 }, 'timeoutSeconds', 'from 1 to 600'],
    [healthCheckInput, { timeoutSeconds: 1.5 }, 'timeoutSeconds', 'whole number'],
    [healthCheckInput, { timeoutSeconds: '60' }, 'timeoutSeconds', 'from 1 to 600'],
    [healthCheckInput, { graceSeconds: -1 }, 'graceSeconds', 'from 0 to 300'],
    [healthCheckInput, { graceSeconds: 301 }, 'graceSeconds', 'from 0 to 300'],
    [healthCheckInput, { successes: 0 }, 'successes', 'from 1 to 10'],
    [healthCheckInput, { successes: 11 }, 'successes', 'from 1 to 10'],
    [healthCheckInput, { interval: 1 }, 'interval', 'unknown field: interval'],
    [drainInput, { delaySeconds: 301 }, 'delaySeconds', 'from 0 to 300'],
    [drainInput, { stopTimeoutSeconds: 0 }, 'stopTimeoutSeconds', 'from 1 to 300'],
    [drainInput, { stopTimeoutSeconds: 301 }, 'stopTimeoutSeconds', 'from 1 to 300'],
    [limitsInput, { memoryMb: 15 }, 'memoryMb', 'from 16 to 65536'],
    [limitsInput, { memoryMb: 65537 }, 'memoryMb', 'from 16 to 65536'],
    [limitsInput, { processes: 7 }, 'processes', 'from 8 to 4096'],
    [limitsInput, { processes: 4097 }, 'processes', 'from 8 to 4096'],
    [releasesKept, 0, '(root)', 'from 1 to 10'],
    [releasesKept, 11, '(root)', 'from 1 to 10'],
  ])('refuses %#: %j at %s', (schema: z.ZodType, input, field, message) => {
    const issue = refused(schema, input);
    expect(issue.field).toBe(field);
    expect(issue.message).toContain(message);
  });
});

describe('build settings and cloudlunacy.json', () => {
  it.each([
    ['server', 'server'],
    ['./server/', 'server'],
    ['a//b/./c', 'a/b/c'],
    ['.', '.'],
    ['./', '.'],
    ['.//.', '.'],
    ['my app', 'my app'],
  ])('normalises the root %j to %j', (root, normalised) => {
    expect(relativeRoot.parse(root)).toBe(normalised);
  });

  it.each([
    ['/srv/app', 'relative to the source root'],
    ['..', "no '..'"],
    ['a/../b', "no '..'"],
    ['a/../../etc', "no '..'"],
    ['', 'must not be empty'],
    ['a\nb', 'control characters'],
    ['a'.repeat(513), 'at most 512'],
  ])('refuses the root %j (%s) at build.root', (root, message) => {
    const issue = refused(createAppInput({ ...policy, domain }), app({ build: { root } }));
    expect(issue.field).toBe('build.root');
    expect(issue.message).toContain(message);
  });

  it('reads a manifest', () => {
    expect(
      buildManifest.parse({
        root: './server',
        install: 'npm ci',
        build: ['npm run build'],
        start: 'node dist/main.js',
        portEnv: 'PORT',
        healthCheck: { path: '/healthz' },
      }),
    ).toEqual({
      root: 'server',
      install: 'npm ci',
      build: ['npm run build'],
      start: 'node dist/main.js',
      portEnv: 'PORT',
      healthCheck: { path: '/healthz' },
    });
    expect(buildManifest.parse({})).toEqual({});
    expect(buildManifest.parse({ install: null })).toEqual({ install: null });
  });

  it.each([
    [{ start: 'node a', command: 'x' }, 'command', 'unknown field: command'],
    [{ start: 'node a\nrm -rf /' }, 'start', 'must be one line'],
    [{ start: 'node a\r' }, 'start', 'must be one line'],
    [{ install: 'npm ci\u0000' }, 'install', 'must be one line'],
    [{ build: ['npm run build', 'a\nb'] }, 'build[1]', 'must be one line'],
    [{ build: ['a\tb'] }, 'build[0]', 'control characters'],
    [{ build: Array(21).fill('make') }, 'build', 'at most 20 commands'],
    [{ build: 'make' }, 'build', 'must be a list of commands'],
    [{ start: '' }, 'start', 'must not be empty'],
    [{ start: '   ' }, 'start', 'must not be blank'],
    [{ start: 'x'.repeat(1001) }, 'start', 'at most 1000'],
    [{ root: '../x' }, 'root', "no '..'"],
    [{ portEnv: 'HOME' }, 'portEnv', 'is reserved'],
    [{ healthCheck: { path: '/h', successes: 3 } }, 'healthCheck.successes', 'unknown field'],
    [{ healthCheck: {} }, 'healthCheck.path', 'is required'],
    [[], '(root)', 'must be an object'],
  ])('refuses the manifest %#: %j at %s', (manifest, field, message) => {
    const issue = refused(buildManifest, manifest);
    expect(issue.field).toBe(field);
    expect(issue.message).toContain(message);
  });

  it('names an unknown manifest key and what to do, in the zod message too (the agent reports it)', () => {
    const result = buildManifest.safeParse({ start: 'node a', command: 'x', tasks: [] });
    expect(result.error?.issues).toEqual([
      expect.objectContaining({
        code: 'unrecognized_keys',
        path: [],
        message:
          'unknown fields command, tasks: remove them (known fields: root, install, build, start, portEnv, healthCheck)',
      }),
    ]);
  });

  it('takes app-level overrides', () => {
    expect(
      buildOverrides.parse({
        root: 'api/',
        install: null,
        build: [],
        start: 'npm start',
        portEnv: 'APP_PORT',
        timeoutSeconds: 3600,
      }),
    ).toEqual({
      root: 'api',
      install: null,
      build: [],
      start: 'npm start',
      portEnv: 'APP_PORT',
      timeoutSeconds: 3600,
    });
    expect(refused(buildOverrides, { timeoutSeconds: 0 }).field).toBe('timeoutSeconds');
    expect(refused(buildOverrides, { timeoutSeconds: 3601 }).field).toBe('timeoutSeconds');
    expect(refused(buildOverrides, { healthCheck: { path: '/' } }).field).toBe('healthCheck');
  });
});

describe('apps', () => {
  const create = createAppInput({ ...policy, domain });

  it('creates with defaults applied, the host name included', () => {
    expect(create.parse(app())).toEqual({
      name: 'web',
      hostname: 'web.apps.cloudlunacy.localhost',
      source: { type: 'git', url: 'https://github.com/o/r.git' },
      env: [],
      healthCheck: { path: '/', timeoutSeconds: 60, graceSeconds: 0, successes: 2 },
      drain: { delaySeconds: 1, stopTimeoutSeconds: 10 },
      limits: { memoryMb: 512, processes: 256 },
      releasesKept: 3,
      runtime: 'process',
    });
    expect(
      create.parse(app({ agentId: 'agent-1', hostname: 'www.apps.cloudlunacy.localhost' })),
    ).toMatchObject({
      agentId: 'agent-1',
      hostname: 'www.apps.cloudlunacy.localhost',
    });
  });

  it.each([
    [app({ name: 'Web' }), 'name', 'lower-case DNS label'],
    [app({ name: 'a.b' }), 'name', 'lower-case DNS label'],
    [app({ agentId: '-a' }), 'agentId', 'lower-case DNS label'],
    [app({ hostname: 'web.cloudlunacy.localhost' }), 'hostname', 'must be <name>.apps.cloudlunacy.localhost'],
    [app({ hostname: 'a.b.apps.cloudlunacy.localhost' }), 'hostname', 'one DNS label'],
    [app({ hostname: 'web.apps.other.example' }), 'hostname', 'must be <name>.apps.cloudlunacy.localhost'],
    [app({ hostname: 'WEB.apps.cloudlunacy.localhost' }), 'hostname', 'one DNS label'],
    [app({ source: undefined }), 'source', 'is required'],
    [app({ source: { type: 'svn' } }), 'source.type', 'type must be git, upload, image or database'],
    [app({ releasesKept: 0 }), 'releasesKept', 'from 1 to 10'],
    [app({ runtime: 'docker' }), 'runtime', 'must be process or container'],
  ])('refuses %#: %j at %s', (input, field, message) => {
    const issue = refused(create, input);
    expect(issue.field).toBe(field);
    expect(issue.message).toContain(message);
  });

  it('creates a database: its host name defaults later (it needs the agent), or is one in the agent namespace', () => {
    const database = { name: 'cache', agentId: 'agent-1', source: { type: 'database', engine: 'redis' } };
    expect(create.parse(database)).toMatchObject({
      hostname: null,
      source: { type: 'database', engine: 'redis' },
    });
    expect(databaseHostname('cache', 'agent-1', 'redis', domain)).toBe(
      'cache.agent-1.redis.cloudlunacy.localhost',
    );
    expect(create.parse({ ...database, hostname: 'agent-1.redis.cloudlunacy.localhost' }).hostname).toBe(
      'agent-1.redis.cloudlunacy.localhost',
    );
    const refusedAt = (input: object) => refused(create, input);
    expect(refusedAt({ ...database, hostname: 'cache.agent-2.redis.cloudlunacy.localhost' })).toMatchObject({
      field: 'hostname',
      message: expect.stringContaining("the agent's own namespace"),
    });
    expect(refusedAt({ ...database, hostname: 'cache.apps.cloudlunacy.localhost' })).toMatchObject({
      field: 'hostname',
      message: expect.stringContaining('<agentId>.redis.cloudlunacy.localhost'),
    });
    expect(refusedAt({ ...database, build: { start: 'x' } })).toMatchObject({ field: 'build' });
    expect(create.parse({ ...database, runtime: 'container' }).runtime).toBe('container');
    expect(create.parse(app({ runtime: 'container' })).runtime).toBe('container');
    expect(refusedAt({ ...database, env: [{ name: 'A', value: 'b' }] })).toMatchObject({ field: 'env' });
    expect(refusedAt({ ...database, source: { type: 'database', engine: 'oracle' } })).toMatchObject({
      field: 'source.engine',
      message: expect.stringContaining('must be one of redis'),
    });
    // A web app's host name is still checked as before.
    expect(refusedAt(app({ hostname: 'cache.agent-1.redis.cloudlunacy.localhost' })).field).toBe('hostname');
  });

  it('takes an image from a registry on the container runtime, by a reference that cannot be an option', () => {
    const image = (reference: string) =>
      create.safeParse(app({ source: { type: 'image', image: reference }, runtime: 'container' }));
    for (const good of [
      'redis:7',
      'docker.io/library/redis:7.2',
      'registry.example.com:5000/team/app:1.2.3',
      '127.0.0.1:5000/team/hello:stable',
      `ghcr.io/o/r@sha256:${'a'.repeat(64)}`,
    ])
      expect(image(good).success).toBe(true);
    for (const bad of ['-rm', 'Team/App', 'app:-x', 'a b', 'app:tag:more', 'app\nx', '']) {
      const issue = refused(create, app({ source: { type: 'image', image: bad }, runtime: 'container' }));
      expect(issue.field).toBe('source.image');
    }
    expect(refused(create, app({ source: { type: 'image', image: 'redis:7' } }))).toMatchObject({
      field: 'runtime',
      message: expect.stringContaining('container runtime'),
    });
  });

  it('refuses a name that makes the default host name too long', () => {
    const long = createAppInput({
      ...policy,
      domain: `${'d'.repeat(63)}.${'e'.repeat(63)}.${'f'.repeat(60)}`,
    });
    const issue = refused(long, app({ name: 'a'.repeat(63) }));
    expect(issue.field).toBe('name');
    expect(issue.message).toContain('choose a shorter name or give hostname');
  });

  it('checks app host names as http routes do', () => {
    const schema = appHostname(domain);
    expect(schema.safeParse('a-1.apps.cloudlunacy.localhost').success).toBe(true);
    expect(schema.safeParse('apps.cloudlunacy.localhost').success).toBe(false);
    expect(schema.safeParse('.apps.cloudlunacy.localhost').success).toBe(false);
    expect(appName.safeParse('web-1').success).toBe(true);
  });

  it('configures a patch: given fields replace, identity fields are refused by name', () => {
    const configure = configureAppInput(policy);
    expect(configure.parse({ releasesKept: 5 })).toEqual({ releasesKept: 5 });
    expect(configure.parse({ healthCheck: { path: '/h' } })).toEqual({
      healthCheck: { path: '/h', timeoutSeconds: 60, graceSeconds: 0, successes: 2 },
    });
    expect(configure.parse({ source: source('git@h:r') })).toEqual({
      source: { type: 'git', url: 'ssh://git@h/r' },
    });
    for (const field of ['name', 'agentId', 'hostname']) {
      expect(refused(configure, { [field]: 'web', releasesKept: 2 })).toEqual({
        field,
        message: 'cannot be changed after creation',
      });
    }
    expect(refused(configure, { hostname: 'x.apps.cloudlunacy.localhost' }).message).toBe(
      'cannot be changed after creation',
    );
    expect(refused(configure, {}).message).toBe('give at least one setting to change');
    expect(refused(configure, { limits: { memoryMb: 8 } }).field).toBe('limits.memoryMb');
    expect(refused(configure, { env: [{ name: 'CLOUDLUNACY_A', value: 'x' }] }).field).toBe('env[0].name');
    // With build in the patch, its port variable is the one refused in env.
    expect(
      refused(configure, { env: [{ name: 'APP_PORT', value: '1' }], build: { portEnv: 'APP_PORT' } }).field,
    ).toBe('env[0].name');
  });
});

describe('deployment and rollback requests', () => {
  it('takes a ref or an upload, not both', () => {
    const uploadId = '8f0e0c52-52f1-4d0e-9f8e-3a1b6c2d4e5f';
    expect(deploymentRequestInput.parse({})).toEqual({});
    expect(deploymentRequestInput.parse({ ref: 'refs/tags/v1' })).toEqual({ ref: 'refs/tags/v1' });
    expect(deploymentRequestInput.parse({ uploadId })).toEqual({ uploadId });
    expect(refused(deploymentRequestInput, { ref: 'main', uploadId })).toEqual({
      field: 'uploadId',
      message: 'give ref (git source) or uploadId (upload source), not both',
    });
    expect(refused(deploymentRequestInput, { uploadId: 'x' }).field).toBe('uploadId');
    expect(refused(deploymentRequestInput, { commit: 'x' }).field).toBe('commit');
  });

  it('rolls back to a release number or id', () => {
    const releaseId = '8f0e0c52-52f1-4d0e-9f8e-3a1b6c2d4e5f';
    expect(rollbackInput.parse({})).toEqual({});
    expect(rollbackInput.parse({ release: 3 })).toEqual({ release: 3 });
    expect(rollbackInput.parse({ release: releaseId })).toEqual({ release: releaseId });
    for (const release of [0, 1.5, 'three', '3', true]) {
      expect(refused(rollbackInput, { release })).toEqual({
        field: 'release',
        message: 'must be a release number (1 or more) or a release id (UUID)',
      });
    }
  });
});

describe('sourceCredentials', () => {
  it('names a secret, never a value', () => {
    expect(sourceCredentials.parse({ secret: 'GH_TOKEN', kind: 'https-token' })).toEqual({
      secret: 'GH_TOKEN',
      kind: 'https-token',
    });
    expect(refused(sourceCredentials, { secret: 'GH_TOKEN', kind: 'https-token', token: 'x' }).field).toBe(
      'token',
    );
    expect(refused(sourceCredentials, { secret: 'PATH', kind: 'ssh-key' }).field).toBe('secret');
  });
});
